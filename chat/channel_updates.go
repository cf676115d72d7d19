package chat

import (
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/models"
)

// ChannelUpdateWindow is how often, at most, one subscriber is told of
// the coalesced updates of one channel (channelEvents' LAST_MESSAGE and
// LAST_READ, unreadChanged): the first is delivered at once, those within
// the window after it wait for its end and go out as one event (with the
// newest state).
const ChannelUpdateWindow = time.Second

// coalesced are the reasons that channelEvents coalesces, in the order
// an event lists them.
var coalesced = []string{ReasonLastMessage, ReasonLastRead}

// coolKey is the prefix of the hub wake that ends a channel's window.
const coolKey = "cool:"

// pending is an update that can wait for the end of a channel's window:
// merge folds a later update of the same channel into it, value is what
// its delivery hands to the resolver.
type pending[P any] interface {
	merge(later P) P
	value() any
}

// coalescer holds one subscription's updates to at most one delivery per
// channel and ChannelUpdateWindow. A channel is in cooling from an update
// delivered until ChannelUpdateWindow later (a hub wake, no timer of its
// own); what arrives meanwhile is merged and waits. The hub calls Pick,
// and so these methods, one at a time.
type coalescer[P pending[P]] struct {
	clock   hub.Clock
	cooling map[string]*window[P]
}

// window is a cooling channel: waiting holds what came since its last
// delivery, when has is true.
type window[P any] struct {
	waiting P
	has     bool
}

func newCoalescer[P pending[P]](clock hub.Clock) *coalescer[P] {
	return &coalescer[P]{clock: clock, cooling: map[string]*window[P]{}}
}

// update is an update p of channel channelID: delivered at once when the
// channel is not cooling, else merged into what waits for the window's
// end.
func (c *coalescer[P]) update(channelID string, p P) hub.Verdict {
	w, cooling := c.cooling[channelID]
	switch {
	case !cooling:
		return c.deliver(channelID, p)
	case w.has:
		w.waiting = w.waiting.merge(p)
	default:
		w.waiting, w.has = p, true
	}
	return hub.Verdict{}
}

// deliver is the verdict that delivers p and starts a window.
func (c *coalescer[P]) deliver(channelID string, p P) hub.Verdict {
	c.cooling[channelID] = &window[P]{}
	return hub.Verdict{
		Value: p.value(), Deliver: true,
		Wake: &hub.Wake{At: c.clock.Now().Add(ChannelUpdateWindow), Key: coolKey + channelID},
	}
}

// tick ends a channel's window: what waited goes out, and starts the
// next window; with nothing waiting, the channel stops cooling.
func (c *coalescer[P]) tick(t hub.Tick) hub.Verdict {
	id, ok := strings.CutPrefix(t.Key, coolKey)
	if !ok {
		return hub.Verdict{}
	}
	w := c.cooling[id]
	if w == nil || !w.has {
		delete(c.cooling, id)
		return hub.Verdict{}
	}
	return c.deliver(id, w.waiting)
}

// forget drops a channel the subscriber left or that was deleted: what
// waited for it is not delivered.
func (c *coalescer[P]) forget(channelID string) { delete(c.cooling, channelID) }

// channelUpdate is a channelEvents UPDATED event that may wait: the
// newest channel state seen and every reason that came.
type channelUpdate struct {
	ch      *models.Channel
	reasons []string
}

func (u *channelUpdate) merge(later *channelUpdate) *channelUpdate {
	if later.ch.NextMessageIndex >= u.ch.NextMessageIndex {
		u.ch = later.ch
	}
	for _, r := range later.reasons {
		if !slices.Contains(u.reasons, r) {
			u.reasons = append(u.reasons, r)
		}
	}
	return u
}

func (u *channelUpdate) value() any {
	slices.SortFunc(u.reasons, func(a, b string) int { return slices.Index(coalesced, a) - slices.Index(coalesced, b) })
	return &ChannelEvent{Type: ChannelUpdated, Channel: u.ch, Reasons: u.reasons}
}

// channelUpdates coalesces one channelEvents subscription's LAST_MESSAGE
// and LAST_READ updates per channel.
type channelUpdates struct{ *coalescer[*channelUpdate] }

func newChannelUpdates(clock hub.Clock) channelUpdates {
	return channelUpdates{newCoalescer[*channelUpdate](clock)}
}

// channel is an UPDATED event of ch with reason for this subscriber: at
// once when the channel is not cooling, else kept for the window's end.
func (u channelUpdates) channel(ch *models.Channel, reason string) hub.Verdict {
	return u.update(ch.ID, &channelUpdate{ch: ch, reasons: []string{reason}})
}
