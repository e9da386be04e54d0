-- Media: uploads, their stored variants, and their attachment to posts.

CREATE TABLE media (
    id          BIGINT PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,        -- image | video
    status      TEXT NOT NULL,        -- processing | ready | failed
    mime        TEXT NOT NULL,        -- detected from content
    bytes       BIGINT NOT NULL,      -- uploaded size
    width       INTEGER,
    height      INTEGER,
    placeholder TEXT,                 -- blurhash of the image
    failure     TEXT,                 -- why processing failed
    attached_to TEXT,                 -- NULL (unattached) | post | avatar | message
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX media_owner_idx ON media (owner_id, id);
CREATE INDEX media_unattached_idx ON media (attached_to, created_at);

-- One row per stored object (original video, image variants).
CREATE TABLE media_variants (
    media_id     BIGINT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,       -- original | feed | thumb …
    backend      TEXT NOT NULL,       -- local | cloudinary: where the object lives
    storage_key  TEXT NOT NULL,       -- backend key (path on disk, Cloudinary public_id)
    url          TEXT NOT NULL,       -- '/files/…' (local, made absolute when shown) or the CDN URL
    content_type TEXT NOT NULL,
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    bytes        BIGINT NOT NULL,
    PRIMARY KEY (media_id, name)
);

CREATE TABLE post_media (
    post_id  BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    media_id BIGINT NOT NULL REFERENCES media (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (post_id, position)
);
CREATE UNIQUE INDEX post_media_media_key ON post_media (media_id);
