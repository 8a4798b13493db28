-- Tasks by last change: the Telegram relays look for tasks finished (or changed) since a cursor.
CREATE INDEX tasks_updated ON tasks(updated_at, task_id);
