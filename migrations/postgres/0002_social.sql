-- Social graph and content: follows (with requests), blocks, mutes, posts, hashtags, mentions,
-- comments (nested, tombstoned), data-driven reaction types, reactions and their counts,
-- saves, and home-feed timelines (used when no Redis is configured).

CREATE TABLE follows (
    follower_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status      TEXT NOT NULL,          -- active | pending (a request to a private account)
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee_idx ON follows (followee_id, status, created_at);
CREATE INDEX follows_follower_idx ON follows (follower_id, status, created_at);

CREATE TABLE blocks (
    blocker_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id);

CREATE TABLE mutes (
    muter_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    muted_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (muter_id, muted_id)
);
-- Fan-out skips live events for followers who muted the author: looked up by the muted side.
CREATE INDEX mutes_muted_idx ON mutes (muted_id);

CREATE TABLE posts (
    id             BIGINT PRIMARY KEY,
    author_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    caption        TEXT NOT NULL DEFAULT '',
    has_image      BOOLEAN NOT NULL DEFAULT FALSE,
    has_video      BOOLEAN NOT NULL DEFAULT FALSE,
    comment_count  BIGINT NOT NULL DEFAULT 0,
    reaction_count BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX posts_author_idx ON posts (author_id, id);

CREATE TABLE post_hashtags (
    tag     TEXT COLLATE "C" NOT NULL,  -- lower-case, without '#'
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, post_id)
);
CREATE INDEX post_hashtags_post_idx ON post_hashtags (post_id);

CREATE TABLE post_mentions (
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE comments (
    id             BIGINT PRIMARY KEY,
    post_id        BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id      BIGINT REFERENCES comments (id) ON DELETE CASCADE,
    body           TEXT NOT NULL,
    deleted        BOOLEAN NOT NULL DEFAULT FALSE,  -- tombstone: kept while it has replies
    reply_count    BIGINT NOT NULL DEFAULT 0,
    reaction_count BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX comments_post_idx ON comments (post_id, parent_id, id);
CREATE INDEX comments_parent_idx ON comments (parent_id, id);

CREATE TABLE comment_mentions (
    comment_id BIGINT NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (comment_id, user_id)
);

-- Reaction types are data: `chorus reactions add|disable` changes them without a release.
CREATE TABLE reaction_types (
    key      TEXT PRIMARY KEY,
    emoji    TEXT NOT NULL,
    label    TEXT NOT NULL,
    position INTEGER NOT NULL,
    active   BOOLEAN NOT NULL DEFAULT TRUE
);
INSERT INTO reaction_types (key, emoji, label, position, active) VALUES
    ('like', '👍', 'Like', 1, TRUE),
    ('love', '❤️', 'Love', 2, TRUE),
    ('support', '🤝', 'Support', 3, TRUE),
    ('celebrate', '🎉', 'Celebrate', 4, TRUE),
    ('insightful', '💡', 'Insightful', 5, TRUE),
    ('funny', '😂', 'Funny', 6, TRUE);

-- One reaction per user per target. Targets: 'post', 'comment', 'message' (chat).
CREATE TABLE reactions (
    target_kind TEXT NOT NULL,
    target_id   BIGINT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL REFERENCES reaction_types (key),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (target_kind, target_id, user_id)
);
CREATE INDEX reactions_by_kind_idx ON reactions (target_kind, target_id, kind, created_at);

-- Per-type counts, maintained in the transaction that changes a reaction.
CREATE TABLE reaction_counts (
    target_kind TEXT NOT NULL,
    target_id   BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (target_kind, target_id, kind)
);

CREATE TABLE saves (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id    BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, post_id)
);
CREATE INDEX saves_user_idx ON saves (user_id, created_at);

-- Home-feed timelines written by fan-out-on-write (when Redis holds them, this stays empty).
CREATE TABLE timeline_entries (
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id   BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, post_id)
);
CREATE INDEX timeline_entries_author_idx ON timeline_entries (user_id, author_id);
