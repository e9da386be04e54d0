-- Foundation: users, their settings, auth tokens, the job outbox and the durable event log.
-- Ids are 64-bit and made by the application; times are Unix milliseconds (BIGINT).
-- Prefix search relies on SQLite's default BINARY collation (byte order = index order).

CREATE TABLE users (
    id                 BIGINT PRIMARY KEY,
    username           TEXT NOT NULL,
    email              TEXT NOT NULL,
    password_hash      TEXT NOT NULL,
    display_name       TEXT NOT NULL DEFAULT '',
    display_name_lower TEXT NOT NULL DEFAULT '',
    bio                TEXT NOT NULL DEFAULT '',
    website            TEXT,
    avatar_media_id    BIGINT,
    is_private         BOOLEAN NOT NULL DEFAULT FALSE,
    follower_count     BIGINT NOT NULL DEFAULT 0,
    following_count    BIGINT NOT NULL DEFAULT 0,
    post_count         BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_display_name_lower_idx ON users (display_name_lower);

CREATE TABLE user_social_links (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network TEXT NOT NULL,
    url     TEXT NOT NULL,
    PRIMARY KEY (user_id, network)
);

CREATE TABLE user_notification_settings (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    in_app  BOOLEAN NOT NULL,
    email   BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, kind)
);

-- One row per issued refresh token. A family is one login session; rotation adds a row to
-- the family and marks the previous one used. Presenting a used token revokes the family.
CREATE TABLE refresh_tokens (
    id         BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  BIGINT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Access-token revocations (by jti or by session) until the token would have expired anyway.
-- Used when no Redis is configured; with Redis the same keys live there.
CREATE TABLE revoked_tokens (
    key        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);

CREATE TABLE password_resets (
    id         BIGINT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE UNIQUE INDEX password_resets_token_hash_key ON password_resets (token_hash);

-- The transactional outbox of background work: a job is inserted in the transaction of the
-- change that causes it, so it exists exactly when the change does.
CREATE TABLE jobs (
    id           BIGINT PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL,          -- queued | running | dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       BIGINT NOT NULL,
    locked_until BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_due_idx ON jobs (status, run_at);

-- Durable realtime topics: a contiguous per-topic sequence and the events themselves, so a
-- client that reconnects anywhere can resume with no gap.
CREATE TABLE topic_seqs (
    topic TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);

CREATE TABLE events (
    topic      TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (topic, seq)
);
CREATE INDEX events_created_idx ON events (created_at);
