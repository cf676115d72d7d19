package chat

import (
	"context"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
)

// MaxBatch caps the channels of setMemberState and the members of
// addMembers.
const MaxBatch = 100

// SetMemberState sets the caller's member attributes to state in each of
// channelIDs (SignalWire's setMemberState), all or nothing, and publishes
// one memberUpdated(ATTRIBUTES) per channel. It returns the memberships in
// the order of channelIDs, a repeated id once. NOT_FOUND for any channel
// the caller has not joined (or may not see); BAD_USER_INPUT for more than
// MaxBatch channels or a state over the attributes limit.
func (s *Service) SetMemberState(ctx context.Context, channelIDs []string, state models.JSON) ([]*models.Member, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if len(channelIDs) > MaxBatch {
		return nil, apperr.New(apperr.BadUserInput, "channelIds lists %d channels; the limit is %d", len(channelIDs), MaxBatch)
	}
	if err := s.checkAttributes(state); err != nil {
		return nil, err
	}
	ids := compactUnique(channelIDs)
	var (
		out  []*models.Member
		pubs outbox
	)
	err = s.write(ctx, &pubs, func(tx *gorm.DB) error {
		var mine []*models.Member
		if err := tx.Where("user_id = ? AND channel_id IN ? AND status = ?", v.UserID, ids, models.MemberJoined).Find(&mine).Error; err != nil {
			return err
		}
		var channels []*models.Channel
		if err := tx.Where("id IN ?", ids).Find(&channels).Error; err != nil {
			return err
		}
		memberOf := byID(ids, mine, func(m *models.Member) string { return m.ChannelID })
		channelOf := byID(ids, channels, func(c *models.Channel) string { return c.ID })
		memberIDs := make([]string, len(ids))
		for i, id := range ids {
			if memberOf[i] == nil || channelOf[i] == nil {
				return apperr.New(apperr.NotFound, "channel %q not found, or you are not a member of it", id)
			}
			if _, err := accessTo(v, channelOf[i], memberOf[i]); err != nil {
				return apperr.New(apperr.NotFound, "channel %q not found, or you are not a member of it", id)
			}
			memberIDs[i] = memberOf[i].ID
		}
		t := now()
		err := tx.Model(&models.Member{}).Where("id IN ?", memberIDs).
			UpdateColumns(map[string]any{"attributes": state, "updated_at": t}).Error
		if err != nil {
			return err
		}
		for _, m := range memberOf {
			m.Attributes, m.UpdatedAt = state, t
			pubs.add(channelTopic(m.ChannelID), &event{Kind: evMemberUpdated, Member: m, Reasons: []string{ReasonAttributes}})
		}
		out = memberOf
		return nil
	})
	if err != nil {
		return nil, internal("set member state", err)
	}
	s.flush(ctx, pubs)
	return out, nil
}

// compactUnique returns ids without repeats, in first-seen order.
func compactUnique(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// NewMember is one member of AddMembers.
type NewMember struct {
	Identity string
	// Role defaults to MEMBER, Access to READ_WRITE.
	Role        models.MemberRole
	Access      models.MemberAccess
	DisplayName *string
	// ShareHistoryFrom, when set, hides the messages created before it
	// from the member (a time in the future counts as now).
	ShareHistoryFrom *time.Time
}

// AddMembers adds members to a channel (users created when unknown), all or
// nothing, as Azure Communication Services' addParticipants, and returns
// them in order; each gets memberJoined and, on their own topic, ADDED.
// ADMIN or OWNER; only the OWNER adds ADMINs or OWNERs. CONFLICT when any
// of them is already a member or invited (also when a concurrent call just
// added them; nothing is published then); BAD_USER_INPUT for more than
// MaxBatch members, an identity listed twice or an invalid value;
// FORBIDDEN in a DIRECT or CLOSED channel.
func (s *Service) AddMembers(ctx context.Context, channelID string, in []NewMember) ([]*models.Member, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	top, err := s.checkNewMembers(in)
	if err != nil {
		return nil, err
	}
	var (
		added []*models.Member
		out   outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, channelID)
		if err != nil {
			return err
		}
		if err := a.requireGrant("add members", top); err != nil {
			return err
		}
		if err := a.requireNotDirect("add members"); err != nil {
			return err
		}
		if err := a.requireOpen("add members"); err != nil {
			return err
		}
		if len(in) == 0 {
			return nil
		}
		added, err = insertNewMembers(tx, a.ch, in)
		if err != nil {
			return err
		}
		a.ch.MembersCount += len(added)
		users := make([]string, len(added))
		for i, m := range added {
			users[i] = m.UserID
			out.add(channelTopic(channelID), &event{Kind: evMemberJoined, Member: m})
			out.add(userTopic(m.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelAdded, Channel: a.ch})
		}
		return s.systemMessage(tx, &out, channelID, memberEvent(models.SystemMemberAdded, v.UserID, users...))
	})
	if err != nil {
		return nil, internal("add members", err)
	}
	s.flush(ctx, out)
	return added, nil
}

// checkNewMembers validates AddMembers' input and returns the strongest
// role it grants.
func (s *Service) checkNewMembers(in []NewMember) (models.MemberRole, error) {
	if len(in) > MaxBatch {
		return "", apperr.New(apperr.BadUserInput, "members lists %d members; the limit is %d", len(in), MaxBatch)
	}
	top := models.RoleMember
	seen := map[string]bool{}
	for i := range in {
		m := &in[i]
		if err := checkIdentity(m.Identity); err != nil {
			return "", err
		}
		if seen[m.Identity] {
			return "", apperr.New(apperr.BadUserInput, "identity %q is listed twice", m.Identity)
		}
		seen[m.Identity] = true
		if m.Role == "" {
			m.Role = models.RoleMember
		}
		if rank(m.Role) == 0 {
			return "", apperr.New(apperr.BadUserInput, "role must be OWNER, ADMIN or MEMBER")
		}
		if rank(m.Role) > rank(top) {
			top = m.Role
		}
		if m.Access == "" {
			m.Access = models.AccessReadWrite
		}
		if m.Access != models.AccessRead && m.Access != models.AccessReadWrite {
			return "", apperr.New(apperr.BadUserInput, "access must be READ or READ_WRITE")
		}
		if err := s.checkName("displayName", m.DisplayName); err != nil {
			return "", err
		}
	}
	return top, nil
}

// insertNewMembers inserts the checked members of in as JOINED members of
// ch through tx, in a number of statements that does not grow with the
// members (one more per distinct shareHistoryFrom), and counts them.
// CONFLICT, failing the transaction, when any has a membership already.
func insertNewMembers(tx *gorm.DB, ch *models.Channel, in []NewMember) ([]*models.Member, error) {
	identities := make([]string, len(in))
	for i, m := range in {
		identities[i] = m.Identity
	}
	users, err := ensureUsers(tx, identities)
	if err != nil {
		return nil, err
	}
	userIDs := make([]string, len(in))
	for i, m := range in {
		userIDs[i] = users[m.Identity].ID
	}
	var taken []string
	err = tx.Model(&models.Member{}).Joins("JOIN users ON users.id = members.user_id").
		Where("members.channel_id = ? AND members.user_id IN ?", ch.ID, userIDs).Pluck("users.identity", &taken).Error
	if err != nil {
		return nil, err
	}
	if len(taken) > 0 {
		slices.Sort(taken)
		return nil, apperr.New(apperr.Conflict, "%q is already a member of this channel, or invited to it", taken[0])
	}
	t := now()
	startOf := map[int64]int{} // history start by shareHistoryFrom, in Unix microseconds
	rows := make([]*models.Member, len(in))
	for i, nm := range in {
		m := newMember(ch.ID, userIDs[i], nm.Role, models.MemberJoined, t)
		m.Access, m.DisplayName = nm.Access, nm.DisplayName
		if nm.ShareHistoryFrom != nil {
			from := nm.ShareHistoryFrom.UTC().Truncate(time.Microsecond)
			if from.After(t) {
				from = t
			}
			start, ok := startOf[from.UnixMicro()]
			if !ok {
				if start, err = historyStart(tx, ch.ID, from); err != nil {
					return nil, err
				}
				startOf[from.UnixMicro()] = start
			}
			m.ShareHistoryFrom, m.HistoryStart = &from, start
		}
		rows[i] = m
	}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(rows)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected != int64(len(rows)) {
		return nil, apperr.New(apperr.Conflict, "a member of this list was added meanwhile; nothing was added")
	}
	ids := make([]string, len(rows))
	for i, m := range rows {
		ids[i] = m.ID
	}
	if err := db.RecountUnread(tx, ids); err != nil {
		return nil, err
	}
	return rows, addMembersCount(tx, ch.ID, len(rows))
}

// historyStart is the first index that a member sharing the history from
// `from` sees: the one after the last message of the channel created
// before it.
func historyStart(tx *gorm.DB, channelID string, from time.Time) (int, error) {
	var last *int
	err := tx.Model(&models.Message{}).Select("MAX(idx)").Where("channel_id = ? AND created_at < ?", channelID, from).Scan(&last).Error
	if err != nil || last == nil {
		return 0, err
	}
	return *last + 1, nil
}
