-- Trust and safety: roles and suspension on the account, login sessions with their device,
-- reports with the reported content as it was, and the moderators' append-only audit log.

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user';       -- user | moderator | admin
ALTER TABLE users ADD COLUMN suspended_at BIGINT;                      -- set while suspended
CREATE INDEX users_staff_idx ON users (role) WHERE role <> 'user';
CREATE INDEX users_suspended_idx ON users (suspended_at) WHERE suspended_at IS NOT NULL;

-- One row per login session (a refresh-token family): what `GET /auth/sessions` lists.
CREATE TABLE sessions (
    id           BIGINT PRIMARY KEY,          -- = refresh_tokens.family_id
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device       TEXT NOT NULL DEFAULT '',    -- the User-Agent at login, shortened
    ip           TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX sessions_user_idx ON sessions (user_id, last_used_at);
-- Sessions opened before this migration: one row per family still usable.
INSERT INTO sessions (id, user_id, created_at, last_used_at)
    SELECT family_id, MIN(user_id), MIN(created_at), MAX(created_at) FROM refresh_tokens
    WHERE revoked_at IS NULL GROUP BY family_id;

-- A report keeps a JSON snapshot of what it is about, so an edit or a deletion does not
-- erase the evidence; the reported account has no foreign key for the same reason.
CREATE TABLE reports (
    id             BIGINT PRIMARY KEY,
    reporter_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_type    TEXT NOT NULL,             -- post | comment | message | user
    target_id      BIGINT NOT NULL,
    target_user_id BIGINT NOT NULL,           -- the author or the account reported
    reason         TEXT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    snapshot       TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'open',  -- open | resolved
    resolution     TEXT,                          -- dismissed | removed | suspended
    resolved_by    BIGINT,
    resolved_at    BIGINT,
    created_at     BIGINT NOT NULL
);
-- One open report per reporter and target.
CREATE UNIQUE INDEX reports_open_key ON reports (reporter_id, target_type, target_id) WHERE status = 'open';
CREATE INDEX reports_status_idx ON reports (status, id);
CREATE INDEX reports_target_idx ON reports (target_type, target_id);

-- What moderators and admins did. Rows are only ever inserted: the trigger refuses changes.
CREATE TABLE audit_log (
    id          BIGINT PRIMARY KEY,
    actor_id    BIGINT,                       -- NULL: the command line
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   BIGINT NOT NULL,
    report_id   BIGINT,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Who may message an account: everyone | following (accounts it follows) | nobody;
-- NULL follows the server's default (`default_who_can_message`).
ALTER TABLE users ADD COLUMN who_can_message TEXT;

-- Consent not given yet: a message request (a direct conversation someone outside the
-- recipient's `who_can_message` opened) or a group invitation. The recipient is not a
-- member until they accept; a declined request stays, hidden, so it does not come back.
CREATE TABLE conversation_requests (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    declined_at     BIGINT,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_requests_user_idx ON conversation_requests (user_id, created_at);

-- E-mail verification: a 6-digit code (keyed hash: a database alone cannot tell it) and a
-- link token (SHA-256), single use, expiring. Accounts from before this migration count as
-- verified: turning verification on must not lock anyone out.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
UPDATE users SET email_verified_at = created_at;
CREATE TABLE email_verifications (
    id          BIGINT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX email_verifications_user_idx ON email_verifications (user_id);
CREATE UNIQUE INDEX email_verifications_token_key ON email_verifications (token_hash);

-- Account deletion: set when the owner deletes it (the account is hidden and signed out at
-- once); a durable job then erases its content and leaves this row as a tombstone ("deleted
-- account", the username freed) so that conversations stay readable.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;

-- Data exports: a ZIP written by a durable job into the data directory, downloadable by its
-- owner until it expires.
CREATE TABLE exports (
    id         BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status     TEXT NOT NULL DEFAULT 'pending',   -- pending | ready
    bytes      BIGINT,
    created_at BIGINT NOT NULL,
    ready_at   BIGINT,
    expires_at BIGINT
);
CREATE INDEX exports_user_idx ON exports (user_id, id);
