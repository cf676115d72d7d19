-- Attachments (issue 11): each row is an upload made by createUpload, whose
-- bytes are kept in the media storage under its id, attached to at most one
-- message. The state and creation time index finds the uploads never
-- attached, and those of deleted messages, for the sweep; the channel and uploader ones, those of a deleted channel or
-- user.

-- +goose Up
CREATE TABLE media (
    id text,
    channel_id text NOT NULL,
    uploader_id text NOT NULL,
    message_id text,
    position integer NOT NULL DEFAULT 0,
    filename text NOT NULL,
    content_type text NOT NULL,
    size integer NOT NULL,
    width integer,
    height integer,
    state text NOT NULL,
    created_at datetime NOT NULL,
    upload_expires_at datetime NOT NULL,
    stored_at datetime,
    PRIMARY KEY (id)
);
CREATE INDEX idx_media_channel ON media (channel_id);
CREATE INDEX idx_media_uploader ON media (uploader_id);
CREATE INDEX idx_media_message ON media (message_id, position);
CREATE INDEX idx_media_state_created ON media (state, created_at);

-- +goose Down
DROP TABLE media;
