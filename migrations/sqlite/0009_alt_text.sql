-- A description of each image or video for people who cannot see it, written by the
-- uploader (PATCH /media/{id}) and shown wherever the medium is.
ALTER TABLE media ADD COLUMN alt_text TEXT NOT NULL DEFAULT '';
