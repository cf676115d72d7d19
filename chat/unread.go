package chat

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
)

// A membership's unread messages are counted, not scanned for: they are
// its channel's counted_messages (messages ever sent that are not SYSTEM,
// deleted ones included) less its read_ordinal (those before its first
// unread index) and its skipped_unread (those from that index on that are
// its own or deleted), and its unread mentions are its mentions_unread
// (see models.Member). A user's unread totals over a thousand channels
// then read a thousand membership and channel rows, where counting the
// messages after each horizon cost a thousand index range scans and a
// heap fetch per unread message (BENCHMARKS.md, round 11).
//
// The counters move with what moves them, in the transaction that does:
//   - a send batch adds its messages to counted_messages (takeIndexes),
//     sets its senders' counters with their horizons (moveReadHorizons)
//     and adds the mentions of the others (addUnreadMentions);
//   - deleting messages skips them for those who have not read them
//     (skipDeleted);
//   - markAllRead sets them to nothing unread, with the channels locked;
//   - everything else that moves a horizon or a history start, or adds
//     messages or members otherwise, recounts the memberships it changed
//     from the messages (db.RecountUnread; db.ImportMessagesTx does too).
//
// On PostgreSQL the relative changes (a send's mentions, a deletion)
// commute with each other; a recount reads the messages only once its
// memberships are locked (written earlier in the transaction, or locked
// by db.RecountChannelsUnread), in a statement of its own, so that it
// counts every change committed by a transaction that held one of them
// before it (see db.RecountUnread). parleytest checks the counters
// against the messages after every test on both databases.
const (
	// readFromSQL is the first index member m has not read.
	readFromSQL = db.ReadFromSQL
	// unreadMentionsSQL is m's unread messages that mention them.
	unreadMentionsSQL = `m.mentions_unread`
)

// unreadSQL is member m's unread messages in channel ch, a table or its
// alias: not deleted, not SYSTEM, not m's own, from their first unread
// index on.
func unreadSQL(ch string) string {
	return "(" + ch + ".counted_messages - m.read_ordinal - m.skipped_unread)"
}

// skipDeleted counts msg, deleted in this transaction, as skipped for each
// member of its channel who had not read it but its author, and takes its
// mentions (not yet removed) off the unread mentions of those who had not
// read it. A SYSTEM message counts for no one.
func skipDeleted(tx *gorm.DB, msg *models.Message) error {
	if msg.Type() == models.MessageSystem {
		return nil
	}
	unread := "UPDATE members AS m SET %s WHERE m.channel_id = ? AND " + readFromSQL + " <= ? AND %s"
	notAuthor, args := "TRUE", []any{msg.ChannelID, msg.Index}
	if msg.AuthorID != nil {
		notAuthor, args = "m.user_id <> ?", append(args, *msg.AuthorID)
	}
	if err := tx.Exec(fmt.Sprintf(unread, "skipped_unread = skipped_unread + 1", notAuthor), args...).Error; err != nil {
		return err
	}
	return tx.Exec(fmt.Sprintf(unread, "mentions_unread = mentions_unread - 1", "m.user_id IN (SELECT x.user_id FROM message_mentions x WHERE x.message_id = ?)"),
		msg.ChannelID, msg.Index, msg.ID).Error
}

// Unread is one channel's unread counts for a member.
type Unread struct {
	// Messages counts as Channel.unreadCount does.
	Messages int
	// Mentions counts the unread messages that mention the member.
	Mentions int
}

// UnreadSummary is a user's unread totals over the channels they joined.
type UnreadSummary struct {
	// Channels counts the channels with unread messages.
	Channels int
	Messages int
	Mentions int
}

// UnreadCount is the number of the caller's unread messages in ch: those
// after their read horizon (all they may see when they never read), without
// deleted and system messages and their own; 0 when they have not joined.
// Loaded with the caller's membership (see Loaders), so a page of
// channels costs no query more.
func (s *Service) UnreadCount(ctx context.Context, ch *models.Channel) (int, error) {
	u, err := s.loaders(ctx).unread(ctx, ch.ID)
	return u.Messages, err
}

// UnreadMentionsCount is the number of the caller's unread messages in ch
// that mention them, counted as UnreadCount counts.
func (s *Service) UnreadMentionsCount(ctx context.Context, ch *models.Channel) (int, error) {
	u, err := s.loaders(ctx).unread(ctx, ch.ID)
	return u.Mentions, err
}

// UnreadOf returns the caller's unread counts in each of channelIDs, in
// their order: zero for a channel they have not joined. One query
// whatever the number of channels. Safe for concurrent use; errors are
// INTERNAL, or UNAUTHENTICATED without a caller.
func (s *Service) UnreadOf(ctx context.Context, channelIDs []string) ([]Unread, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := unreadByChannel(s.store.DB(ctx), v.UserID, channelIDs)
	if err != nil {
		return nil, internal("count unread messages", err)
	}
	out := make([]Unread, len(channelIDs))
	for i, id := range channelIDs {
		out[i] = counts[id]
	}
	return out, nil
}

// unreadByChannel counts user's unread messages and mentions in each of
// channelIDs they joined, in one query.
func unreadByChannel(q *gorm.DB, userID string, channelIDs []string) (map[string]Unread, error) {
	var rows []struct {
		ChannelID string
		Messages  int
		Mentions  int
	}
	err := q.Table("members AS m").Joins("JOIN channels c ON c.id = m.channel_id").
		Select("m.channel_id AS channel_id, "+unreadSQL("c")+" AS messages, "+unreadMentionsSQL+" AS mentions").
		Where("m.user_id = ? AND m.status = ? AND m.channel_id IN ?", userID, models.MemberJoined, channelIDs).
		Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make(map[string]Unread, len(rows))
	for _, r := range rows {
		out[r.ChannelID] = Unread{Messages: r.Messages, Mentions: r.Mentions}
	}
	return out, nil
}

// UnreadSummary is the caller's unread totals over every channel they
// joined (those their token's grants name, when it is limited), counted
// as UnreadCount counts, in one aggregate query, read once per set of
// loaders (a request, or a subscription event) however many fields ask.
// Safe for concurrent use; errors are INTERNAL, or UNAUTHENTICATED
// without a caller.
func (s *Service) UnreadSummary(ctx context.Context) (*UnreadSummary, error) {
	return s.loaders(ctx).unreadSummary(ctx)
}

// unreadSummary reads the caller's unread totals (see UnreadSummary).
func (s *Service) unreadSummary(ctx context.Context) (*UnreadSummary, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	q := s.store.DB(ctx).Table("members AS m").Joins("JOIN channels ON channels.id = m.channel_id").
		Where("m.user_id = ? AND m.status = ?", v.UserID, models.MemberJoined)
	n := unreadSQL("channels")
	var sum UnreadSummary
	err = v.scopeChannels(q).
		Select("COUNT(CASE WHEN " + n + " > 0 THEN 1 END) AS channels, COALESCE(SUM(" + n + "), 0) AS messages, COALESCE(SUM(" + unreadMentionsSQL + "), 0) AS mentions").
		Scan(&sum).Error
	if err != nil {
		return nil, internal("count unread messages", err)
	}
	return &sum, nil
}

// unreadTotals returns each user's unread messages across their joined
// channels that are not MUTED, counted as UnreadCount counts, in one
// grouped query: the badges of pushes.
func unreadTotals(q *gorm.DB, users []string) (map[string]int, error) {
	var rows []struct {
		UserID string
		Total  int
	}
	err := q.Table("members AS m").Joins("JOIN channels c ON c.id = m.channel_id").
		Select("m.user_id AS user_id, SUM("+unreadSQL("c")+") AS total").
		Where("m.user_id IN ? AND m.status = ? AND m.notification_level <> ?", users, models.MemberJoined, models.LevelMuted).
		Group("m.user_id").
		Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.UserID] = r.Total
	}
	return out, nil
}

// SetReadHorizon moves the caller's read horizon in a channel to index,
// backwards too, or clears it (nothing read) when index is nil. Their own
// membership only; BAD_USER_INPUT when index is not a message they may
// see. Publishes memberUpdated(LAST_READ) when the horizon changed.
func (s *Service) SetReadHorizon(ctx context.Context, channelID string, index *int) (*models.Member, error) {
	return s.moveReadHorizon(ctx, channelID, index, false)
}

// moveReadHorizon sets the caller's read horizon in a channel to index
// (nil clears it), only forward when forwardOnly, and publishes
// memberUpdated(LAST_READ) when it moved.
func (s *Service) moveReadHorizon(ctx context.Context, channelID string, index *int, forwardOnly bool) (*models.Member, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	var (
		m   models.Member
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if err := a.requireOwnMembership(); err != nil {
			return err
		}
		t := now()
		changes := map[string]any{"last_read_index": nil, "last_read_at": nil, "updated_at": t}
		q := tx.Model(&models.Member{}).Where("id = ?", a.me.ID)
		switch {
		case index == nil:
			q = q.Where("last_read_index IS NOT NULL")
		case *index < a.me.HistoryStart || *index >= a.ch.NextMessageIndex:
			return apperr.New(apperr.BadUserInput, "index %d is not a message of this channel (%d to %d)", *index, a.me.HistoryStart, a.ch.NextMessageIndex-1)
		case forwardOnly:
			q = q.Where("last_read_index IS NULL OR last_read_index < ?", *index)
		default:
			q = q.Where("last_read_index IS NULL OR last_read_index <> ?", *index)
		}
		if index != nil {
			changes["last_read_index"], changes["last_read_at"] = *index, t
		}
		res := q.UpdateColumns(changes)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			if err := db.RecountUnread(tx, []string{a.me.ID}); err != nil {
				return err
			}
		}
		if err := tx.Take(&m, "id = ?", a.me.ID).Error; err != nil {
			return err
		}
		if res.RowsAffected == 1 {
			out.add(channelTopic(channelID), &event{Kind: evMemberUpdated, Member: &m, Channel: a.ch, Reasons: []string{ReasonLastRead}})
		}
		return nil
	})
	if err != nil {
		return nil, internal("move read horizon", err)
	}
	s.flush(ctx, out)
	return &m, nil
}

// MarkAllRead moves the caller's read horizon in every channel they joined
// (that their token's grants name) to its newest message, and returns in
// how many channels it moved. One memberUpdated(LAST_READ) per channel
// that changed.
func (s *Service) MarkAllRead(ctx context.Context) (int, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return 0, err
	}
	var (
		changed []*models.Member
		out     outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		q := tx.Table("members").
			Joins("JOIN channels ON channels.id = members.channel_id").
			Where("members.user_id = ? AND members.status = ? AND channels.next_message_index > members.history_start", v.UserID, models.MemberJoined).
			Where("members.last_read_index IS NULL OR members.last_read_index < channels.next_message_index - 1")
		var behind []*models.Member
		if err := v.scopeChannels(q).Find(&behind).Error; err != nil {
			return err
		}
		if len(behind) == 0 {
			return nil
		}
		ids, channelIDs := make([]string, len(behind)), make([]string, len(behind))
		for i, m := range behind {
			ids[i], channelIDs[i] = m.ID, m.ChannelID
		}
		// A send batch may hold several of these channels and their
		// memberships: their rows come first (see lockChannels).
		if err := lockChannels(tx, channelIDs...); err != nil {
			return err
		}
		// Everything is read now: the counters need no count (see
		// unreadSQL), and the locked channels take no message meanwhile.
		t := now()
		err := tx.Model(&models.Member{}).Where("id IN ?", ids).UpdateColumns(map[string]any{
			"last_read_index": gorm.Expr("(SELECT channels.next_message_index - 1 FROM channels WHERE channels.id = members.channel_id)"),
			"read_ordinal":    gorm.Expr("(SELECT channels.counted_messages FROM channels WHERE channels.id = members.channel_id)"),
			"skipped_unread":  0, "mentions_unread": 0,
			"last_read_at": t, "updated_at": t,
		}).Error
		if err != nil {
			return err
		}
		if err := tx.Where("id IN ?", ids).Order("id").Find(&changed).Error; err != nil {
			return err
		}
		channelIDs = make([]string, len(changed))
		for i, m := range changed {
			channelIDs[i] = m.ChannelID
		}
		var channels []*models.Channel
		if err := tx.Where("id IN ?", channelIDs).Find(&channels).Error; err != nil {
			return err
		}
		// Every event names its channel, as markRead's do: channelEvents
		// and unreadChanged read it from there.
		for i, ch := range byID(channelIDs, channels, func(c *models.Channel) string { return c.ID }) {
			m := changed[i]
			out.add(channelTopic(m.ChannelID), &event{Kind: evMemberUpdated, Member: m, Channel: ch, Reasons: []string{ReasonLastRead}})
		}
		return nil
	})
	if err != nil {
		return 0, internal("mark all read", err)
	}
	s.flush(ctx, out)
	return len(changed), nil
}
