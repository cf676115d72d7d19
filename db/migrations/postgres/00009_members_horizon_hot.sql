-- A send moves its author's read horizon (members.last_read_index) in
-- every batch. With the horizon in idx_members_user_status (00008's INCLUDE
-- columns) that UPDATE cannot be a heap-only (HOT) update: each one writes
-- a new row version and an entry in every index of members, and lookups of
-- a busy sender's membership walk the dead versions until a vacuum. Without
-- it the UPDATE changes no indexed column and stays on its page.
-- unreadSummary reads the caller's membership rows instead (one heap fetch
-- per channel, through the same index).

-- +goose Up
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id);

-- +goose Down
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id) INCLUDE (last_read_index, history_start);
