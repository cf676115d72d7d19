-- unreadSummary counts each of a user's memberships from indexes alone:
-- idx_members_user_status carries the read horizon (last_read_index,
-- history_start) after its key, and idx_messages_countable the columns of
-- its own predicate (deleted_at, type), without which SQLite reads every
-- counted message's row to check what the index already guarantees.

-- +goose Up
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id, last_read_index, history_start);
DROP INDEX idx_messages_countable;
CREATE INDEX idx_messages_countable ON messages (channel_id, idx, author_id, deleted_at, type) WHERE deleted_at IS NULL AND type <> 'SYSTEM';

-- +goose Down
-- The indexes of each table are recreated in their first order, which
-- SQLite's schema lists.
DROP INDEX idx_messages_channel_type;
DROP INDEX idx_messages_channel_author;
DROP INDEX idx_messages_countable;
CREATE INDEX idx_messages_countable ON messages (channel_id, idx, author_id) WHERE deleted_at IS NULL AND type <> 'SYSTEM';
CREATE INDEX idx_messages_channel_author ON messages (channel_id, author_id, idx);
CREATE INDEX idx_messages_channel_type ON messages (channel_id, type, idx);
DROP INDEX idx_members_channel_status;
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id);
CREATE INDEX idx_members_channel_status ON members (channel_id, status, id);
