-- Channels, membership and sessions as the chat SDKs have them: photos,
-- channel state, DIRECT channels (one per pair of users, by direct_key),
-- invitations (members.status), READ access, display names and shared
-- history; indexes for myChannels' filter and members' status filter.

-- +goose Up
-- Text defaults are written as GORM writes them ("…"), so that its
-- AutoMigrate finds the models and this schema equal.
ALTER TABLE users ADD COLUMN photo_url text;

ALTER TABLE channels ADD COLUMN state text NOT NULL DEFAULT "ACTIVE";
ALTER TABLE channels ADD COLUMN photo_url text;
ALTER TABLE channels ADD COLUMN direct_key text;
CREATE UNIQUE INDEX idx_channels_direct_key ON channels (direct_key);

ALTER TABLE members ADD COLUMN status text NOT NULL DEFAULT "JOINED";
ALTER TABLE members ADD COLUMN access text NOT NULL DEFAULT "READ_WRITE";
ALTER TABLE members ADD COLUMN display_name text;
ALTER TABLE members ADD COLUMN share_history_from datetime;
ALTER TABLE members ADD COLUMN history_start integer NOT NULL DEFAULT 0;
-- myChannels starts from the caller's memberships; idx_members_user_status
-- serves that and more, so idx_members_user_id goes.
DROP INDEX idx_members_user_id;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id);
CREATE INDEX idx_members_channel_status ON members (channel_id, status, id);

-- +goose Down
DROP INDEX idx_members_channel_status;
DROP INDEX idx_members_user_status;
-- In their first order: idx_members_user_id, then idx_members_channel_user.
DROP INDEX idx_members_channel_user;
CREATE INDEX idx_members_user_id ON members (user_id);
CREATE UNIQUE INDEX idx_members_channel_user ON members (channel_id, user_id);
ALTER TABLE members DROP COLUMN history_start;
ALTER TABLE members DROP COLUMN share_history_from;
ALTER TABLE members DROP COLUMN display_name;
ALTER TABLE members DROP COLUMN access;
ALTER TABLE members DROP COLUMN status;

DROP INDEX idx_channels_direct_key;
ALTER TABLE channels DROP COLUMN direct_key;
ALTER TABLE channels DROP COLUMN photo_url;
ALTER TABLE channels DROP COLUMN state;

ALTER TABLE users DROP COLUMN photo_url;
