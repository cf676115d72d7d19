package chat

import (
	"context"
	"time"

	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/tracing"
)

// eventKind names what happened. Kinds are part of the wire format between
// nodes: rename one only with a migration plan for mixed-version clusters.
type eventKind string

const (
	evMessageAdded   eventKind = "message.added"
	evMessageUpdated eventKind = "message.updated"
	evMessageRemoved eventKind = "message.removed"
	evTypingStarted  eventKind = "typing.started"
	evTypingEnded    eventKind = "typing.ended"
	evMemberJoined   eventKind = "member.joined"
	evMemberLeft     eventKind = "member.left"
	evMemberUpdated  eventKind = "member.updated"
	evChannelUpdated eventKind = "channel.updated"
	evChannelRemoved eventKind = "channel.removed"
	// evMyChannel goes to one user's private topic: they were added to,
	// joined, left or were removed from a channel.
	evMyChannel   eventKind = "my.channel"
	evUserUpdated eventKind = "user.updated"
	// evChannelCreated is never published (subscribers learn of a new
	// channel through evMyChannel); it is the channel.created webhook.
	evChannelCreated eventKind = "channel.created"
	// evSessionRefreshed goes to one connection's session topic: its
	// token was replaced by one that expires At.
	evSessionRefreshed eventKind = "session.refreshed"
)

// event is one realtime event: what happened, with the rows a subscriber
// shows, so that delivering it costs no query per subscriber. ID and the
// topic it was published on are its identity. Its wire form is wireEvent.
type event struct {
	// ID is unique and time-ordered (a UUIDv7), set by publish.
	ID      string
	Kind    eventKind
	Message *models.Message
	Channel *models.Channel
	Member  *models.Member
	User    *models.User
	At      time.Time
	// Reasons of a member.updated or user.updated event.
	Reasons []string
	// ChannelEvent is the type of a my.channel event.
	ChannelEvent ChannelEventType
	// Node is the node that published a typing.started event.
	Node string
	// TraceParent is the W3C trace context of the operation that
	// published the event, "" when it was not traced.
	TraceParent string
}

// ChannelEventType says how one of the caller's channels changed.
type ChannelEventType string

// The channel event types.
const (
	ChannelAdded   ChannelEventType = "ADDED"
	ChannelUpdated ChannelEventType = "UPDATED"
	ChannelRemoved ChannelEventType = "REMOVED"
	ChannelJoined  ChannelEventType = "JOINED"
	ChannelLeft    ChannelEventType = "LEFT"
)

// Member and user update reasons.
const (
	ReasonRole         = "ROLE"
	ReasonAttributes   = "ATTRIBUTES"
	ReasonLastRead     = "LAST_READ"
	ReasonFriendlyName = "FRIENDLY_NAME"
	ReasonOnline       = "ONLINE"
	ReasonAccess       = "ACCESS"
	ReasonDisplayName  = "DISPLAY_NAME"
	ReasonStatus       = "STATUS"
	ReasonPhoto        = "PHOTO"
	ReasonUniqueName   = "UNIQUE_NAME"
	ReasonState        = "STATE"
	ReasonLastMessage  = "LAST_MESSAGE"
)

// Topics: one per channel for everything its members see, one private topic
// per user, and one public profile topic per user.
func channelTopic(id string) string { return "ch:" + id }
func userTopic(id string) string    { return "u:" + id }
func profileTopic(id string) string { return "p:" + id }

// publish sends ev to topic. It runs after the write committed; a failure
// is logged, not returned: the write stands, and subscribers resume from
// stored history with afterIndex.
func (s *Service) publish(ctx context.Context, topic string, ev *event) {
	if s.broker == nil {
		return
	}
	if ev.ID == "" {
		ev.ID = newID()
	}
	if ev.TraceParent == "" {
		ev.TraceParent = tracing.TraceParent(ctx)
	}
	data, err := encodeEvent(ev)
	if err == nil {
		err = s.broker.Publish(context.WithoutCancel(ctx), topic, data)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "publish event", "topic", topic, "kind", ev.Kind, "err", err)
	}
}

// outbox collects the events of one write transaction; they are published
// only after it commits, so no subscriber sees a row that may roll back.
type outbox []outboxEntry

type outboxEntry struct {
	topic string
	ev    *event
}

func (o *outbox) add(topic string, ev *event) { *o = append(*o, outboxEntry{topic, ev}) }

// hook adds an event that is a webhook only, never published.
func (o *outbox) hook(ev *event) { *o = append(*o, outboxEntry{"", ev}) }

// flush publishes the outbox's events in order.
func (s *Service) flush(ctx context.Context, o outbox) {
	for _, e := range o {
		if e.topic != "" {
			s.publish(ctx, e.topic, e.ev)
		}
	}
}
