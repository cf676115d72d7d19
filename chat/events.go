package chat

import (
	"context"
	"encoding/json"
	"time"

	"github.com/parleychat/parley/models"
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
)

// event is what travels through the broker. It carries the rows a
// subscriber shows, so that delivering it costs no query per subscriber.
type event struct {
	Kind    eventKind       `json:"k"`
	Message *models.Message `json:"m,omitempty"`
	Channel *models.Channel `json:"c,omitempty"`
	Member  *models.Member  `json:"mb,omitempty"`
	User    *models.User    `json:"u,omitempty"`
	At      time.Time       `json:"at,omitzero"`
	// Reasons of a member.updated or user.updated event.
	Reasons []string `json:"r,omitempty"`
	// ChannelEvent is the type of a my.channel event.
	ChannelEvent ChannelEventType `json:"ce,omitempty"`
	// Node is the node that published a typing.started event.
	Node string `json:"n,omitempty"`
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
	data, err := json.Marshal(ev)
	if err == nil {
		err = s.broker.Publish(context.WithoutCancel(ctx), topic, data)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "publish event", "topic", topic, "kind", ev.Kind, "err", err)
	}
}

// decodeEvent decodes a broker payload. Through pubsub.Decode its result is
// shared by every subscriber on this node: stream handlers must not modify
// the event or the rows it carries.
func decodeEvent(data []byte) (*event, error) {
	var ev event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// outbox collects the events of one write transaction; they are published
// only after it commits, so no subscriber sees a row that may roll back.
type outbox []outboxEntry

type outboxEntry struct {
	topic string
	ev    *event
}

func (o *outbox) add(topic string, ev *event) { *o = append(*o, outboxEntry{topic, ev}) }

// flush publishes the outbox's events in order.
func (s *Service) flush(ctx context.Context, o outbox) {
	for _, e := range o {
		s.publish(ctx, e.topic, e.ev)
	}
}
