-- Unread counts from counters instead of index range scans. A membership's
-- unread messages are its channel's counted_messages (messages ever stored
-- that are not SYSTEM, deleted ones included) less its read_ordinal (those
-- before its first unread index) and its skipped_unread (those from that
-- index on that are its own or deleted); mentions_unread counts the
-- mentions of it from that index on. A message's ordinal is the number of
-- counted messages before it in its channel, so that a new read horizon
-- finds its read_ordinal with one lookup. idx_messages_deleted serves the
-- count of deleted messages after a horizon. The chat package keeps the
-- counters (chat/unread.go); here they are filled from the messages.
-- idx_messages_countable, which served the counts before, goes: every
-- message insert paid for it.
-- idx_members_user_status keeps no read horizon any more: the counts read
-- the membership's row, and a send's horizon move need not rewrite the
-- index entry (PostgreSQL's 00009 did the same).

-- +goose Up
ALTER TABLE messages ADD COLUMN ordinal integer NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN counted_messages integer NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN read_ordinal integer NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN skipped_unread integer NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN mentions_unread integer NOT NULL DEFAULT 0;
UPDATE messages SET ordinal = w.o FROM (
	SELECT id, COALESCE(SUM(CASE WHEN type <> 'SYSTEM' THEN 1 ELSE 0 END)
		OVER (PARTITION BY channel_id ORDER BY idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS o
	FROM messages) AS w
WHERE w.id = messages.id AND w.o <> 0;
UPDATE channels SET counted_messages = (SELECT COUNT(*) FROM messages g WHERE g.channel_id = channels.id AND g.type <> 'SYSTEM');
CREATE INDEX idx_messages_deleted ON messages (channel_id, idx, author_id, deleted_at, type) WHERE deleted_at IS NOT NULL AND type <> 'SYSTEM';
DROP INDEX idx_messages_countable;
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id);
UPDATE members AS m SET
	read_ordinal = COALESCE(
		(SELECT g.ordinal FROM messages g WHERE g.channel_id = m.channel_id AND g.idx = (CASE WHEN m.last_read_index IS NOT NULL AND m.last_read_index >= m.history_start THEN m.last_read_index + 1 ELSE m.history_start END)),
		(SELECT c.counted_messages FROM channels c WHERE c.id = m.channel_id)),
	skipped_unread =
		(SELECT COUNT(*) FROM messages g WHERE g.channel_id = m.channel_id AND g.author_id = m.user_id AND g.idx >= (CASE WHEN m.last_read_index IS NOT NULL AND m.last_read_index >= m.history_start THEN m.last_read_index + 1 ELSE m.history_start END))
		+ (SELECT COUNT(*) FROM messages g WHERE g.channel_id = m.channel_id AND g.idx >= (CASE WHEN m.last_read_index IS NOT NULL AND m.last_read_index >= m.history_start THEN m.last_read_index + 1 ELSE m.history_start END)
			AND g.deleted_at IS NOT NULL AND g.type <> 'SYSTEM' AND (g.author_id IS NULL OR g.author_id <> m.user_id)),
	mentions_unread =
		(SELECT COUNT(*) FROM message_mentions x WHERE x.user_id = m.user_id AND x.channel_id = m.channel_id AND x.idx >= (CASE WHEN m.last_read_index IS NOT NULL AND m.last_read_index >= m.history_start THEN m.last_read_index + 1 ELSE m.history_start END));

-- +goose Down
DROP INDEX idx_members_user_status;
CREATE INDEX idx_members_user_status ON members (user_id, status, channel_id, last_read_index, history_start);
CREATE INDEX idx_messages_countable ON messages (channel_id, idx, author_id, deleted_at, type) WHERE deleted_at IS NULL AND type <> 'SYSTEM';
DROP INDEX idx_messages_deleted;
ALTER TABLE members DROP COLUMN mentions_unread;
ALTER TABLE members DROP COLUMN skipped_unread;
ALTER TABLE members DROP COLUMN read_ordinal;
ALTER TABLE channels DROP COLUMN counted_messages;
ALTER TABLE messages DROP COLUMN ordinal;
