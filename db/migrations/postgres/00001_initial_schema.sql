-- The schema that Parley created with GORM's AutoMigrate before it had
-- versioned migrations, column for column and index for index. IF NOT EXISTS
-- lets this migration adopt such a database: its tables and rows stay as
-- they are, and only the migration is recorded.

-- +goose Up
CREATE TABLE IF NOT EXISTS parley_secrets (
    key text,
    value text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (key)
);

CREATE TABLE IF NOT EXISTS users (
    id varchar(36),
    identity varchar(256) NOT NULL,
    friendly_name varchar(256),
    attributes jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_users_identity ON users (identity);

CREATE TABLE IF NOT EXISTS channels (
    id varchar(36),
    unique_name varchar(256),
    friendly_name varchar(256),
    type varchar(16) NOT NULL,
    attributes jsonb,
    created_by_id varchar(36),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    next_message_index bigint NOT NULL DEFAULT 0,
    last_message_id varchar(36),
    last_activity_us bigint NOT NULL DEFAULT 0,
    messages_count bigint NOT NULL DEFAULT 0,
    members_count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_channels_type_id ON channels (type);
CREATE UNIQUE INDEX IF NOT EXISTS idx_channels_unique_name ON channels (unique_name);

CREATE TABLE IF NOT EXISTS members (
    id varchar(36),
    channel_id varchar(36) NOT NULL,
    user_id varchar(36) NOT NULL,
    role varchar(16) NOT NULL,
    last_read_index bigint,
    last_read_at timestamptz,
    attributes jsonb,
    joined_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_members_user_id ON members (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_members_channel_user ON members (channel_id, user_id);

CREATE TABLE IF NOT EXISTS messages (
    id varchar(36),
    channel_id varchar(36) NOT NULL,
    idx bigint NOT NULL,
    author_id varchar(36),
    body text NOT NULL,
    attributes jsonb,
    created_at timestamptz NOT NULL,
    edited_at timestamptz,
    deleted_at timestamptz,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_messages_channel_index ON messages (channel_id, idx);

CREATE TABLE IF NOT EXISTS push_registrations (
    id varchar(36),
    user_id varchar(36) NOT NULL,
    provider varchar(8) NOT NULL,
    token varchar(512) NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_push_provider_token ON push_registrations (provider, token);
CREATE INDEX IF NOT EXISTS idx_push_registrations_user_id ON push_registrations (user_id);

-- +goose Down
DROP TABLE push_registrations;
DROP TABLE messages;
DROP TABLE members;
DROP TABLE channels;
DROP TABLE users;
DROP TABLE parley_secrets;
