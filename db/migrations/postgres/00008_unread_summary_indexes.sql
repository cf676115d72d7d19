-- unreadSummary counts each of a user's memberships from indexes alone:
-- idx_members_user_status carries the read horizon (last_read_index,
-- history_start) as included columns. idx_messages_countable already
-- serves index-only scans: PostgreSQL needs no column of a partial index's
-- predicate that the query repeats.

-- +goose Up
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id) INCLUDE (last_read_index, history_start);

-- +goose Down
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id);
