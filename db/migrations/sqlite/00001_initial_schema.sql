-- The schema that Parley created with GORM's AutoMigrate before it had
-- versioned migrations, column for column and index for index. IF NOT EXISTS
-- lets this migration adopt such a database: its tables and rows stay as
-- they are, and only the migration is recorded.

-- +goose Up
CREATE TABLE IF NOT EXISTS parley_secrets (
    key text,
    value text NOT NULL,
    created_at datetime NOT NULL,
    PRIMARY KEY (key)
);

CREATE TABLE IF NOT EXISTS users (
    id text,
    identity text NOT NULL,
    friendly_name text,
    attributes text,
    created_at datetime NOT NULL,
    updated_at datetime NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_users_identity ON users (identity);

CREATE TABLE IF NOT EXISTS channels (
    id text,
    unique_name text,
    friendly_name text,
    type text NOT NULL,
    attributes text,
    created_by_id text,
    created_at datetime NOT NULL,
    updated_at datetime NOT NULL,
    next_message_index integer NOT NULL DEFAULT 0,
    last_message_id text,
    last_activity_us integer NOT NULL DEFAULT 0,
    messages_count integer NOT NULL DEFAULT 0,
    members_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_channels_type_id ON channels (type);
CREATE UNIQUE INDEX IF NOT EXISTS idx_channels_unique_name ON channels (unique_name);

CREATE TABLE IF NOT EXISTS members (
    id text,
    channel_id text NOT NULL,
    user_id text NOT NULL,
    role text NOT NULL,
    last_read_index integer,
    last_read_at datetime,
    attributes text,
    joined_at datetime NOT NULL,
    updated_at datetime NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS idx_members_user_id ON members (user_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_members_channel_user ON members (channel_id, user_id);

CREATE TABLE IF NOT EXISTS messages (
    id text,
    channel_id text NOT NULL,
    idx integer NOT NULL,
    author_id text,
    body text NOT NULL,
    attributes text,
    created_at datetime NOT NULL,
    edited_at datetime,
    deleted_at datetime,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_messages_channel_index ON messages (channel_id, idx);

CREATE TABLE IF NOT EXISTS push_registrations (
    id text,
    user_id text NOT NULL,
    provider text NOT NULL,
    token text NOT NULL,
    created_at datetime NOT NULL,
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
