-- Notifications: one row per (recipient, kind, target) while unread, accumulating the actors
-- that caused it ("alice and 3 others reacted to your post"). Reading a notification clears
-- its `group_key`, so the next action on the same target starts a new unread row.
--
-- `post_id` / `comment_id` reference their rows with ON DELETE CASCADE: deleting a post or a
-- comment removes the notifications about it in the same statement. `conversation_id` has no
-- foreign key (conversations live in the chat migration; a message notification stays
-- meaningful on its own).

CREATE TABLE notifications (
    id              BIGINT PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,          -- follow | follow_request | follow_approved | reaction | comment | reply | mention | message
    target_type     TEXT NOT NULL,          -- post | comment | user | conversation
    target_id       BIGINT NOT NULL,
    post_id         BIGINT REFERENCES posts (id) ON DELETE CASCADE,
    comment_id      BIGINT REFERENCES comments (id) ON DELETE CASCADE,
    conversation_id BIGINT,
    preview         TEXT,                   -- excerpt of the comment or message, if any
    group_key       TEXT,                   -- kind:target_type:target_id while unread, NULL once read
    actor_count     BIGINT NOT NULL DEFAULT 0,
    is_read         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- At most one unread notification per group (NULLs, i.e. read ones, are distinct).
CREATE UNIQUE INDEX notifications_group_idx ON notifications (user_id, group_key);
CREATE INDEX notifications_list_idx ON notifications (user_id, updated_at, id);
CREATE INDEX notifications_target_idx ON notifications (target_type, target_id);
CREATE INDEX notifications_post_idx ON notifications (post_id);
CREATE INDEX notifications_comment_idx ON notifications (comment_id);

CREATE TABLE notification_actors (
    notification_id BIGINT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    actor_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (notification_id, actor_id)
);
CREATE INDEX notification_actors_actor_idx ON notification_actors (actor_id);
