-- AgenticAI schema, Postgres dialect. Keep in step with ../sqlite/0001_initial.sql: same tables,
-- columns and meaning; only types and trigger syntax differ. Times are milliseconds since the
-- Unix epoch; flags are 0/1 integers (portable through sqlx's Any driver); JSON is TEXT.

CREATE TABLE orgs (
    org_id      TEXT PRIMARY KEY,
    -- One deployment serves one organisation: a second row is impossible.
    singleton   BIGINT NOT NULL DEFAULT 1 UNIQUE CHECK (singleton = 1),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE org_policy (
    org_id                TEXT PRIMARY KEY REFERENCES orgs(org_id),
    bypass_allowed        BIGINT NOT NULL DEFAULT 0,
    bypass_max_tier       TEXT NOT NULL DEFAULT 'L1_MUTATING',
    mutations_paused      BIGINT NOT NULL DEFAULT 0,
    l3_requires_admin     BIGINT NOT NULL DEFAULT 1,
    approval_ttl_seconds  BIGINT NOT NULL DEFAULT 1800,
    version               BIGINT NOT NULL DEFAULT 1,
    updated_at            BIGINT NOT NULL
);

CREATE TABLE users (
    user_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('member', 'admin', 'service')),
    disabled    BIGINT NOT NULL DEFAULT 0,
    bypass      TEXT NOT NULL DEFAULT 'OFF' CHECK (bypass IN ('OFF', 'ON')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE telegram_identities (
    telegram_user_id  BIGINT PRIMARY KEY,
    user_id           TEXT NOT NULL UNIQUE REFERENCES users(user_id),
    chat_id           BIGINT NOT NULL,
    username          TEXT,
    linked_at         BIGINT NOT NULL
);

-- Invite codes (create a user) and link codes (attach Telegram to an existing user). Only the
-- SHA-256 of a code is stored; `code_ref` is a short, non-secret reference for audit and lists.
CREATE TABLE invites (
    code_hash    TEXT PRIMARY KEY,
    code_ref     TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('invite', 'link')),
    role         TEXT CHECK (role IN ('member', 'admin', 'service')),
    user_id      TEXT REFERENCES users(user_id),
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    redeemed_at  BIGINT,
    redeemed_by  TEXT
);

-- API tokens: only the SHA-256 of a token is stored.
CREATE TABLE api_tokens (
    token_id    TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL REFERENCES users(user_id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE tasks (
    task_id            TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(user_id),
    kind               TEXT NOT NULL CHECK (kind IN ('command', 'agent')),
    input              TEXT NOT NULL,
    environment        TEXT,
    status             TEXT NOT NULL,
    risk_tier          TEXT,
    approval_id        TEXT,
    result_exit_code   BIGINT,
    result_output      TEXT,
    result_truncated   BIGINT,
    error_code         TEXT,
    error_message      TEXT,
    -- Work-queue lease: who runs the task and until when; an expired lease is reclaimed.
    attempts           BIGINT NOT NULL DEFAULT 0,
    lease_owner        TEXT,
    lease_expires_at   BIGINT,
    -- Earliest time a worker may claim the task (retry backoff).
    not_before         BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX tasks_user_created ON tasks(user_id, created_at, task_id);
CREATE INDEX tasks_created ON tasks(created_at, task_id);
CREATE INDEX tasks_status ON tasks(status, not_before);

-- Idempotency-Key: the same key from the same user within 24 h returns the first task.
CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL,
    key         TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE task_events (
    task_id  TEXT NOT NULL REFERENCES tasks(task_id),
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE approvals (
    approval_id   TEXT PRIMARY KEY,
    task_id       TEXT NOT NULL REFERENCES tasks(task_id),
    requested_by  TEXT NOT NULL REFERENCES users(user_id),
    risk_tier     TEXT NOT NULL,
    action        TEXT NOT NULL,
    environment   TEXT,
    grants        TEXT NOT NULL,
    action_hash   TEXT NOT NULL,
    rationale     TEXT NOT NULL,
    decision      TEXT CHECK (decision IN ('APPROVE', 'DENY', 'EXPIRE')),
    decided_by    TEXT,
    decided_at    BIGINT,
    consumed_at   BIGINT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX approvals_task ON approvals(task_id);
CREATE INDEX approvals_pending ON approvals(decision, expires_at);

CREATE TABLE environments (
    name         TEXT PRIMARY KEY,
    egress       TEXT NOT NULL,
    secrets      TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- Secret values, encrypted with the master key (nonce and ciphertext hex-encoded).
CREATE TABLE secrets (
    name         TEXT PRIMARY KEY,
    nonce        TEXT NOT NULL,
    ciphertext   TEXT NOT NULL,
    key_version  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- The audit trail: append-only, hash-chained. `audit_head` holds the chain's tip (kept by a
-- trigger); appends lock its row first, so the chain never forks.
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    actor      TEXT,
    task_id    TEXT,
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_events_task ON audit_events(task_id, seq);
CREATE INDEX audit_events_actor ON audit_events(actor, seq);
CREATE INDEX audit_events_type ON audit_events(type, seq);

CREATE TABLE audit_head (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_head_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_head_follows AFTER INSERT ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_head_follow();
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE skills (
    skill_id      TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    object_key    TEXT NOT NULL,
    active        BIGINT NOT NULL DEFAULT 0,
    installed_by  TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (name, version)
);

-- Telegram update ids seen, recorded in the same transaction as their effects.
CREATE TABLE telegram_updates (
    update_id     BIGINT PRIMARY KEY,
    received_at   BIGINT NOT NULL,
    payload       TEXT NOT NULL,
    processed_at  BIGINT
);

-- Messages to send, persisted before sending: at least once, deduplicated by `dedupe_key`.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    dedupe_key       TEXT NOT NULL UNIQUE,
    chat_id          BIGINT NOT NULL,
    method           TEXT NOT NULL,
    payload          TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    sent_at          BIGINT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX outbox_pending ON outbox(sent_at, next_attempt_at);

-- Named leases (one Telegram poller per deployment, and the like) and small durable state
-- (the polling offset).
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE TABLE kv_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
