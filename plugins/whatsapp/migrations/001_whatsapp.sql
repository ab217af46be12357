-- WhatsApp conversations of the whatsapp plugin (plugins/whatsapp).  The
-- customer's WhatsApp id (their phone number's digits) and message texts
-- are stored only sealed (api->seal); the number has a keyed blind index
-- (api->blind_index, domain "phone") for equality lookups.

-- One conversation per customer at a time that is not CLOSED; a customer
-- writing to a CLOSED one starts a new one.  window_expires_at is
-- last_inbound_at + 24 h: free-form messages are refused after it.
CREATE TABLE whatsapp_conversations (
    id                  bigserial PRIMARY KEY,
    customer_id         bigint NOT NULL,
    wa_sealed           text NOT NULL,
    wa_index            text NOT NULL,
    status              text NOT NULL CHECK (status IN ('NEW', 'ACTIVE',
                        'EXPIRED', 'CLOSED')),
    assigned_to         bigint,
    -- The name the customer's WhatsApp profile shows (from the webhook).
    profile_name        text,
    last_inbound_at     timestamptz,
    window_expires_at   timestamptz,
    last_message_at     timestamptz,
    unread              integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX whatsapp_conversations_open ON whatsapp_conversations
    (wa_index) WHERE status <> 'CLOSED';
CREATE INDEX whatsapp_conversations_customer ON whatsapp_conversations
    (customer_id, id DESC);
CREATE INDEX whatsapp_conversations_status ON whatsapp_conversations
    (status, id DESC);
CREATE INDEX whatsapp_conversations_assigned ON whatsapp_conversations
    (assigned_to, id DESC) WHERE assigned_to IS NOT NULL;
CREATE INDEX whatsapp_conversations_expiry ON whatsapp_conversations
    (window_expires_at) WHERE status IN ('NEW', 'ACTIVE');

-- Messages both ways.  Texts and captions sealed; `payload` keeps what a
-- type carries beyond them (a location, a reaction, an interactive
-- reply, the raw type of an unsupported message) without phone numbers.
CREATE TABLE whatsapp_messages (
    id                  bigserial PRIMARY KEY,
    conversation_id     bigint NOT NULL REFERENCES whatsapp_conversations (id)
                        ON DELETE CASCADE,
    customer_id         bigint NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('outbound', 'inbound')),
    type                text NOT NULL CHECK (type IN ('text', 'template',
                        'image', 'document', 'audio', 'video', 'sticker',
                        'location', 'reaction', 'unsupported')),
    text_sealed         text,
    caption_sealed      text,
    template            jsonb,
    media_id            bigint,
    -- Inbound media: Graph's id of it, until the download job has it.
    graph_media_id      text,
    payload             jsonb,
    wa_message_id       text,
    status              text NOT NULL CHECK (status IN ('queued', 'sent',
                        'delivered', 'read', 'failed', 'received')),
    error_code          integer,
    error_title         text,
    error_detail        text,
    sent_by             bigint,
    -- The send job's request may have left: a job that finds it set
    -- after a lost worker waits for Meta's status webhook to name the
    -- message (biz_opaque_callback_data) before sending it again.
    inflight_at         timestamptz,
    attempts            integer NOT NULL DEFAULT 0,
    sent_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX whatsapp_messages_wamid ON whatsapp_messages
    (wa_message_id) WHERE wa_message_id IS NOT NULL;
CREATE INDEX whatsapp_messages_conversation ON whatsapp_messages
    (conversation_id, id);
CREATE INDEX whatsapp_messages_customer ON whatsapp_messages
    (customer_id, created_at DESC);
CREATE INDEX whatsapp_messages_created ON whatsapp_messages (created_at);

-- Every status a message went through, once per status (a replayed
-- webhook adds nothing); `late` when it did not move the status.
CREATE TABLE whatsapp_message_events (
    id          bigserial PRIMARY KEY,
    message_id  bigint NOT NULL REFERENCES whatsapp_messages (id) ON DELETE CASCADE,
    status      text NOT NULL,
    detail      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX whatsapp_message_events_once ON whatsapp_message_events
    (message_id, status);

-- Status webhooks for message ids no message holds yet (the send job has
-- not recorded Meta's answer): applied when it does.
CREATE TABLE whatsapp_status_pending (
    wa_message_id   text NOT NULL,
    status          text NOT NULL,
    fields          jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (wa_message_id, status)
);

-- The durable webhook inbox: one row per message or status, written by
-- the webhook after the signature check, applied by the drain job.
CREATE TABLE whatsapp_inbox (
    id          bigserial PRIMARY KEY,
    dedupe      text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('message', 'status')),
    fields      jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- The templates as the Graph API lists them, synced.
CREATE TABLE whatsapp_templates (
    name        text NOT NULL,
    language    text NOT NULL,
    status      text NOT NULL,
    category    text,
    graph_id    text,
    components  jsonb NOT NULL DEFAULT '[]',
    -- {{n}} placeholders per component type: {"BODY": 2, "HEADER": 1}
    params      jsonb NOT NULL DEFAULT '{}',
    synced_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, language)
);

-- Template syncs started so far: a sync asked for while one waits is that
-- one (its job's key names this generation); one asked for while a sync
-- runs is a new job.
CREATE TABLE whatsapp_template_sync (
    id          integer PRIMARY KEY CHECK (id = 1),
    generation  bigint NOT NULL DEFAULT 0
);
INSERT INTO whatsapp_template_sync (id) VALUES (1);

-- A media item uploaded to Graph for a phone number id: Graph keeps
-- uploads for 30 days, so an id older than `expires_at` is uploaded again.
CREATE TABLE whatsapp_media_uploads (
    media_id        bigint NOT NULL,
    phone_number_id text NOT NULL,
    graph_media_id  text NOT NULL,
    uploaded_at     timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (media_id, phone_number_id)
);

-- API.md "Common rules for the channel plugins": AGENT and ADMIN read
-- and send WhatsApp messages; ADMIN manages templates.
UPDATE roles SET permissions = array_append(permissions, 'whatsapp.read')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('whatsapp.read' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'whatsapp.send')
    WHERE name IN ('ADMIN', 'AGENT')
    AND NOT ('whatsapp.send' = ANY (permissions));
UPDATE roles SET permissions = array_append(permissions, 'whatsapp.manage')
    WHERE name = 'ADMIN'
    AND NOT ('whatsapp.manage' = ANY (permissions));
