-- Attachments (issue 11): each row is an upload made by createUpload, whose
-- bytes are kept in the media storage under its id, attached to at most one
-- message. The state and creation time index finds the uploads never
-- attached, and those of deleted messages, for the sweep; the channel and uploader ones, those of a deleted channel or
-- user.

-- +goose Up
CREATE TABLE media (
    id varchar(36),
    channel_id varchar(36) NOT NULL,
    uploader_id varchar(36) NOT NULL,
    message_id varchar(36),
    position bigint NOT NULL DEFAULT 0,
    filename varchar(256) NOT NULL,
    content_type varchar(256) NOT NULL,
    size bigint NOT NULL,
    width bigint,
    height bigint,
    state varchar(16) NOT NULL,
    created_at timestamptz NOT NULL,
    upload_expires_at timestamptz NOT NULL,
    stored_at timestamptz,
    PRIMARY KEY (id)
);
CREATE INDEX idx_media_channel ON media (channel_id);
CREATE INDEX idx_media_uploader ON media (uploader_id);
CREATE INDEX idx_media_message ON media (message_id, position);
CREATE INDEX idx_media_state_created ON media (state, created_at);

-- +goose Down
DROP TABLE media;
