package models

import "time"

// User is a person known by the identity the application's tokens carry.
// Users are created on their first authenticated request.
type User struct {
	ID           string  `gorm:"primaryKey;size:36"`
	Identity     string  `gorm:"size:256;not null;uniqueIndex"`
	FriendlyName *string `gorm:"size:256"`
	Attributes   JSON
	// PhotoURL is an http or https URL of at most 2 KiB.
	PhotoURL  *string   `gorm:"column:photo_url;size:2048"`
	CreatedAt time.Time `gorm:"not null"`
	UpdatedAt time.Time `gorm:"not null"`
	// Notifiable, on a user carried by an event, is whether they had a
	// push registration when it happened; nil elsewhere. Never stored.
	Notifiable *bool `gorm:"-"`
}

// Channel is a conversation. Its counters and last-message fields are kept
// up to date by the writes that change them, so lists never count rows.
type Channel struct {
	ID           string      `gorm:"primaryKey;size:36"`
	UniqueName   *string     `gorm:"size:256;uniqueIndex"`
	FriendlyName *string     `gorm:"size:256"`
	Type         ChannelType `gorm:"size:16;not null;index:idx_channels_type_id,priority:1"`
	Attributes   JSON
	CreatedByID  *string   `gorm:"size:36"`
	CreatedAt    time.Time `gorm:"not null"`
	UpdatedAt    time.Time `gorm:"not null"`
	// NextMessageIndex is the index the next message will take; it is also
	// the number of messages ever sent, deleted ones included.
	NextMessageIndex int     `gorm:"not null;default:0"`
	LastMessageID    *string `gorm:"size:36"`
	// LastActivityUs is the time of the last message, or of creation, in
	// Unix microseconds: the LAST_MESSAGE sort key.
	LastActivityUs int64 `gorm:"not null;default:0"`
	// MessagesCount counts messages that are not deleted.
	MessagesCount int `gorm:"not null;default:0"`
	// MembersCount counts JOINED members.
	MembersCount int `gorm:"not null;default:0"`
	// CountedMessages counts the messages ever sent that are not SYSTEM,
	// deleted ones included: the Ordinal of the next. A member's unread
	// messages are CountedMessages less their ReadOrdinal and
	// SkippedUnread.
	CountedMessages int          `gorm:"not null;default:0"`
	State           ChannelState `gorm:"size:16;not null;default:ACTIVE"`
	// PhotoURL is an http or https URL of at most 2 KiB.
	PhotoURL *string `gorm:"column:photo_url;size:2048"`
	// DirectKey identifies a DIRECT channel by its two users (see
	// chat.directKey); nil for other channels.
	DirectKey *string `gorm:"size:80;uniqueIndex"`
}

// LastMessageIndex is the index of the newest message, or nil when the
// channel has none.
func (c *Channel) LastMessageIndex() *int {
	if c.NextMessageIndex == 0 {
		return nil
	}
	i := c.NextMessageIndex - 1
	return &i
}

// Member is a user's membership of a channel, with their role and read
// state; an INVITED one is an invitation that is not yet accepted. On
// SQLite the migrations give idx_members_user_status the read horizon
// (last_read_index, history_start) after the key columns named here, for
// the unread counts; on PostgreSQL they keep it out of every index, so
// that moving it is a heap-only update.
type Member struct {
	ID            string     `gorm:"primaryKey;size:36;index:idx_members_channel_status,priority:3"`
	ChannelID     string     `gorm:"size:36;not null;uniqueIndex:idx_members_channel_user,priority:1;index:idx_members_channel_status,priority:1;index:idx_members_user_status,priority:3"`
	UserID        string     `gorm:"size:36;not null;uniqueIndex:idx_members_channel_user,priority:2;index:idx_members_user_status,priority:1"`
	Role          MemberRole `gorm:"size:16;not null"`
	LastReadIndex *int
	LastReadAt    *time.Time
	Attributes    JSON
	// JoinedAt is when the member joined, or was invited while INVITED.
	JoinedAt  time.Time    `gorm:"not null"`
	UpdatedAt time.Time    `gorm:"not null"`
	Status    MemberStatus `gorm:"size:16;not null;default:JOINED;index:idx_members_channel_status,priority:2;index:idx_members_user_status,priority:2"`
	Access    MemberAccess `gorm:"size:16;not null;default:READ_WRITE"`
	// DisplayName is the member's name in this channel.
	DisplayName *string `gorm:"size:256"`
	// ShareHistoryFrom, when set, hides the messages created before it.
	ShareHistoryFrom *time.Time
	// HistoryStart is the first index the member may see: 0, or the one
	// after the last message created before ShareHistoryFrom.
	HistoryStart int `gorm:"not null;default:0"`
	// NotificationLevel says which of the channel's messages the member
	// gets push notifications for.
	NotificationLevel NotificationLevel `gorm:"size:16;not null;default:DEFAULT"`
	// ReadOrdinal is the number of the channel's counted messages (see
	// Channel.CountedMessages) before the member's first unread index:
	// the one after their read horizon, or HistoryStart.
	ReadOrdinal int `gorm:"not null;default:0"`
	// SkippedUnread is the number of counted messages from the first
	// unread index on that do not count as unread: the member's own and
	// deleted ones.
	SkippedUnread int `gorm:"not null;default:0"`
	// MentionsUnread is the number of mentions of the member from the
	// first unread index on.
	MentionsUnread int `gorm:"not null;default:0"`
}

// Joined reports whether m is a member who has joined (not an invitation).
func (m *Member) Joined() bool { return m != nil && m.Status == MemberJoined }

// Message is one message in a channel. Index starts at 0 in each channel and
// grows by one per message with no gaps; a deleted message keeps its index
// and row, with an empty body and DeletedAt set.
type Message struct {
	ID        string `gorm:"primaryKey;size:36"`
	ChannelID string `gorm:"size:36;not null;uniqueIndex:idx_messages_channel_index,priority:1"`
	Index     int    `gorm:"column:idx;not null;uniqueIndex:idx_messages_channel_index,priority:2"`
	// Ordinal is the number of messages before this one in its channel
	// that are not SYSTEM (see Channel.CountedMessages).
	Ordinal    int     `gorm:"not null;default:0"`
	AuthorID   *string `gorm:"size:36"`
	Body       string  `gorm:"type:text;not null"`
	Attributes JSON
	CreatedAt  time.Time `gorm:"not null"`
	EditedAt   *time.Time
	DeletedAt  *time.Time
	// StoredType, StoredOrigin and StoredPriority are as stored; empty
	// (in events of nodes that predate them) means TEXT, USER and NORMAL.
	// Read them through Type, Origin and Priority.
	StoredType     MessageType     `gorm:"column:type;size:16;not null;default:TEXT"`
	StoredOrigin   MessageOrigin   `gorm:"column:origin;size:16;not null;default:USER"`
	StoredPriority MessagePriority `gorm:"column:priority;size:16;not null;default:NORMAL"`
	// SenderDisplayName is the name the message shows its author by, set
	// when it is sent.
	SenderDisplayName *string  `gorm:"size:256"`
	Latitude          *float64 `gorm:"type:double precision"`
	Longitude         *float64 `gorm:"type:double precision"`
	// System is the change a SYSTEM message reports; nil for others.
	System *SystemEvent
	// ClientMessageID is the sender's id of the message, unique per
	// channel and author: a send that repeats it gets the stored message.
	ClientMessageID *string `gorm:"column:client_message_id;size:128"`
	// UpdatedByID is who edited the message last.
	UpdatedByID *string `gorm:"size:36"`
	// MentionIDs are the ids of the users the message mentions, carried
	// by live events and set by a send; nil on a row read from the
	// database (Message.mentions loads them then).
	MentionIDs []string `gorm:"-"`
	// Author and Channel are snapshots carried by live events so that each
	// subscriber need not load them; they are never stored.
	Author  *User    `gorm:"-"`
	Channel *Channel `gorm:"-"`
}

// PushRegistration is a device token that receives a user's notifications.
// A (provider, token) pair belongs to at most one user: the last to register it.
type PushRegistration struct {
	ID        string       `gorm:"primaryKey;size:36"`
	UserID    string       `gorm:"size:36;not null;index"`
	Provider  PushProvider `gorm:"size:8;not null;uniqueIndex:idx_push_provider_token,priority:1"`
	Token     string       `gorm:"size:512;not null;uniqueIndex:idx_push_provider_token,priority:2"`
	CreatedAt time.Time    `gorm:"not null"`
}

// All lists every model, in an order that migrations can create.
func All() []any {
	return []any{&User{}, &Channel{}, &Member{}, &Message{}, &PushRegistration{}, &Media{}, &MessageMention{}}
}
