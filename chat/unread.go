package chat

import (
	"context"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// The unread counts, and myChannels' hasUnread filter, are SQL over the
// members table aliased m: for each membership, the messages from its
// first unread index on that count, read through idx_messages_countable
// (the partial index of the messages that count, not deleted and not
// SYSTEM, whose predicate these queries repeat word for word so that both
// databases use it), and the mentions of its user from that index on,
// through idx_message_mentions_user. A membership costs two index range
// scans, whatever the channel's size, and no message row read:
// idx_messages_countable carries every column these queries name
// (migration 00008). On SQLite idx_members_user_status carries the read
// horizon too; on PostgreSQL each membership's row is read, because a
// horizon in an index would make every send's horizon move a non-HOT
// update (migration 00009).
const (
	// readFromSQL is the first index member m has not read.
	readFromSQL = `(CASE WHEN m.last_read_index IS NOT NULL AND m.last_read_index >= m.history_start ` +
		`THEN m.last_read_index + 1 ELSE m.history_start END)`
	// countableSQL holds for a message g that is unread for member m:
	// after their horizon, not deleted, not SYSTEM, not m's own.
	countableSQL = `g.channel_id = m.channel_id AND g.idx >= ` + readFromSQL +
		` AND g.deleted_at IS NULL AND g.type <> 'SYSTEM' AND (g.author_id IS NULL OR g.author_id <> m.user_id)`
	// mentionedSQL holds for a mention x of member m in a message they
	// have not read (a deleted message's mentions are removed with it).
	mentionedSQL = `x.user_id = m.user_id AND x.channel_id = m.channel_id AND x.idx >= ` + readFromSQL
	// unreadMessagesSQL counts m's unread messages.
	unreadMessagesSQL = `(SELECT COUNT(*) FROM messages g WHERE ` + countableSQL + `)`
	// unreadMentionsSQL counts m's unread messages that mention them.
	unreadMentionsSQL = `(SELECT COUNT(*) FROM message_mentions x WHERE ` + mentionedSQL + `)`
	// hasUnreadSQL holds when m has an unread message, as
	// unreadMessagesSQL counts them: the filter myChannels(hasUnread)
	// and the count agree by construction. It stops at the first
	// countable message of the same index range scan.
	hasUnreadSQL = `EXISTS (SELECT 1 FROM messages g WHERE ` + countableSQL + `)`
)

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
	err := q.Table("members AS m").
		Select("m.channel_id AS channel_id, "+unreadMessagesSQL+" AS messages, "+unreadMentionsSQL+" AS mentions").
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
	// Joins, not scalar subqueries per membership: PostgreSQL ran those
	// as a sub-plan started 2,000 times for 1,000 channels, and SQLite
	// ran each twice when the aggregate named it twice.
	joined := func() *gorm.DB {
		q := s.store.DB(ctx).Table("members AS m").Where("m.user_id = ? AND m.status = ?", v.UserID, models.MemberJoined)
		if v.grants != nil {
			q = v.scopeChannels(q.Joins("JOIN channels ON channels.id = m.channel_id"))
		}
		return q
	}
	mentions := joined().Select("COUNT(*)").Joins("JOIN message_mentions x ON " + mentionedSQL)
	// One count per membership, summed: the channels with unread
	// messages are the memberships whose count is not zero, where
	// COUNT(DISTINCT channel) over the joined messages built a temporary
	// b-tree of every unread message (a fifth of SQLite's time at 1,000
	// channels). SQLite counts a membership's messages in the join,
	// grouped by channel in the order idx_members_user_status yields the
	// memberships, so the groups stream without a sort, and the inner
	// join leaves out the memberships with nothing unread. PostgreSQL
	// hashes the caller's memberships and reads every message of every
	// channel instead whenever its cost model finds that cheaper than a
	// thousand index probes, which it does below some hundred thousand
	// messages in the whole database: the query then costs what the
	// table holds, not what the caller has unread. A LATERAL count can
	// only be run per membership, as SQLite runs the join.
	per := joined().Select("COUNT(*) AS n").Joins("JOIN messages g ON " + countableSQL).Group("m.channel_id")
	if per.Dialector.Name() != "sqlite" {
		per = joined().Select("g.n").Joins("CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM messages g WHERE " + countableSQL + ") g")
	}
	var sum UnreadSummary
	err = s.store.DB(ctx).Table("(?) AS u", per).
		Select("COUNT(CASE WHEN u.n > 0 THEN 1 END) AS channels, COALESCE(SUM(u.n), 0) AS messages, (?) AS mentions", mentions).
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
	err := q.Table("members AS m").
		Select("m.user_id AS user_id, SUM("+unreadMessagesSQL+") AS total").
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
		ids := make([]string, len(behind))
		for i, m := range behind {
			ids[i] = m.ID
		}
		t := now()
		err := tx.Model(&models.Member{}).Where("id IN ?", ids).UpdateColumns(map[string]any{
			"last_read_index": gorm.Expr("(SELECT channels.next_message_index - 1 FROM channels WHERE channels.id = members.channel_id)"),
			"last_read_at":    t, "updated_at": t,
		}).Error
		if err != nil {
			return err
		}
		if err := tx.Where("id IN ?", ids).Order("id").Find(&changed).Error; err != nil {
			return err
		}
		channelIDs := make([]string, len(changed))
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
