-- Media items (plugins/media): one row per upload; the bytes are stored
-- once per sha256 by the storage backend.
CREATE TABLE media (
    id          bigserial PRIMARY KEY,
    sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint NOT NULL CHECK (size > 0),
    mime_type   text NOT NULL,
    filename    text NOT NULL,
    purpose     text NOT NULL,
    uploaded_by bigint,
    customer_id bigint,
    width       integer,
    height      integer,
    duration_s  double precision,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_customer ON media (customer_id) WHERE customer_id IS NOT NULL;

-- API.md "Common rules for the channel plugins": AGENT reads and uploads
-- media, ADMIN also manages it.
UPDATE roles SET permissions = array_append(permissions, 'media.read')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('media.read' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'media.upload')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('media.upload' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'media.manage')
    WHERE name = 'ADMIN'
    AND NOT ('media.manage' = ANY (permissions));
