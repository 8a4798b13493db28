-- The agent loop's persisted state, one row per agent task: the transcript the model sees (so a
-- task resumes after an approval or a restart exactly where it stopped), whether untrusted
-- content entered it (taint) and whether the injection scanner flagged any (flagged), and the
-- tokens it used (per-user daily budget).
CREATE TABLE agent_transcripts (
    task_id     TEXT PRIMARY KEY REFERENCES tasks(task_id),
    user_id     TEXT NOT NULL REFERENCES users(user_id),
    state       TEXT NOT NULL,
    tainted     BIGINT NOT NULL DEFAULT 0,
    flagged     BIGINT NOT NULL DEFAULT 0,
    tokens      BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX agent_transcripts_user ON agent_transcripts(user_id, updated_at);
