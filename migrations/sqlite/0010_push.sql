-- Devices that receive push notifications: a browser's Web Push subscription (endpoint and
-- keys) or an app's FCM registration token, each belonging to the login session that
-- registered it (ending the session removes it).
CREATE TABLE push_subscriptions (
    id          BIGINT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  BIGINT NOT NULL,
    kind        TEXT NOT NULL,               -- webpush | fcm
    endpoint    TEXT NOT NULL,               -- the Web Push endpoint URL, or the FCM token
    p256dh      TEXT,                        -- Web Push: the browser's public key
    auth        TEXT,                        -- Web Push: the shared auth secret
    label       TEXT NOT NULL DEFAULT '',
    kinds       TEXT NOT NULL DEFAULT '',    -- notification kinds wanted, comma-separated ('' = all)
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint_idx ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_user_idx ON push_subscriptions (user_id);
CREATE INDEX push_subscriptions_session_idx ON push_subscriptions (session_id);
