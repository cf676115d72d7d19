// Package resolvers translates GraphQL operations into calls on the chat
// service. Resolvers hold no rules: each one calls one chat.Service method
// and converts its result to the GraphQL shape.
package resolvers

import (
	"github.com/99designs/gqlgen/graphql"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/graph/model"
	"github.com/parleychat/parley/models"
)

// Resolver is the root resolver. It is safe for concurrent use.
type Resolver struct {
	Chat *chat.Service
}

// optional converts a GraphQL omittable input field.
func optional[T any](o graphql.Omittable[T]) chat.Optional[T] {
	v, set := o.ValueOK()
	return chat.Optional[T]{Set: set, Value: v}
}

// pageInfo builds Relay page info from a chat page.
func pageInfo[T any](p *chat.Page[T]) *model.PageInfo {
	info := &model.PageInfo{HasNextPage: p.HasNext, HasPreviousPage: p.HasPrevious}
	if n := len(p.Cursors); n > 0 {
		info.StartCursor, info.EndCursor = &p.Cursors[0], &p.Cursors[n-1]
	}
	return info
}

// edges builds a connection's edges from a chat page.
func edges[T, E any](p *chat.Page[T], edge func(cursor string, node T) E) []E {
	out := make([]E, len(p.Items))
	for i, item := range p.Items {
		out[i] = edge(p.Cursors[i], item)
	}
	return out
}

func pageArgs(first *int, after *string, last *int, before *string) chat.PageArgs {
	return chat.PageArgs{First: first, After: after, Last: last, Before: before}
}

var channelOrderFields = map[model.ChannelOrderField]chat.ChannelOrderField{
	model.ChannelOrderFieldLastMessage:  chat.OrderLastMessage,
	model.ChannelOrderFieldFriendlyName: chat.OrderFriendlyName,
	model.ChannelOrderFieldUniqueName:   chat.OrderUniqueName,
}

// newChannel converts createChannel's input.
func newChannel(in model.CreateChannelInput) chat.NewChannel {
	return chat.NewChannel{
		UniqueName: in.UniqueName, FriendlyName: in.FriendlyName, Type: in.Type,
		Attributes: in.Attributes, PhotoURL: in.PhotoURL, Members: in.Members,
	}
}

// roleOrMember is role, or MEMBER when it is null.
func roleOrMember(role *models.MemberRole) models.MemberRole {
	if role == nil {
		return models.RoleMember
	}
	return *role
}

// newMembers converts addMembers' input.
func newMembers(in []*model.AddMemberInput) []chat.NewMember {
	out := make([]chat.NewMember, len(in))
	for i, m := range in {
		out[i] = chat.NewMember{Identity: m.Identity, DisplayName: m.DisplayName, ShareHistoryFrom: m.ShareHistoryFrom}
		if m.Role != nil {
			out[i].Role = *m.Role
		}
		if m.Access != nil {
			out[i].Access = *m.Access
		}
	}
	return out
}

// session converts a chat session; nil stays nil.
func session(s *chat.Session) *model.Session {
	if s == nil {
		return nil
	}
	out := &model.Session{Identity: s.Identity, ExpiresAt: s.ExpiresAt}
	if s.Grants != nil {
		out.Grants = make([]*model.ChannelGrant, len(s.Grants))
		for i, g := range s.Grants {
			out.Grants[i] = &model.ChannelGrant{Key: g.Key, Read: true, Write: g.Write}
		}
	}
	return out
}

func channelConnection(p *chat.Page[*models.Channel]) *model.ChannelConnection {
	return &model.ChannelConnection{
		Edges:    edges(p, func(c string, n *models.Channel) *model.ChannelEdge { return &model.ChannelEdge{Cursor: c, Node: n} }),
		PageInfo: pageInfo(p),
	}
}
