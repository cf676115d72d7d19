package models

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// MessageType is what a message carries.
type MessageType string

// The message types.
const (
	// MessageText: a body only.
	MessageText MessageType = "TEXT"
	// MessageMedia: attachments, and a body optionally.
	MessageMedia MessageType = "MEDIA"
	// MessageLocation: a location, and a body optionally.
	MessageLocation MessageType = "LOCATION"
	// MessageSystem: written by the server about a change to the channel
	// (see SystemEvent); it has no author and never counts as unread.
	MessageSystem MessageType = "SYSTEM"
)

// MarshalGQL writes the enum value.
func (t MessageType) MarshalGQL(w io.Writer) { writeEnum(w, string(t)) }

// UnmarshalGQL reads and checks an enum value.
func (t *MessageType) UnmarshalGQL(v any) error {
	return readEnum(v, "MessageType", (*string)(t), string(MessageText), string(MessageMedia), string(MessageLocation), string(MessageSystem))
}

// MessageOrigin is who wrote a message: a user through sendMessage, the
// server (a system message), or the admin API's importMessages.
type MessageOrigin string

// The message origins.
const (
	OriginUser   MessageOrigin = "USER"
	OriginSystem MessageOrigin = "SYSTEM"
	OriginImport MessageOrigin = "IMPORT"
)

// MarshalGQL writes the enum value.
func (o MessageOrigin) MarshalGQL(w io.Writer) { writeEnum(w, string(o)) }

// UnmarshalGQL reads and checks an enum value.
func (o *MessageOrigin) UnmarshalGQL(v any) error {
	return readEnum(v, "MessageOrigin", (*string)(o), string(OriginUser), string(OriginSystem), string(OriginImport))
}

// MessagePriority is a message's priority, as the sender set it.
type MessagePriority string

// The message priorities.
const (
	PriorityNormal MessagePriority = "NORMAL"
	PriorityHigh   MessagePriority = "HIGH"
)

// MarshalGQL writes the enum value.
func (p MessagePriority) MarshalGQL(w io.Writer) { writeEnum(w, string(p)) }

// UnmarshalGQL reads and checks an enum value.
func (p *MessagePriority) UnmarshalGQL(v any) error {
	return readEnum(v, "MessagePriority", (*string)(p), string(PriorityNormal), string(PriorityHigh))
}

// SystemEventKind is what a system message reports.
type SystemEventKind string

// The system event kinds.
const (
	SystemFriendlyNameChanged SystemEventKind = "FRIENDLY_NAME_CHANGED"
	SystemStateChanged        SystemEventKind = "STATE_CHANGED"
	SystemPhotoChanged        SystemEventKind = "PHOTO_CHANGED"
	SystemMemberJoined        SystemEventKind = "MEMBER_JOINED"
	SystemMemberLeft          SystemEventKind = "MEMBER_LEFT"
	SystemMemberAdded         SystemEventKind = "MEMBER_ADDED"
	SystemMemberInvited       SystemEventKind = "MEMBER_INVITED"
	SystemMemberRemoved       SystemEventKind = "MEMBER_REMOVED"
)

// MarshalGQL writes the enum value.
func (k SystemEventKind) MarshalGQL(w io.Writer) { writeEnum(w, string(k)) }

// UnmarshalGQL reads and checks an enum value.
func (k *SystemEventKind) UnmarshalGQL(v any) error {
	return readEnum(v, "SystemEventKind", (*string)(k),
		string(SystemFriendlyNameChanged), string(SystemStateChanged), string(SystemPhotoChanged), string(SystemMemberJoined),
		string(SystemMemberLeft), string(SystemMemberAdded), string(SystemMemberInvited), string(SystemMemberRemoved))
}

// SystemEvent is the change a system message reports, stored as JSON in
// the message's system column.
type SystemEvent struct {
	Kind SystemEventKind `json:"kind"`
	// ActorID is the user who made the change; nil when unknown.
	ActorID *string `json:"actorId,omitempty"`
	// UserIDs are the users the change is about: who joined, left, was
	// added, invited or removed.
	UserIDs []string `json:"userIds,omitempty"`
	// FriendlyName is the channel's new friendly name (nil when cleared)
	// of a FRIENDLY_NAME_CHANGED event.
	FriendlyName *string `json:"friendlyName,omitempty"`
	// State is the channel's new state of a STATE_CHANGED event.
	State *ChannelState `json:"state,omitempty"`
}

// Value stores the event as JSON.
func (e SystemEvent) Value() (driver.Value, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode system event: %w", err)
	}
	return string(b), nil
}

// Scan reads a stored value written by Value.
func (e *SystemEvent) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("scan system event from %T", src)
	}
	return json.Unmarshal(b, e)
}

// GormDBDataType picks jsonb on PostgreSQL and text elsewhere.
func (SystemEvent) GormDBDataType(db *gorm.DB, _ *schema.Field) string {
	if db.Dialector.Name() == "postgres" {
		return "jsonb"
	}
	return "text"
}

// Location is a point on Earth, in degrees.
type Location struct {
	Latitude  float64
	Longitude float64
}

// Type is what the message carries: TEXT unless stored otherwise.
func (m *Message) Type() MessageType {
	if m.StoredType == "" {
		return MessageText
	}
	return m.StoredType
}

// Origin is who wrote the message: USER unless stored otherwise.
func (m *Message) Origin() MessageOrigin {
	if m.StoredOrigin == "" {
		return OriginUser
	}
	return m.StoredOrigin
}

// Priority is the message's priority: NORMAL unless stored otherwise.
func (m *Message) Priority() MessagePriority {
	if m.StoredPriority == "" {
		return PriorityNormal
	}
	return m.StoredPriority
}

// Location returns the message's location, or nil when it has none.
func (m *Message) Location() *Location {
	if m.Latitude == nil || m.Longitude == nil {
		return nil
	}
	return &Location{Latitude: *m.Latitude, Longitude: *m.Longitude}
}

// MessageMention records that a message mentions a user; ChannelID and
// Index copy the message's, so that a user's unread mentions are counted
// from this table alone. A deleted message's mentions are removed.
type MessageMention struct {
	MessageID string `gorm:"primaryKey;size:36"`
	UserID    string `gorm:"primaryKey;size:36"`
	ChannelID string `gorm:"size:36;not null"`
	Index     int    `gorm:"column:idx;not null"`
}
