-- Staff avatars (plugins/media/avatar.c): which media item is a user's
-- avatar.  The item is a 256x256 JPEG the plugin encoded (purpose
-- avatar, uploaded_by the user); replacing the avatar deletes the old
-- item.  Deleting the item (DELETE /api/v1/media/{id}) removes the
-- avatar; deleting the user removes the mapping (the item stays, like
-- any other upload of theirs, until a manager deletes it).
--
-- The host's user_avatars table (migrations/003_avatars.sql) kept the
-- bytes in the database; they are not copied here (a migration cannot
-- write to the media store), so avatars uploaded before this plugin
-- took the routes over are dropped: users upload them again.
CREATE TABLE media_avatars (
    user_id     bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    media_id    bigint NOT NULL UNIQUE REFERENCES media (id) ON DELETE CASCADE,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
