package models

import (
	"fmt"
	"io"
	"strconv"
)

// ChannelType says who can see a channel: PUBLIC channels are listed and
// joinable by everyone, PRIVATE ones exist only for their members.
type ChannelType string

// The channel types.
const (
	ChannelPublic  ChannelType = "PUBLIC"
	ChannelPrivate ChannelType = "PRIVATE"
)

// MemberRole is what a member may do in a channel.
type MemberRole string

// The member roles, strongest first.
const (
	RoleOwner  MemberRole = "OWNER"
	RoleAdmin  MemberRole = "ADMIN"
	RoleMember MemberRole = "MEMBER"
)

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
	return readEnum(v, "ChannelType", (*string)(t), string(ChannelPublic), string(ChannelPrivate))
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
