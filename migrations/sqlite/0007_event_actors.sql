-- Whose action a durable event reports (a message's sender, a post's author): replays skip
-- events whose actor is blocked either way with the reader, or (on feeds) no longer followed.
ALTER TABLE events ADD COLUMN actor_id BIGINT;
