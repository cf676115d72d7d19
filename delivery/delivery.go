// Package delivery is the contract between the chat rules and the delivery
// of what they notify: push notifications to devices (FCM, APNs) and
// webhooks to the application's backend, run as jobs of a durable queue
// (package delivery/queue) that are written in the same transaction as the
// change that causes them; and the pre-send hook the application's backend
// answers before a message is written (package delivery/webhook).
//
// It holds plain values and the interface the push worker needs from the
// chat rules; it imports nothing of Parley's but models, and does no I/O.
package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/parleychat/parley/models"
)

// The webhook event types, as PARLEY_WEBHOOK_EVENTS names them.
const (
	MessageCreated = "message.created"
	MessageUpdated = "message.updated"
	MessageDeleted = "message.deleted"
	ChannelCreated = "channel.created"
	ChannelUpdated = "channel.updated"
	ChannelDeleted = "channel.deleted"
	MemberJoined   = "member.joined"
	MemberLeft     = "member.left"
	MemberUpdated  = "member.updated"
	UserUpdated    = "user.updated"
)

// WebhookEvents lists every webhook event type.
var WebhookEvents = []string{
	MessageCreated, MessageUpdated, MessageDeleted,
	ChannelCreated, ChannelUpdated, ChannelDeleted,
	MemberJoined, MemberLeft, MemberUpdated,
	UserUpdated,
}

// Jobs are the deliveries one write queues in its transaction.
type Jobs struct {
	// Pushes are the IDs of new messages whose recipients get a push;
	// they make one job together.
	Pushes []string
	// Webhooks are the webhook deliveries of the write's events.
	Webhooks []Webhook
}

// Empty reports whether j queues nothing.
func (j Jobs) Empty() bool { return len(j.Pushes) == 0 && len(j.Webhooks) == 0 }

// Webhook is one event for the application's backend.
type Webhook struct {
	// ID is unique per event and the same on every attempt (the
	// webhook-id header), so that a receiver can drop a duplicate.
	ID string `json:"id"`
	// Type is one of WebhookEvents.
	Type string `json:"type"`
	// Body is the JSON body: {"type", "timestamp", "data"}.
	Body json.RawMessage `json:"body"`
}

// Device is a push registration: where one of a user's notifications go.
type Device struct {
	// RegistrationID is the registration's ID, for pruning.
	RegistrationID string
	Provider       models.PushProvider
	Token          string
}

// Push is one notification for one device.
type Push struct {
	Device Device
	// Title is the channel's friendly name, or else the sender's name.
	Title string
	// Body is the message body cut at 200 characters, or a word for
	// a message without text.
	Body string
	// Data are the notification's data keys: channelId, messageId,
	// index, author and type.
	Data map[string]string
	// CollapseID is the message ID: a push retried after a failure, or
	// delivered twice after a node died, replaces the first on the device.
	CollapseID string
	// ThreadID groups a channel's notifications (APNs thread-id).
	ThreadID string
	// Badge is the recipient's unread message total (APNs badge).
	Badge int
}

// PushSource is what the push worker needs from the chat rules: who gets a
// push for a message, with what, and the removal of registrations a
// provider refused. Implementations are safe for concurrent use.
type PushSource interface {
	// MessagePushes returns the pushes for the messages with those IDs,
	// by message ID, one per device of each recipient; none for a message
	// that is gone or notifies nobody. It reads all the messages at once,
	// in a number of queries that does not grow with them.
	MessagePushes(ctx context.Context, messageIDs []string) (map[string][]Push, error)
	// PruneDevices removes the registrations with those IDs.
	PruneDevices(ctx context.Context, registrationIDs []string) error
}

// The pre-send hook's actions.
const (
	Allow  = "allow"
	Reject = "reject"
	Modify = "modify"
)

// Verdict is the pre-send hook's answer about a message.
type Verdict struct {
	// Action is Allow, Reject or Modify.
	Action string
	// Reason says why a message was rejected; the sender sees it.
	Reason string
	// Body replaces the message body when not nil (Modify).
	Body *string
	// Attributes replace the message attributes when SetAttributes
	// (Modify); nil clears them.
	Attributes    json.RawMessage
	SetAttributes bool
}

// Backoff is the delay before attempt try+1 of a delivery (try counts from
// 1): exponential from one second (1 s, 2 s, 4 s, …), capped at an hour,
// with jitter (a uniform draw between half that bound and the bound, rand
// returning a duration in [0, d)), and never less than retryAfter, the
// receiver's Retry-After. It is safe for concurrent use when rand is.
func Backoff(try int, retryAfter time.Duration, rand func(time.Duration) time.Duration) time.Duration {
	bound := time.Hour
	if try < 12 {
		bound = min(time.Second<<(try-1), time.Hour)
	}
	d := bound/2 + rand(bound/2)
	return max(d, retryAfter)
}

// RetryAfter reads an HTTP Retry-After header, in seconds or as an HTTP
// date (relative to now); zero when it is absent, malformed or past.
func RetryAfter(header string, now time.Time) time.Duration {
	if header == "" {
		return 0
	}
	if secs, err := strconv.Atoi(header); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(header); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// TransientError is a failed delivery that a later attempt may not meet:
// the receiver is unavailable, throttles (429) or timed out.
type TransientError struct {
	Err error
	// RetryAfter is the service's Retry-After, zero when it sent none.
	RetryAfter time.Duration
}

// Error describes the failure.
func (e *TransientError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

// Unwrap returns the cause.
func (e *TransientError) Unwrap() error { return e.Err }
