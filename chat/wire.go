package chat

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/parleychat/parley/models"
)

// The event wire format: what one node publishes and every node decodes.
// It is explicit, not the default encoding of the GORM rows, so that a
// change to a model cannot change it by accident; testdata/events.golden.json
// holds one payload of every kind and the tests fail on any change.
//
// Two versions of Parley share a Redis during a rolling deploy, so a change
// must stay readable both ways:
//   - add fields only (with omitempty); never rename or re-type one;
//   - the top-level keys are short and fixed; the rows use camelCase names
//     that match, case-insensitively as encoding/json does, the field names
//     of the rows (version 0 published models' default encoding: "ChannelID",
//     "NextMessageIndex", …), so the two read each other's payloads;
//   - wireVersion rises with any change a previous version would misread.
const wireVersion = 1

// wireEvent is an event on the wire.
type wireEvent struct {
	V    int       `json:"v,omitempty"`
	ID   string    `json:"id,omitempty"`
	Kind eventKind `json:"k"`

	Message *wireMessage `json:"m,omitempty"`
	Channel *wireChannel `json:"c,omitempty"`
	Member  *wireMember  `json:"mb,omitempty"`
	User    *wireUser    `json:"u,omitempty"`
	At      time.Time    `json:"at,omitzero"`
	Reasons []string     `json:"r,omitempty"`
	// ChannelEvent is the type of a my.channel event.
	ChannelEvent ChannelEventType `json:"ce,omitempty"`
	// Node is the node that published a typing.started event.
	Node string `json:"n,omitempty"`
	// TraceParent is the W3C traceparent of the operation that published
	// the event, so that the delivering node's span joins its trace.
	TraceParent string `json:"traceparent,omitempty"`
}

// wireUser is a models.User on the wire.
type wireUser struct {
	ID           string      `json:"id"`
	Identity     string      `json:"identity"`
	FriendlyName *string     `json:"friendlyName,omitempty"`
	Attributes   models.JSON `json:"attributes,omitempty"`
	CreatedAt    time.Time   `json:"createdAt"`
	UpdatedAt    time.Time   `json:"updatedAt"`
	PhotoURL     *string     `json:"photoUrl,omitempty"`
	Notifiable   *bool       `json:"notifiable,omitempty"`
}

// wireChannel is a models.Channel on the wire.
type wireChannel struct {
	ID               string             `json:"id"`
	UniqueName       *string            `json:"uniqueName,omitempty"`
	FriendlyName     *string            `json:"friendlyName,omitempty"`
	Type             models.ChannelType `json:"type"`
	Attributes       models.JSON        `json:"attributes,omitempty"`
	CreatedByID      *string            `json:"createdById,omitempty"`
	CreatedAt        time.Time          `json:"createdAt"`
	UpdatedAt        time.Time          `json:"updatedAt"`
	NextMessageIndex int                `json:"nextMessageIndex"`
	LastMessageID    *string            `json:"lastMessageId,omitempty"`
	LastActivityUs   int64              `json:"lastActivityUs"`
	MessagesCount    int                `json:"messagesCount"`
	MembersCount     int                `json:"membersCount"`
	// State is absent in payloads of nodes that predate it: ACTIVE.
	State    models.ChannelState `json:"state,omitempty"`
	PhotoURL *string             `json:"photoUrl,omitempty"`
}

// wireMember is a models.Member on the wire.
type wireMember struct {
	ID            string            `json:"id"`
	ChannelID     string            `json:"channelId"`
	UserID        string            `json:"userId"`
	Role          models.MemberRole `json:"role"`
	LastReadIndex *int              `json:"lastReadIndex,omitempty"`
	LastReadAt    *time.Time        `json:"lastReadAt,omitempty"`
	Attributes    models.JSON       `json:"attributes,omitempty"`
	JoinedAt      time.Time         `json:"joinedAt"`
	UpdatedAt     time.Time         `json:"updatedAt"`
	// Status and Access are absent in payloads of nodes that predate
	// them: JOINED and READ_WRITE.
	Status           models.MemberStatus `json:"status,omitempty"`
	Access           models.MemberAccess `json:"access,omitempty"`
	DisplayName      *string             `json:"displayName,omitempty"`
	ShareHistoryFrom *time.Time          `json:"shareHistoryFrom,omitempty"`
	HistoryStart     int                 `json:"historyStart,omitempty"`
	// NotificationLevel is absent in payloads of nodes that predate it,
	// and then empty, which means DEFAULT.
	NotificationLevel models.NotificationLevel `json:"notificationLevel,omitempty"`
}

// wireMessage is a models.Message on the wire, with the snapshots of its
// author and channel that spare each node a query.
type wireMessage struct {
	ID         string       `json:"id"`
	ChannelID  string       `json:"channelId"`
	Index      int          `json:"index"`
	AuthorID   *string      `json:"authorId,omitempty"`
	Body       string       `json:"body"`
	Attributes models.JSON  `json:"attributes,omitempty"`
	CreatedAt  time.Time    `json:"createdAt"`
	EditedAt   *time.Time   `json:"editedAt,omitempty"`
	DeletedAt  *time.Time   `json:"deletedAt,omitempty"`
	Author     *wireUser    `json:"author,omitempty"`
	Channel    *wireChannel `json:"channel,omitempty"`
	// The fields below are absent in payloads of nodes that predate them,
	// and when empty; Type, Origin and Priority also when TEXT, USER and
	// NORMAL.
	Type              models.MessageType     `json:"type,omitempty"`
	Origin            models.MessageOrigin   `json:"origin,omitempty"`
	Priority          models.MessagePriority `json:"priority,omitempty"`
	SenderDisplayName *string                `json:"senderDisplayName,omitempty"`
	Latitude          *float64               `json:"latitude,omitempty"`
	Longitude         *float64               `json:"longitude,omitempty"`
	System            *wireSystemEvent       `json:"system,omitempty"`
	ClientMessageID   *string                `json:"clientMessageId,omitempty"`
	UpdatedByID       *string                `json:"updatedById,omitempty"`
	// MentionIDs is absent when the publisher did not know the mentions
	// (an edit or a deletion): subscribers load them.
	MentionIDs []string `json:"mentionIds,omitempty"`
}

// wireSystemEvent is a models.SystemEvent on the wire.
type wireSystemEvent struct {
	Kind         models.SystemEventKind `json:"kind"`
	ActorID      *string                `json:"actorId,omitempty"`
	UserIDs      []string               `json:"userIds,omitempty"`
	FriendlyName *string                `json:"friendlyName,omitempty"`
	State        *models.ChannelState   `json:"state,omitempty"`
}

// encodeEvent returns ev's wire payload.
func encodeEvent(ev *event) ([]byte, error) {
	w := wireEvent{
		V: wireVersion, ID: ev.ID, Kind: ev.Kind,
		Message: toWireMessage(ev.Message), Channel: toWireChannel(ev.Channel),
		Member: toWireMember(ev.Member), User: toWireUser(ev.User),
		At: ev.At, Reasons: ev.Reasons, ChannelEvent: ev.ChannelEvent, Node: ev.Node, TraceParent: ev.TraceParent,
	}
	data, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", ev.Kind, err)
	}
	return data, nil
}

// decodeEvent decodes a payload of any wire version so far. The event and
// the rows it carries may be shared by every subscriber of a node: they
// must be treated as read-only.
func decodeEvent(data []byte) (*event, error) {
	var w wireEvent
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	if w.Kind == "" {
		return nil, fmt.Errorf("decode event: no kind in %.80q", data)
	}
	return &event{
		ID: w.ID, Kind: w.Kind,
		Message: w.Message.model(), Channel: w.Channel.model(),
		Member: w.Member.model(), User: w.User.model(),
		At: w.At, Reasons: w.Reasons, ChannelEvent: w.ChannelEvent, Node: w.Node, TraceParent: w.TraceParent,
	}, nil
}

func toWireUser(u *models.User) *wireUser {
	if u == nil {
		return nil
	}
	return &wireUser{ID: u.ID, Identity: u.Identity, FriendlyName: u.FriendlyName, Attributes: u.Attributes, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, PhotoURL: u.PhotoURL, Notifiable: u.Notifiable}
}

func (w *wireUser) model() *models.User {
	if w == nil {
		return nil
	}
	return &models.User{ID: w.ID, Identity: w.Identity, FriendlyName: w.FriendlyName, Attributes: w.Attributes, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, PhotoURL: w.PhotoURL, Notifiable: w.Notifiable}
}

func toWireChannel(c *models.Channel) *wireChannel {
	if c == nil {
		return nil
	}
	return &wireChannel{
		ID: c.ID, UniqueName: c.UniqueName, FriendlyName: c.FriendlyName, Type: c.Type, Attributes: c.Attributes,
		CreatedByID: c.CreatedByID, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, NextMessageIndex: c.NextMessageIndex,
		LastMessageID: c.LastMessageID, LastActivityUs: c.LastActivityUs, MessagesCount: c.MessagesCount, MembersCount: c.MembersCount,
		State: c.State, PhotoURL: c.PhotoURL,
	}
}

func (w *wireChannel) model() *models.Channel {
	if w == nil {
		return nil
	}
	state := w.State
	if state == "" {
		state = models.StateActive
	}
	return &models.Channel{
		ID: w.ID, UniqueName: w.UniqueName, FriendlyName: w.FriendlyName, Type: w.Type, Attributes: w.Attributes,
		CreatedByID: w.CreatedByID, CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, NextMessageIndex: w.NextMessageIndex,
		LastMessageID: w.LastMessageID, LastActivityUs: w.LastActivityUs, MessagesCount: w.MessagesCount, MembersCount: w.MembersCount,
		State: state, PhotoURL: w.PhotoURL,
	}
}

func toWireMember(m *models.Member) *wireMember {
	if m == nil {
		return nil
	}
	return &wireMember{
		ID: m.ID, ChannelID: m.ChannelID, UserID: m.UserID, Role: m.Role, LastReadIndex: m.LastReadIndex,
		LastReadAt: m.LastReadAt, Attributes: m.Attributes, JoinedAt: m.JoinedAt, UpdatedAt: m.UpdatedAt,
		Status: m.Status, Access: m.Access, DisplayName: m.DisplayName, ShareHistoryFrom: m.ShareHistoryFrom, HistoryStart: m.HistoryStart,
		NotificationLevel: m.NotificationLevel,
	}
}

func (w *wireMember) model() *models.Member {
	if w == nil {
		return nil
	}
	status, access := w.Status, w.Access
	if status == "" {
		status = models.MemberJoined
	}
	if access == "" {
		access = models.AccessReadWrite
	}
	return &models.Member{
		ID: w.ID, ChannelID: w.ChannelID, UserID: w.UserID, Role: w.Role, LastReadIndex: w.LastReadIndex,
		LastReadAt: w.LastReadAt, Attributes: w.Attributes, JoinedAt: w.JoinedAt, UpdatedAt: w.UpdatedAt,
		Status: status, Access: access, DisplayName: w.DisplayName, ShareHistoryFrom: w.ShareHistoryFrom, HistoryStart: w.HistoryStart,
		NotificationLevel: w.NotificationLevel,
	}
}

func toWireMessage(m *models.Message) *wireMessage {
	if m == nil {
		return nil
	}
	w := &wireMessage{
		ID: m.ID, ChannelID: m.ChannelID, Index: m.Index, AuthorID: m.AuthorID, Body: m.Body, Attributes: m.Attributes,
		CreatedAt: m.CreatedAt, EditedAt: m.EditedAt, DeletedAt: m.DeletedAt,
		Author: toWireUser(m.Author), Channel: toWireChannel(m.Channel),
		SenderDisplayName: m.SenderDisplayName, Latitude: m.Latitude, Longitude: m.Longitude,
		ClientMessageID: m.ClientMessageID, UpdatedByID: m.UpdatedByID, MentionIDs: m.MentionIDs,
	}
	if m.Type() != models.MessageText {
		w.Type = m.StoredType
	}
	if m.Origin() != models.OriginUser {
		w.Origin = m.StoredOrigin
	}
	if m.Priority() != models.PriorityNormal {
		w.Priority = m.StoredPriority
	}
	if e := m.System; e != nil {
		w.System = &wireSystemEvent{Kind: e.Kind, ActorID: e.ActorID, UserIDs: e.UserIDs, FriendlyName: e.FriendlyName, State: e.State}
	}
	return w
}

func (w *wireMessage) model() *models.Message {
	if w == nil {
		return nil
	}
	m := &models.Message{
		ID: w.ID, ChannelID: w.ChannelID, Index: w.Index, AuthorID: w.AuthorID, Body: w.Body, Attributes: w.Attributes,
		CreatedAt: w.CreatedAt, EditedAt: w.EditedAt, DeletedAt: w.DeletedAt,
		Author: w.Author.model(), Channel: w.Channel.model(),
		StoredType: w.Type, StoredOrigin: w.Origin, StoredPriority: w.Priority,
		SenderDisplayName: w.SenderDisplayName, Latitude: w.Latitude, Longitude: w.Longitude,
		ClientMessageID: w.ClientMessageID, UpdatedByID: w.UpdatedByID, MentionIDs: w.MentionIDs,
	}
	if e := w.System; e != nil {
		m.System = &models.SystemEvent{Kind: e.Kind, ActorID: e.ActorID, UserIDs: e.UserIDs, FriendlyName: e.FriendlyName, State: e.State}
	}
	return m
}
