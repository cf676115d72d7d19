package chat

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// NewChannel is the input of CreateChannel.
type NewChannel struct {
	UniqueName   *string
	FriendlyName *string
	Type         models.ChannelType
	Attributes   models.JSON
	PhotoURL     *string
	// Members are identities to add as MEMBERs; unknown ones are created.
	Members []string
}

// ChannelPatch is a change to a channel's metadata.
type ChannelPatch struct {
	FriendlyName Optional[*string]
	UniqueName   Optional[*string]
	// Attributes replaces the attributes whole; AttributesPatch merges a
	// JSON merge patch (RFC 7396) into them. At most one may be set.
	Attributes      Optional[models.JSON]
	AttributesPatch Optional[models.JSON]
	PhotoURL        Optional[*string]
}

// ChannelOrderField is a sort key of MyChannels.
type ChannelOrderField int

// The sort keys of MyChannels.
const (
	OrderLastMessage ChannelOrderField = iota
	OrderFriendlyName
	OrderUniqueName
)

// ChannelOrder sorts MyChannels.
type ChannelOrder struct {
	Field ChannelOrderField
	// Descending, or nil for the field's natural direction: newest first
	// for LAST_MESSAGE, A to Z for names.
	Descending *bool
}

// CreateChannel creates a channel with the caller as OWNER and the listed
// identities as MEMBERs. CONFLICT when uniqueName is taken; BAD_USER_INPUT
// over a limit, and nothing is written. A token limited by grants creates
// only channels whose uniqueName they name (FORBIDDEN otherwise).
func (s *Service) CreateChannel(ctx context.Context, in NewChannel) (*models.Channel, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.checkNewChannel(in); err != nil {
		return nil, err
	}
	if err := v.mayCreate(in.UniqueName); err != nil {
		return nil, err
	}
	var (
		ch  *models.Channel
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		if err := checkUniqueNameFree(tx, in.UniqueName, ""); err != nil {
			return err
		}
		ch, out, err = insertChannel(tx, v, in, false)
		return err
	})
	if err != nil {
		return nil, internal("create channel", err)
	}
	s.flush(ctx, out)
	return ch, nil
}

// GetOrCreateChannel returns the channel named in.UniqueName when the
// caller may see it, and otherwise creates it as CreateChannel does (the
// other fields of in apply only then). Concurrent calls create one channel:
// the insert of a later one does nothing, and it returns the first one's
// channel. BAD_USER_INPUT without a uniqueName; CONFLICT when the name
// belongs to a channel the caller may not see.
func (s *Service) GetOrCreateChannel(ctx context.Context, in NewChannel) (*models.Channel, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if in.UniqueName == nil {
		return nil, apperr.New(apperr.BadUserInput, "getOrCreateChannel needs a uniqueName")
	}
	if err := s.checkNewChannel(in); err != nil {
		return nil, err
	}
	var (
		ch  *models.Channel
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		var found models.Channel
		err := tx.Select("id").Take(&found, "unique_name = ?", *in.UniqueName).Error
		if isNotFound(err) {
			if err := v.mayCreate(in.UniqueName); err != nil {
				return err
			}
			ch, out, err = insertChannel(tx, v, in, true)
			if err != nil || ch != nil {
				return err
			}
			// A concurrent call created it first.
			err = tx.Select("id").Take(&found, "unique_name = ?", *in.UniqueName).Error
		}
		if err != nil {
			return err
		}
		a, err := loadAccess(tx, v, found.ID)
		if apperr.CodeOf(err) == apperr.NotFound {
			return apperr.New(apperr.Conflict, "uniqueName %q is taken", *in.UniqueName)
		}
		if err != nil {
			return err
		}
		ch = a.ch
		return nil
	})
	if err != nil {
		return nil, internal("get or create channel", err)
	}
	s.flush(ctx, out)
	return ch, nil
}

// insertChannel inserts the channel in describes with the caller as OWNER
// and its members, and returns it with the events to publish once the
// transaction commits. With ifAbsent, a uniqueName that another writer has
// taken meanwhile makes it insert nothing and return a nil channel.
func insertChannel(tx *gorm.DB, v viewer, in NewChannel, ifAbsent bool) (*models.Channel, outbox, error) {
	t := now()
	ch := &models.Channel{
		ID: newID(), UniqueName: in.UniqueName, FriendlyName: in.FriendlyName, Type: in.Type,
		Attributes: in.Attributes, PhotoURL: in.PhotoURL, CreatedByID: &v.UserID, CreatedAt: t, UpdatedAt: t, LastActivityUs: t.UnixMicro(),
		State: models.StateActive,
	}
	var out outbox
	out.add(userTopic(v.UserID), &event{Kind: evMyChannel, ChannelEvent: ChannelJoined, Channel: ch})
	members := []*models.Member{newMember(ch.ID, v.UserID, models.RoleOwner, models.MemberJoined, t)}
	seen := map[string]bool{v.Identity: true}
	for _, identity := range in.Members {
		if seen[identity] {
			continue
		}
		seen[identity] = true
		u, err := ensureUser(tx, identity, nil)
		if err != nil {
			return nil, nil, err
		}
		members = append(members, newMember(ch.ID, u.ID, models.RoleMember, models.MemberJoined, t))
		out.add(userTopic(u.ID), &event{Kind: evMyChannel, ChannelEvent: ChannelAdded, Channel: ch})
	}
	ch.MembersCount = len(members)
	insert := tx
	if ifAbsent {
		insert = tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "unique_name"}}, DoNothing: true})
	}
	res := insert.Create(ch)
	if res.Error != nil {
		return nil, nil, conflictOnDuplicate(res.Error, "uniqueName %q is taken", deref(in.UniqueName))
	}
	if res.RowsAffected == 0 {
		return nil, nil, nil
	}
	hookCreated(&out, ch, members)
	return ch, out, tx.Create(members).Error
}

// hookCreated adds the webhooks of a new channel to out: channel.created,
// and member.joined for each of its first members (no subscriber sees
// those: the channel was not there to follow).
func hookCreated(out *outbox, ch *models.Channel, members []*models.Member) {
	out.hook(&event{Kind: evChannelCreated, Channel: ch})
	for _, m := range members {
		out.hook(&event{Kind: evMemberJoined, Member: m})
	}
}

func (s *Service) checkNewChannel(in NewChannel) error {
	if in.Type != models.ChannelPublic && in.Type != models.ChannelPrivate {
		return apperr.New(apperr.BadUserInput, "type must be PUBLIC or PRIVATE; directChannel makes DIRECT channels")
	}
	if err := checkPhotoURL(in.PhotoURL); err != nil {
		return err
	}
	if err := s.checkUniqueName(in.UniqueName); err != nil {
		return err
	}
	if err := s.checkName("friendlyName", in.FriendlyName); err != nil {
		return err
	}
	if err := s.checkAttributes(in.Attributes); err != nil {
		return err
	}
	if len(in.Members) > s.limits.MaxInitialMembers {
		return apperr.New(apperr.BadUserInput, "members lists %d identities; the limit is %d", len(in.Members), s.limits.MaxInitialMembers)
	}
	for _, identity := range in.Members {
		if err := checkIdentity(identity); err != nil {
			return err
		}
	}
	return nil
}

// checkUniqueNameFree is CONFLICT when another channel than exceptID has name.
func checkUniqueNameFree(tx *gorm.DB, name *string, exceptID string) error {
	if name == nil {
		return nil
	}
	var n int64
	if err := tx.Model(&models.Channel{}).Where("unique_name = ? AND id <> ?", *name, exceptID).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return apperr.New(apperr.Conflict, "uniqueName %q is taken", *name)
	}
	return nil
}

// conflictOnDuplicate turns a unique-constraint violation into CONFLICT.
func conflictOnDuplicate(err error, format string, args ...any) error {
	if isDuplicate(err) {
		return apperr.New(apperr.Conflict, format, args...)
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// reasons names what the patch changes, as ChannelEvent reasons.
func (p ChannelPatch) reasons() []string {
	var out []string
	for _, f := range []struct {
		set    bool
		reason string
	}{
		{p.FriendlyName.Set, ReasonFriendlyName},
		{p.UniqueName.Set, ReasonUniqueName},
		{p.Attributes.Set || p.AttributesPatch.Set, ReasonAttributes},
		{p.PhotoURL.Set, ReasonPhoto},
	} {
		if f.set {
			out = append(out, f.reason)
		}
	}
	return out
}

// UpdateChannel changes a channel's names and attributes. ADMIN or OWNER;
// NOT_FOUND for a private channel the caller is not in; CONFLICT when the new
// uniqueName is taken; BAD_USER_INPUT for attributes and attributesPatch at
// once or attributes over the limit, also once patched. A patch is merged
// into the attributes as they are when the channel row is locked, so
// concurrent patches of different keys all apply.
func (s *Service) UpdateChannel(ctx context.Context, id string, p ChannelPatch) (*models.Channel, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if p.UniqueName.Set {
		if err := s.checkUniqueName(p.UniqueName.Value); err != nil {
			return nil, err
		}
	}
	if err := s.checkName("friendlyName", p.FriendlyName.Value); err != nil {
		return nil, err
	}
	if err := checkPhotoURL(p.PhotoURL.Value); err != nil {
		return nil, err
	}
	attrs := attributesChange{Attributes: p.Attributes, Patch: p.AttributesPatch}
	if err := s.checkAttributesChange(attrs); err != nil {
		return nil, err
	}
	var (
		ch  models.Channel
		out outbox
	)
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, id)
		if err != nil {
			return err
		}
		if err := a.requireRole("update the channel", models.RoleOwner, models.RoleAdmin); err != nil {
			return err
		}
		changes := map[string]any{"updated_at": now()}
		if p.FriendlyName.Set {
			changes["friendly_name"] = p.FriendlyName.Value
		}
		if p.PhotoURL.Set {
			changes["photo_url"] = p.PhotoURL.Value
		}
		if attrs.Patch.Set {
			var locked models.Channel
			if err := forUpdate(tx).Select("attributes").Take(&locked, "id = ?", id).Error; err != nil {
				return err
			}
			a.ch.Attributes = locked.Attributes
		}
		value, changed, err := s.applyAttributesChange(a.ch.Attributes, attrs)
		if err != nil {
			return err
		}
		if changed {
			changes["attributes"] = value
		}
		if p.UniqueName.Set {
			if err := checkUniqueNameFree(tx, p.UniqueName.Value, id); err != nil {
				return err
			}
			changes["unique_name"] = p.UniqueName.Value
		}
		if err := tx.Model(&models.Channel{}).Where("id = ?", id).UpdateColumns(changes).Error; err != nil {
			return conflictOnDuplicate(err, "uniqueName %q is taken", deref(p.UniqueName.Value))
		}
		if err := s.channelChangeMessages(tx, &out, v, a.ch, p); err != nil {
			return err
		}
		if err := tx.Take(&ch, "id = ?", id).Error; err != nil {
			return err
		}
		out.add(channelTopic(ch.ID), &event{Kind: evChannelUpdated, Channel: &ch, Reasons: p.reasons()})
		return nil
	})
	if err != nil {
		return nil, internal("update channel", err)
	}
	s.flush(ctx, out)
	return &ch, nil
}

// channelChangeMessages writes the system messages of patch p to old, the
// channel as it was: FRIENDLY_NAME_CHANGED and PHOTO_CHANGED, each only
// when the value changes.
func (s *Service) channelChangeMessages(tx *gorm.DB, out *outbox, v viewer, old *models.Channel, p ChannelPatch) error {
	if p.FriendlyName.Set && !samePtr(old.FriendlyName, p.FriendlyName.Value) {
		ev := models.SystemEvent{Kind: models.SystemFriendlyNameChanged, ActorID: &v.UserID, FriendlyName: p.FriendlyName.Value}
		if err := s.systemMessage(tx, out, old.ID, ev); err != nil {
			return err
		}
	}
	if p.PhotoURL.Set && !samePtr(old.PhotoURL, p.PhotoURL.Value) {
		return s.systemMessage(tx, out, old.ID, models.SystemEvent{Kind: models.SystemPhotoChanged, ActorID: &v.UserID})
	}
	return nil
}

// samePtr reports whether a and b are both nil or point to equal values.
func samePtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// DeleteChannel removes a channel with its members and messages. OWNER only.
func (s *Service) DeleteChannel(ctx context.Context, id string) (string, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return "", err
	}
	var out outbox
	err = s.write(ctx, &out, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, id)
		if err != nil {
			return err
		}
		if err := a.requireRole("delete the channel", models.RoleOwner); err != nil {
			return err
		}
		out.add(channelTopic(id), &event{Kind: evChannelRemoved, Channel: a.ch})
		for _, m := range []any{&models.MessageMention{}, &models.Message{}, &models.Member{}} {
			if err := tx.Where("channel_id = ?", id).Delete(m).Error; err != nil {
				return err
			}
		}
		if _, err := markMediaDeleted(tx, "channel_id = ?", id); err != nil {
			return err
		}
		return tx.Delete(&models.Channel{}, "id = ?", id).Error
	})
	if err != nil {
		return "", internal("delete channel", err)
	}
	s.flush(ctx, out)
	s.purgeDeletedMedia(ctx, "channel_id = ?", id)
	return id, nil
}

// Channel returns a channel the caller may see. NOT_FOUND when it does not
// exist or is private and the caller is not a member.
func (s *Service) Channel(ctx context.Context, id string) (*models.Channel, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	a, err := loadAccess(s.store.DB(ctx), v, id)
	if err != nil {
		return nil, internal("load channel", err)
	}
	return a.ch, nil
}

// ChannelByUniqueName is Channel by unique name.
func (s *Service) ChannelByUniqueName(ctx context.Context, uniqueName string) (*models.Channel, error) {
	if _, err := s.viewer(ctx); err != nil {
		return nil, err
	}
	var ch models.Channel
	err := s.store.DB(ctx).Select("id").Take(&ch, "unique_name = ?", uniqueName).Error
	if isNotFound(err) {
		return nil, errChannelNotFound()
	}
	if err != nil {
		return nil, internal("find channel by unique name", err)
	}
	return s.Channel(ctx, ch.ID)
}

// PublicChannels lists every public channel, oldest first, forward only.
func (s *Service) PublicChannels(ctx context.Context, args PageArgs) (*Page[*models.Channel], error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if args.Last != nil || args.Before != nil {
		return nil, apperr.New(apperr.BadUserInput, "publicChannels pages forward only: use first and after")
	}
	n, _, err := s.pageSize(args, false)
	if err != nil {
		return nil, err
	}
	after, err := decodeCursor(args.After, "pc")
	if err != nil {
		return nil, err
	}
	q := v.scopeChannels(s.store.DB(ctx).Where("type = ?", models.ChannelPublic))
	if after != nil {
		q = q.Where("id > ?", after.ID)
	}
	var rows []*models.Channel
	if err := q.Order("id").Limit(n + 1).Find(&rows).Error; err != nil {
		return nil, internal("list public channels", err)
	}
	page := &Page[*models.Channel]{HasPrevious: after != nil}
	if len(rows) > n {
		rows, page.HasNext = rows[:n], true
	}
	page.Items = rows
	for _, c := range rows {
		page.Cursors = append(page.Cursors, encodeCursor(cursor{Kind: "pc", ID: c.ID}))
	}
	return page, nil
}

// MyChannels lists the channels the caller is a member of or invited to,
// narrowed by filter, forward only. The query starts from the caller's
// memberships (index idx_members_user_status) and reaches each channel by
// its primary key.
func (s *Service) MyChannels(ctx context.Context, args PageArgs, order ChannelOrder, filter ChannelFilter) (*Page[*models.Channel], error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	if args.Last != nil || args.Before != nil {
		return nil, apperr.New(apperr.BadUserInput, "myChannels pages forward only: use first and after")
	}
	n, _, err := s.pageSize(args, false)
	if err != nil {
		return nil, err
	}
	key, desc, kind := "channels.last_activity_us", true, "mcl"
	switch order.Field {
	case OrderFriendlyName:
		key, desc, kind = "COALESCE(channels.friendly_name, '')", false, "mcf"
	case OrderUniqueName:
		key, desc, kind = "COALESCE(channels.unique_name, '')", false, "mcu"
	}
	if order.Descending != nil {
		desc = *order.Descending
	}
	if desc {
		kind += "d"
	}
	after, err := decodeCursor(args.After, kind)
	if err != nil {
		return nil, err
	}
	q := v.scopeChannels(s.store.DB(ctx).Model(&models.Channel{}).
		Joins("JOIN members AS m ON m.channel_id = channels.id AND m.user_id = ?", v.UserID))
	if q, err = s.filterMyChannels(q, filter); err != nil {
		return nil, err
	}
	dir, cmp := "ASC", ">"
	if desc {
		dir, cmp = "DESC", "<"
	}
	if after != nil {
		var k any = after.S
		if order.Field == OrderLastMessage {
			k = after.N
		}
		q = q.Where(fmt.Sprintf("(%s %s ?) OR (%s = ? AND channels.id %s ?)", key, cmp, key, cmp), k, k, after.ID)
	}
	var rows []*models.Channel
	err = q.Order(fmt.Sprintf("%s %s, channels.id %s", key, dir, dir)).Limit(n + 1).Find(&rows).Error
	if err != nil {
		return nil, internal("list my channels", err)
	}
	page := &Page[*models.Channel]{HasPrevious: after != nil}
	if len(rows) > n {
		rows, page.HasNext = rows[:n], true
	}
	page.Items = rows
	for _, c := range rows {
		cur := cursor{Kind: kind, ID: c.ID}
		switch order.Field {
		case OrderLastMessage:
			cur.N = c.LastActivityUs
		case OrderFriendlyName:
			cur.S = deref(c.FriendlyName)
		case OrderUniqueName:
			cur.S = deref(c.UniqueName)
		}
		page.Cursors = append(page.Cursors, encodeCursor(cur))
	}
	return page, nil
}

// channelsByIDs loads channels for a loader. Callers reach a channel through
// a row the caller could already see (a member or a message), so no rule
// applies here.
func (s *Service) channelsByIDs(ctx context.Context, ids []string) ([]*models.Channel, []error) {
	var rows []*models.Channel
	if err := s.store.DB(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, []error{internal("load channels", err)}
	}
	return byID(ids, rows, func(c *models.Channel) string { return c.ID }), nil
}
