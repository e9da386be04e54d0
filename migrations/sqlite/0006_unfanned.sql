-- The range of an author's posts that fan-out skipped because the author had more followers
-- than `feed.fanout_read_threshold` (NULL: every post was fanned out). While it is set, home
-- feeds merge the author's posts at read time; a `backfill_followers` job copies those posts
-- into the followers' timelines once the author is back at or below the threshold, then
-- clears it (or, if more were skipped meanwhile, moves it past what it copied).
ALTER TABLE users ADD COLUMN unfanned_since INTEGER;
ALTER TABLE users ADD COLUMN unfanned_until INTEGER;
