-- The objects of the s3 storage backend (plugins/media/store_s3.c): one
-- row per stored sha256, written under the hash's advisory lock in the
-- transaction that inserts or deletes the media rows naming it.  gen is
-- made when the object is first stored after no row named its hash; the
-- remote key is <sha[0:2]>/<sha>.<gen>, so a late DELETE of an earlier
-- generation never removes a later upload of the same bytes.  remote:
-- the PUT job has stored it in the bucket.
CREATE TABLE media_objects (
    sha256      text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    gen         text NOT NULL CHECK (gen ~ '^[0-9a-f]{16}$'),
    remote      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
