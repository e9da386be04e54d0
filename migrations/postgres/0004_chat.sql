-- Chat: conversations (direct, one per pair; group, with admins), members with their
-- read/delivered receipts, messages (idempotent per sender by client_msg_id, tombstoned
-- on delete) and their media.

CREATE TABLE conversations (
    id               BIGINT PRIMARY KEY,
    kind             TEXT NOT NULL,            -- direct | group
    title            TEXT,                     -- groups only
    direct_key       TEXT UNIQUE,              -- 'low:high' user ids: one direct conversation per pair
    created_by       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at       BIGINT NOT NULL,
    last_message_id  BIGINT,
    last_activity_at BIGINT NOT NULL
);

CREATE TABLE conversation_members (
    conversation_id   BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id           BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role              TEXT NOT NULL,           -- admin | member
    joined_at         BIGINT NOT NULL,
    joined_seq        BIGINT NOT NULL DEFAULT 0, -- chat topic seq just before the join (live sessions subscribe from here)
    last_read_id      BIGINT NOT NULL DEFAULT 0, -- read receipt: last message id read
    last_delivered_id BIGINT NOT NULL DEFAULT 0, -- delivery receipt: last message id on a device
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user_idx ON conversation_members (user_id, conversation_id);

CREATE TABLE messages (
    id              BIGINT PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    sender_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body            TEXT,                      -- NULL once deleted (tombstone)
    reply_to        BIGINT,
    client_msg_id   TEXT,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, id);
-- A retried send finds the stored message instead of storing a second one.
CREATE UNIQUE INDEX messages_client_msg_key ON messages (conversation_id, sender_id, client_msg_id);

CREATE TABLE message_media (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    media_id   BIGINT NOT NULL REFERENCES media (id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (message_id, position)
);
CREATE UNIQUE INDEX message_media_media_key ON message_media (media_id);
