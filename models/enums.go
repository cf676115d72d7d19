package models

import (
	"fmt"
	"io"
	"strconv"
)

// ChannelType says who can see a channel: PUBLIC channels are listed and
// joinable by everyone, PRIVATE ones exist only for their members, DIRECT
// ones are the one-to-one channel of two users (or a user's notes to self).
type ChannelType string

// The channel types.
const (
	ChannelPublic  ChannelType = "PUBLIC"
	ChannelPrivate ChannelType = "PRIVATE"
	ChannelDirect  ChannelType = "DIRECT"
)

// ChannelState is a channel's life cycle, as Twilio's: a message sent into
// an INACTIVE channel makes it ACTIVE; a CLOSED one takes no new messages or
// members.
type ChannelState string

// The channel states.
const (
	StateActive   ChannelState = "ACTIVE"
	StateInactive ChannelState = "INACTIVE"
	StateClosed   ChannelState = "CLOSED"
)

// ChannelStatus is a caller's relation to a channel.
type ChannelStatus string

// The channel statuses.
const (
	StatusNotParticipating ChannelStatus = "NOT_PARTICIPATING"
	StatusInvited          ChannelStatus = "INVITED"
	StatusJoined           ChannelStatus = "JOINED"
)

// MemberStatus says whether a membership is an invitation not yet accepted
// or a joined member.
type MemberStatus string

// The member statuses.
const (
	MemberInvited MemberStatus = "INVITED"
	MemberJoined  MemberStatus = "JOINED"
)

// MemberAccess is what a member may do with messages: READ members read,
// subscribe and mark read; READ_WRITE ones also send, edit and type.
type MemberAccess string

// The member accesses.
const (
	AccessRead      MemberAccess = "READ"
	AccessReadWrite MemberAccess = "READ_WRITE"
)

// MemberRole is what a member may do in a channel.
type MemberRole string

// The member roles, strongest first.
const (
	RoleOwner  MemberRole = "OWNER"
	RoleAdmin  MemberRole = "ADMIN"
	RoleMember MemberRole = "MEMBER"
)

// NotificationLevel is which of a channel's messages a member gets push
// notifications for.
type NotificationLevel string

// The notification levels.
const (
	// LevelDefault: every message of others.
	LevelDefault NotificationLevel = "DEFAULT"
	// LevelMentions: only messages that mention the member.
	LevelMentions NotificationLevel = "MENTIONS"
	// LevelMuted: none.
	LevelMuted NotificationLevel = "MUTED"
)

// MarshalGQL writes the enum value.
func (l NotificationLevel) MarshalGQL(w io.Writer) { writeEnum(w, string(l)) }

// UnmarshalGQL reads and checks an enum value.
func (l *NotificationLevel) UnmarshalGQL(v any) error {
	return readEnum(v, "NotificationLevel", (*string)(l), string(LevelDefault), string(LevelMentions), string(LevelMuted))
}

// PushProvider is the service that delivers a device's notifications.
type PushProvider string

// The push providers.
const (
	PushFCM  PushProvider = "FCM"
	PushAPNS PushProvider = "APNS"
)

// MarshalGQL writes the enum value.
func (t ChannelType) MarshalGQL(w io.Writer) { writeEnum(w, string(t)) }

// UnmarshalGQL reads and checks an enum value.
func (t *ChannelType) UnmarshalGQL(v any) error {
	return readEnum(v, "ChannelType", (*string)(t), string(ChannelPublic), string(ChannelPrivate), string(ChannelDirect))
}

// MarshalGQL writes the enum value.
func (s ChannelState) MarshalGQL(w io.Writer) { writeEnum(w, string(s)) }

// UnmarshalGQL reads and checks an enum value.
func (s *ChannelState) UnmarshalGQL(v any) error {
	return readEnum(v, "ChannelState", (*string)(s), string(StateActive), string(StateInactive), string(StateClosed))
}

// MarshalGQL writes the enum value.
func (s ChannelStatus) MarshalGQL(w io.Writer) { writeEnum(w, string(s)) }

// UnmarshalGQL reads and checks an enum value.
func (s *ChannelStatus) UnmarshalGQL(v any) error {
	return readEnum(v, "ChannelStatus", (*string)(s), string(StatusNotParticipating), string(StatusInvited), string(StatusJoined))
}

// MarshalGQL writes the enum value.
func (s MemberStatus) MarshalGQL(w io.Writer) { writeEnum(w, string(s)) }

// UnmarshalGQL reads and checks an enum value.
func (s *MemberStatus) UnmarshalGQL(v any) error {
	return readEnum(v, "MemberStatus", (*string)(s), string(MemberInvited), string(MemberJoined))
}

// MarshalGQL writes the enum value.
func (a MemberAccess) MarshalGQL(w io.Writer) { writeEnum(w, string(a)) }

// UnmarshalGQL reads and checks an enum value.
func (a *MemberAccess) UnmarshalGQL(v any) error {
	return readEnum(v, "MemberAccess", (*string)(a), string(AccessRead), string(AccessReadWrite))
}

// MarshalGQL writes the enum value.
func (r MemberRole) MarshalGQL(w io.Writer) { writeEnum(w, string(r)) }

// UnmarshalGQL reads and checks an enum value.
func (r *MemberRole) UnmarshalGQL(v any) error {
	return readEnum(v, "MemberRole", (*string)(r), string(RoleOwner), string(RoleAdmin), string(RoleMember))
}

// MarshalGQL writes the enum value.
func (p PushProvider) MarshalGQL(w io.Writer) { writeEnum(w, string(p)) }

// UnmarshalGQL reads and checks an enum value.
func (p *PushProvider) UnmarshalGQL(v any) error {
	return readEnum(v, "PushProvider", (*string)(p), string(PushFCM), string(PushAPNS))
}

func writeEnum(w io.Writer, s string) { _, _ = io.WriteString(w, strconv.Quote(s)) }

func readEnum(v any, name string, dst *string, allowed ...string) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("%s must be a string", name)
	}
	for _, a := range allowed {
		if s == a {
			*dst = s
			return nil
		}
	}
	return fmt.Errorf("%q is not a valid %s", s, name)
}
