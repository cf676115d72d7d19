package chat

import (
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/models"
)

// ChannelUpdateWindow is how often, at most, channelEvents tells one
// subscriber of LAST_MESSAGE and LAST_READ updates of one channel: the
// first is delivered at once, those within the window after it wait for
// its end and go out as one event (with the newest channel state and
// every reason that came).
const ChannelUpdateWindow = time.Second

// coalesced are the reasons that channelEvents coalesces, in the order
// an event lists them.
var coalesced = []string{ReasonLastMessage, ReasonLastRead}

// coolKey is the prefix of the hub wake that ends a channel's window.
const coolKey = "cool:"

// channelUpdates coalesces one channelEvents subscription's LAST_MESSAGE
// and LAST_READ updates per channel. A channel is in cooling from an
// update delivered until ChannelUpdateWindow later (a hub wake, no timer
// of its own); what arrives meanwhile waits in it. The hub calls Pick,
// and so these methods, one at a time.
type channelUpdates struct {
	clock   hub.Clock
	cooling map[string]*pendingUpdate
}

// pendingUpdate is what waits for the end of a channel's window: nothing
// when reasons is empty.
type pendingUpdate struct {
	ch      *models.Channel
	reasons []string
}

func newChannelUpdates(clock hub.Clock) *channelUpdates {
	return &channelUpdates{clock: clock, cooling: map[string]*pendingUpdate{}}
}

// update is an UPDATED event of ch with reason for this subscriber: at
// once when the channel is not cooling, else kept for the window's end.
func (u *channelUpdates) update(ch *models.Channel, reason string) hub.Verdict {
	p, cooling := u.cooling[ch.ID]
	if !cooling {
		u.cooling[ch.ID] = &pendingUpdate{}
		return u.deliver(ch, []string{reason})
	}
	if p.ch == nil || ch.NextMessageIndex >= p.ch.NextMessageIndex {
		p.ch = ch
	}
	if !slices.Contains(p.reasons, reason) {
		p.reasons = append(p.reasons, reason)
	}
	return hub.Verdict{}
}

// deliver is the verdict that delivers an update and starts a window.
func (u *channelUpdates) deliver(ch *models.Channel, reasons []string) hub.Verdict {
	slices.SortFunc(reasons, func(a, b string) int { return slices.Index(coalesced, a) - slices.Index(coalesced, b) })
	return hub.Verdict{
		Value: &ChannelEvent{Type: ChannelUpdated, Channel: ch, Reasons: reasons}, Deliver: true,
		Wake: &hub.Wake{At: u.clock.Now().Add(ChannelUpdateWindow), Key: coolKey + ch.ID},
	}
}

// tick ends a channel's window: what waited goes out, and starts the
// next window; with nothing waiting, the channel stops cooling.
func (u *channelUpdates) tick(t hub.Tick) hub.Verdict {
	id, ok := strings.CutPrefix(t.Key, coolKey)
	if !ok {
		return hub.Verdict{}
	}
	p := u.cooling[id]
	if p == nil || len(p.reasons) == 0 {
		delete(u.cooling, id)
		return hub.Verdict{}
	}
	u.cooling[id] = &pendingUpdate{}
	return u.deliver(p.ch, p.reasons)
}

// forget drops a channel the subscriber left or that was deleted.
func (u *channelUpdates) forget(channelID string) { delete(u.cooling, channelID) }
