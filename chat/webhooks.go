package chat

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/models"
)

// Webhook bodies are {"type", "timestamp", "data"}; data holds the changed
// object under its GraphQL type's name ("message", "channel", "member",
// "user"), in the GraphQL type's shape: the same field names and values a
// query selecting every field would get, nested objects included one level
// deep (a message's channel and author, a member's channel and user, a
// channel's creator). Fields that depend on who asks or on live state
// (Channel.status, myMembership, unreadCount, lastMessage; User.online,
// notifiable; Member.notificationLevel) are left out. Updates add
// "reasons", as the subscriptions' events carry them.

// webhookOf maps the kinds of events to webhook event types; kinds not
// listed (typing, a user's private channel events) have none.
var webhookOf = map[eventKind]string{
	evMessageAdded:   delivery.MessageCreated,
	evMessageUpdated: delivery.MessageUpdated,
	evMessageRemoved: delivery.MessageDeleted,
	evChannelCreated: delivery.ChannelCreated,
	evChannelUpdated: delivery.ChannelUpdated,
	evChannelRemoved: delivery.ChannelDeleted,
	evMemberJoined:   delivery.MemberJoined,
	evMemberLeft:     delivery.MemberLeft,
	evMemberUpdated:  delivery.MemberUpdated,
	evUserUpdated:    delivery.UserUpdated,
}

// hookUser is a User in a webhook body.
type hookUser struct {
	ID           string      `json:"id"`
	Identity     string      `json:"identity"`
	FriendlyName *string     `json:"friendlyName"`
	Attributes   models.JSON `json:"attributes"`
	PhotoURL     *string     `json:"photoUrl"`
	CreatedAt    time.Time   `json:"createdAt"`
	UpdatedAt    time.Time   `json:"updatedAt"`
}

// hookChannel is a Channel in a webhook body; CreatedBy only at the top.
type hookChannel struct {
	ID               string              `json:"id"`
	UniqueName       *string             `json:"uniqueName"`
	FriendlyName     *string             `json:"friendlyName"`
	Type             models.ChannelType  `json:"type"`
	Attributes       models.JSON         `json:"attributes"`
	PhotoURL         *string             `json:"photoUrl"`
	State            models.ChannelState `json:"state"`
	CreatedBy        **hookUser          `json:"createdBy,omitempty"`
	CreatedAt        time.Time           `json:"createdAt"`
	UpdatedAt        time.Time           `json:"updatedAt"`
	LastMessageIndex *int                `json:"lastMessageIndex"`
	MembersCount     int                 `json:"membersCount"`
	MessagesCount    int                 `json:"messagesCount"`
}

// hookMessage is a Message in a webhook body.
type hookMessage struct {
	ID                string                 `json:"id"`
	Channel           *hookChannel           `json:"channel"`
	Index             int                    `json:"index"`
	Author            *hookUser              `json:"author"`
	Type              models.MessageType     `json:"type"`
	Origin            models.MessageOrigin   `json:"origin"`
	Priority          models.MessagePriority `json:"priority"`
	SenderDisplayName *string                `json:"senderDisplayName"`
	Body              string                 `json:"body"`
	Attributes        models.JSON            `json:"attributes"`
	Location          *hookLocation          `json:"location"`
	Media             []hookMedia            `json:"media"`
	Mentions          []*hookUser            `json:"mentions"`
	ClientMessageID   *string                `json:"clientMessageId"`
	UpdatedBy         *hookUser              `json:"updatedBy"`
	CreatedAt         time.Time              `json:"createdAt"`
	EditedAt          *time.Time             `json:"editedAt"`
	DeletedAt         *time.Time             `json:"deletedAt"`
}

// hookLocation is a Location in a webhook body.
type hookLocation struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// hookMedia is a Media in a webhook body, without its url and expiresAt:
// a signed URL could expire before a retried webhook arrives, so a
// backend fetches one with the message(id) query when it wants the bytes.
type hookMedia struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	Width       *int   `json:"width"`
	Height      *int   `json:"height"`
}

// hookMember is a Member in a webhook body.
type hookMember struct {
	ID               string              `json:"id"`
	Channel          *hookChannel        `json:"channel"`
	User             *hookUser           `json:"user"`
	Role             models.MemberRole   `json:"role"`
	Status           models.MemberStatus `json:"status"`
	Access           models.MemberAccess `json:"access"`
	DisplayName      *string             `json:"displayName"`
	LastReadIndex    *int                `json:"lastReadIndex"`
	LastReadAt       *time.Time          `json:"lastReadAt"`
	JoinedAt         time.Time           `json:"joinedAt"`
	Attributes       models.JSON         `json:"attributes"`
	ShareHistoryFrom *time.Time          `json:"shareHistoryFrom"`
}

// hookData is a webhook body's data.
type hookData struct {
	Message *hookMessage `json:"message,omitempty"`
	Channel *hookChannel `json:"channel,omitempty"`
	Member  *hookMember  `json:"member,omitempty"`
	User    *hookUser    `json:"user,omitempty"`
	Reasons []string     `json:"reasons,omitempty"`
}

// hookBody is a webhook body.
type hookBody struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      hookData  `json:"data"`
}

func toHookUser(u *models.User) *hookUser {
	if u == nil {
		return nil
	}
	return &hookUser{ID: u.ID, Identity: u.Identity, FriendlyName: u.FriendlyName, Attributes: u.Attributes, PhotoURL: u.PhotoURL, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

func toHookChannel(c *models.Channel) *hookChannel {
	if c == nil {
		return nil
	}
	return &hookChannel{
		ID: c.ID, UniqueName: c.UniqueName, FriendlyName: c.FriendlyName, Type: c.Type, Attributes: c.Attributes,
		PhotoURL: c.PhotoURL, State: c.State, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		LastMessageIndex: c.LastMessageIndex(), MembersCount: c.MembersCount, MessagesCount: c.MessagesCount,
	}
}

// related holds the rows that webhook bodies nest, loaded in one query
// per table.
type related struct {
	users    map[string]*models.User
	channels map[string]*models.Channel
	// mentions holds the users each message mentions, by message ID, for
	// messages whose MentionIDs were not set by their send.
	mentions map[string][]string
	// media holds each MEDIA message's attachments, in order, by message
	// ID.
	media map[string][]*models.Media
}

// loadMessageParts loads through tx, the write's transaction, in one query
// each, the mentions of the messages withMentions names and the attached
// media of those withMedia names.
func (r *related) loadMessageParts(tx *gorm.DB, withMentions, withMedia []string) (err error) {
	if len(withMentions) > 0 {
		if r.mentions, err = mentionsOf(tx, withMentions); err != nil {
			return err
		}
	}
	if len(withMedia) > 0 {
		r.media, err = attachedMediaOf(tx, withMedia)
	}
	return err
}

// mentionIDs returns the users m mentions: those its send resolved, else
// those stored.
func (r *related) mentionIDs(m *models.Message) []string {
	if m.MentionIDs != nil {
		return m.MentionIDs
	}
	return r.mentions[m.ID]
}

// loadRelated loads through tx the users and channels named by ids that
// are not in r yet.
func (r *related) load(tx *gorm.DB, userIDs, channelIDs []string) error {
	userIDs = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(userIDs))), func(id string) bool { return r.users[id] != nil || id == "" })
	channelIDs = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(channelIDs))), func(id string) bool { return r.channels[id] != nil || id == "" })
	if len(userIDs) > 0 {
		var rows []*models.User
		if err := tx.Where("id IN ?", userIDs).Find(&rows).Error; err != nil {
			return err
		}
		for _, u := range rows {
			r.users[u.ID] = u
		}
	}
	if len(channelIDs) > 0 {
		var rows []*models.Channel
		if err := tx.Where("id IN ?", channelIDs).Find(&rows).Error; err != nil {
			return err
		}
		for _, c := range rows {
			r.channels[c.ID] = c
		}
	}
	return nil
}

// webhookJobs returns the webhooks of the events in out that the delivery
// wants, loading through tx, in one query per table, the rows their bodies
// nest. An event gets its ID here, which its live publication keeps: the
// webhook-id and the event are one.
func (s *Service) webhookJobs(tx *gorm.DB, out outbox) (delivery.Jobs, error) {
	var evs []*event
	for _, e := range out {
		if typ := webhookOf[e.ev.Kind]; typ != "" && s.wantsWebhook(typ) && !onlyOnline(e.ev) && !isSystem(e.ev) && !slices.Contains(evs, e.ev) {
			evs = append(evs, e.ev)
		}
	}
	if len(evs) == 0 {
		return delivery.Jobs{}, nil
	}
	return s.webhooksOf(tx, evs)
}

// onlyOnline reports whether ev is a presence change only: presence is not
// a write, and has no webhook.
func onlyOnline(ev *event) bool {
	return ev.Kind == evUserUpdated && len(ev.Reasons) > 0 && !slices.ContainsFunc(ev.Reasons, func(r string) bool { return r != ReasonOnline })
}

// webhooksOf builds the webhooks of evs, events of kinds with one.
func (s *Service) webhooksOf(tx *gorm.DB, evs []*event) (delivery.Jobs, error) {
	rel := related{users: map[string]*models.User{}, channels: map[string]*models.Channel{}}
	var withMentions, withMedia []string
	for _, ev := range evs {
		if m := ev.Message; m != nil && m.DeletedAt == nil {
			if m.MentionIDs == nil && ev.Kind != evMessageAdded {
				withMentions = append(withMentions, m.ID)
			}
			if m.Type() == models.MessageMedia {
				withMedia = append(withMedia, m.ID)
			}
		}
	}
	if err := rel.loadMessageParts(tx, withMentions, withMedia); err != nil {
		return delivery.Jobs{}, err
	}
	var userIDs, channelIDs []string
	for _, ev := range evs {
		switch {
		case ev.Message != nil:
			if ev.Message.Channel == nil {
				channelIDs = append(channelIDs, ev.Message.ChannelID)
			}
			if ev.Message.Author == nil && ev.Message.AuthorID != nil {
				userIDs = append(userIDs, *ev.Message.AuthorID)
			}
			if ev.Message.UpdatedByID != nil {
				userIDs = append(userIDs, *ev.Message.UpdatedByID)
			}
			userIDs = append(userIDs, rel.mentionIDs(ev.Message)...)
		case ev.Member != nil:
			userIDs = append(userIDs, ev.Member.UserID)
			channelIDs = append(channelIDs, ev.Member.ChannelID)
		case ev.Channel != nil && ev.Channel.CreatedByID != nil:
			userIDs = append(userIDs, *ev.Channel.CreatedByID)
		}
	}
	if err := rel.load(tx, userIDs, channelIDs); err != nil {
		return delivery.Jobs{}, err
	}
	at := now()
	var jobs delivery.Jobs
	for _, ev := range evs {
		typ := webhookOf[ev.Kind]
		body := hookBody{Type: typ, Timestamp: at, Data: s.hookData(ev, &rel)}
		data, err := json.Marshal(&body)
		if err != nil {
			return delivery.Jobs{}, fmt.Errorf("encode %s webhook: %w", typ, err)
		}
		if ev.ID == "" {
			ev.ID = newID()
		}
		jobs.Webhooks = append(jobs.Webhooks, delivery.Webhook{ID: ev.ID, Type: typ, Body: data})
	}
	return jobs, nil
}

// hookData is the data of ev's webhook, nesting rows from rel.
func (s *Service) hookData(ev *event, rel *related) hookData {
	var d hookData
	switch {
	case ev.Message != nil:
		m := ev.Message
		ch, author := m.Channel, m.Author
		if ch == nil {
			ch = rel.channels[m.ChannelID]
		}
		if author == nil && m.AuthorID != nil {
			author = rel.users[*m.AuthorID]
		}
		d.Message = &hookMessage{
			ID: m.ID, Channel: toHookChannel(ch), Index: m.Index, Author: toHookUser(author),
			Type: m.Type(), Origin: m.Origin(), Priority: m.Priority(), SenderDisplayName: m.SenderDisplayName,
			Body: m.Body, Attributes: m.Attributes, Media: []hookMedia{}, Mentions: []*hookUser{}, ClientMessageID: m.ClientMessageID,
			CreatedAt: m.CreatedAt, EditedAt: m.EditedAt, DeletedAt: m.DeletedAt,
		}
		if loc := m.Location(); loc != nil {
			d.Message.Location = &hookLocation{Latitude: loc.Latitude, Longitude: loc.Longitude}
		}
		for _, a := range rel.media[m.ID] {
			d.Message.Media = append(d.Message.Media, hookMedia{ID: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, Width: a.Width, Height: a.Height})
		}
		if m.DeletedAt == nil {
			for _, id := range rel.mentionIDs(m) {
				if u := toHookUser(rel.users[id]); u != nil {
					d.Message.Mentions = append(d.Message.Mentions, u)
				}
			}
		}
		if m.UpdatedByID != nil {
			d.Message.UpdatedBy = toHookUser(rel.users[*m.UpdatedByID])
		}
	case ev.Member != nil:
		m := ev.Member
		d.Member = &hookMember{
			ID: m.ID, Channel: toHookChannel(rel.channels[m.ChannelID]), User: toHookUser(rel.users[m.UserID]),
			Role: m.Role, Status: m.Status, Access: m.Access, DisplayName: m.DisplayName, LastReadIndex: m.LastReadIndex,
			LastReadAt: m.LastReadAt, JoinedAt: m.JoinedAt, Attributes: m.Attributes, ShareHistoryFrom: m.ShareHistoryFrom,
		}
	case ev.Channel != nil:
		d.Channel = toHookChannel(ev.Channel)
		var creator *hookUser
		if ev.Channel.CreatedByID != nil {
			creator = toHookUser(rel.users[*ev.Channel.CreatedByID])
		}
		d.Channel.CreatedBy = &creator
	case ev.User != nil:
		d.User = toHookUser(ev.User)
	}
	if ev.Kind == evMemberUpdated || ev.Kind == evChannelUpdated || ev.Kind == evUserUpdated {
		d.Reasons = slices.DeleteFunc(slices.Clone(ev.Reasons), func(r string) bool { return r == ReasonOnline })
	}
	return d
}
