-- PostgreSQL's 00009 takes the read horizon out of idx_members_user_status
-- so that moving it is a heap-only update. SQLite has no such updates (any
-- change to an indexed column rewrites its index entries, and a row update
-- rewrites the row either way), so its index keeps the horizon and
-- unreadSummary keeps reading memberships from the index alone.

-- +goose Up

-- +goose Down
