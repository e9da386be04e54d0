-- Push notifications: a per-kind `push` switch beside `in_app` and `email` (on by default:
-- nothing is pushed until the account registers a device), and whether pushed chat
-- messages quote the message ("dave: see you at 8") or only name the sender ("New message
-- from dave").
ALTER TABLE user_notification_settings ADD COLUMN push BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE users ADD COLUMN push_previews BOOLEAN NOT NULL DEFAULT TRUE;
-- A member may mute a conversation: its messages still arrive and count as unread, but
-- make no notification (in-app, e-mail or push).
ALTER TABLE conversation_members ADD COLUMN muted BOOLEAN NOT NULL DEFAULT FALSE;
