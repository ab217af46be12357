-- Thumbnails of image items (plugins/media, image.c): made by the job
-- media.thumbnail after the upload commits, stored content-addressed in
-- the same store as the originals; NULL until made, and for non-images.
ALTER TABLE media
    ADD COLUMN thumb_sha256 text CHECK (thumb_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN thumb_mime   text,
    ADD COLUMN thumb_width  integer,
    ADD COLUMN thumb_height integer;
CREATE INDEX media_thumb_sha256 ON media (thumb_sha256)
    WHERE thumb_sha256 IS NOT NULL;
