-- Messages as the chat SDKs have them: a type (TEXT, MEDIA, LOCATION,
-- SYSTEM), an origin and a priority, the sender's display name, a location,
-- the system event of a system message, the client's id for idempotent
-- sends, who edited last, and mentions. Indexes for the unread counts (the
-- messages that count: not deleted, not system) and the history filters.

-- +goose Up
-- Text defaults are written as GORM writes them ("…"), so that its
-- AutoMigrate finds the models and this schema equal.
ALTER TABLE messages ADD COLUMN type text NOT NULL DEFAULT "TEXT";
ALTER TABLE messages ADD COLUMN origin text NOT NULL DEFAULT "USER";
ALTER TABLE messages ADD COLUMN priority text NOT NULL DEFAULT "NORMAL";
ALTER TABLE messages ADD COLUMN sender_display_name text;
ALTER TABLE messages ADD COLUMN latitude double precision;
ALTER TABLE messages ADD COLUMN longitude double precision;
ALTER TABLE messages ADD COLUMN system text;
ALTER TABLE messages ADD COLUMN client_message_id text;
ALTER TABLE messages ADD COLUMN updated_by_id text;
CREATE UNIQUE INDEX idx_messages_client_id ON messages (channel_id, author_id, client_message_id) WHERE client_message_id IS NOT NULL;
CREATE INDEX idx_messages_countable ON messages (channel_id, idx, author_id) WHERE deleted_at IS NULL AND type <> 'SYSTEM';
CREATE INDEX idx_messages_channel_author ON messages (channel_id, author_id, idx);
CREATE INDEX idx_messages_channel_type ON messages (channel_id, type, idx);

CREATE TABLE message_mentions (
    message_id text,
    user_id text,
    channel_id text NOT NULL,
    idx integer NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX idx_message_mentions_user ON message_mentions (user_id, channel_id, idx);

-- +goose Down
DROP TABLE message_mentions;
DROP INDEX idx_messages_channel_type;
DROP INDEX idx_messages_channel_author;
DROP INDEX idx_messages_countable;
DROP INDEX idx_messages_client_id;
ALTER TABLE messages DROP COLUMN updated_by_id;
ALTER TABLE messages DROP COLUMN client_message_id;
ALTER TABLE messages DROP COLUMN system;
ALTER TABLE messages DROP COLUMN longitude;
ALTER TABLE messages DROP COLUMN latitude;
ALTER TABLE messages DROP COLUMN sender_display_name;
ALTER TABLE messages DROP COLUMN priority;
ALTER TABLE messages DROP COLUMN origin;
ALTER TABLE messages DROP COLUMN type;
