package db

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/models"
)

// ReadFromSQL is the first index that member m (the members table's alias)
// has not read: the one after their read horizon, or their history start
// when they have read nothing they may see.
const ReadFromSQL = `(CASE WHEN m.last_read_index IS NOT NULL AND m.last_read_index >= m.history_start ` +
	`THEN m.last_read_index + 1 ELSE m.history_start END)`

// recountSQL sets each unread counter of the memberships m it is given a
// WHERE clause for from the messages (see models.Member), through the
// unique index of (channel, index), idx_messages_channel_author,
// idx_messages_deleted and idx_message_mentions_user: ranges of the
// member's own messages, deleted messages and mentions after their
// horizon, not of every message.
const recountSQL = `UPDATE members AS m SET
	read_ordinal = COALESCE(
		(SELECT g.ordinal FROM messages g WHERE g.channel_id = m.channel_id AND g.idx = ` + ReadFromSQL + `),
		(SELECT c.counted_messages FROM channels c WHERE c.id = m.channel_id)),
	skipped_unread =
		(SELECT COUNT(*) FROM messages g WHERE g.channel_id = m.channel_id AND g.author_id = m.user_id AND g.idx >= ` + ReadFromSQL + `)
		+ (SELECT COUNT(*) FROM messages g WHERE g.channel_id = m.channel_id AND g.idx >= ` + ReadFromSQL + `
			AND g.deleted_at IS NOT NULL AND g.type <> 'SYSTEM' AND (g.author_id IS NULL OR g.author_id <> m.user_id)),
	mentions_unread =
		(SELECT COUNT(*) FROM message_mentions x WHERE x.user_id = m.user_id AND x.channel_id = m.channel_id AND x.idx >= ` + ReadFromSQL + `)`

// RecountUnread sets the unread counters of the memberships memberIDs
// (read_ordinal, skipped_unread and mentions_unread, see models.Member)
// from the messages, through tx, a transaction of Write that has already
// written those memberships (moved their horizons, inserted them) and so
// holds their rows locked on PostgreSQL. The count runs in a statement of
// its own after the lock was taken: a transaction that changed one of them
// before (a deletion skipping a message, a send adding a mention) has
// committed by then, and the count sees its change. In the same UPDATE as
// the write, it would count from the snapshot that statement started with
// and then overwrite the change it waited for.
func RecountUnread(tx *gorm.DB, memberIDs []string) error {
	if len(memberIDs) == 0 {
		return nil
	}
	return tx.Exec(recountSQL+" WHERE m.id IN ?", memberIDs).Error
}

// RecountChannelsUnread is RecountUnread for every membership of
// channelIDs, which it locks first, in ID order, on PostgreSQL.
func RecountChannelsUnread(tx *gorm.DB, channelIDs []string) error {
	if len(channelIDs) == 0 {
		return nil
	}
	q := tx.Model(&models.Member{}).Where("channel_id IN ?", channelIDs).Order("id")
	if tx.Dialector.Name() != DialectSQLite {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var ids []string
	if err := q.Pluck("id", &ids).Error; err != nil {
		return err
	}
	return RecountUnread(tx, ids)
}
