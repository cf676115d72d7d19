package hub_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/hub/hubtest"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/memory"
)

// TestWakes: a subscription gets a Tick when a wake it asked for is due,
// from Spec.Wakes or a Verdict; a wake with a pending one's key replaces
// it; a subscription that ends drops its wakes; the node has one timer
// for all of them, on the hub's clock.
func TestWakes(t *testing.T) {
	mem := memory.New(pubsub.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = mem.Close() })
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := hubtest.New(t0)
	h, err := hub.New(mem, hub.Options{Decode: func(_ string, data []byte) (any, error) { return string(data), nil }, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	if h.Clock() != hub.Clock(clock) {
		t.Fatal("Clock() is not the clock of Options")
	}

	// Events "wake KEY SECONDS" ask for a wake at t0+SECONDS.
	subscribeWaking := func(o *op, wakes ...hub.Wake) hub.Ticket {
		t.Helper()
		ticket := h.Expect(o)
		_, err := h.Subscribe(hub.WithTicket(t.Context(), ticket), hub.Spec{
			Topics: []string{"t"},
			Wakes:  wakes,
			Emit:   func(v any) { o.value.Store(v) },
			Pick: func(_ string, ev any) hub.Verdict {
				switch ev := ev.(type) {
				case hub.Tick:
					return hub.Verdict{Value: "tick:" + ev.Key, Deliver: true}
				case string:
					var key string
					var secs int
					if _, err := fmt.Sscanf(ev, "wake %s %d", &key, &secs); err != nil {
						return hub.Verdict{Value: ev, Deliver: true}
					}
					return hub.Verdict{Value: ev, Deliver: true, Wake: &hub.Wake{At: t0.Add(time.Duration(secs) * time.Second), Key: key}}
				}
				return hub.Verdict{}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ticket); err != nil {
			t.Fatal(err)
		}
		return ticket
	}
	publish := func(m string) {
		t.Helper()
		if err := mem.Publish(t.Context(), "t", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var executed atomic.Int64
	o := newOp("k", &executed)
	subscribeWaking(o, hub.Wake{At: t0.Add(10 * time.Second), Key: "a"})
	if clock.Timers() != 1 {
		t.Fatalf("%d timers armed for one wake, want 1", clock.Timers())
	}
	clock.Advance(9 * time.Second)
	publish("ping")
	waitFor(t, "ping", func() bool { return len(o.received()) == 1 })
	clock.Advance(time.Second)
	waitFor(t, "the first tick", func() bool { return len(o.received()) == 2 })

	publish("wake b 15")
	publish("wake b 17") // replaces the wake at 15 s
	waitFor(t, "two events", func() bool { return len(o.received()) == 4 })
	clock.Advance(7 * time.Second) // t0+17s: both times have passed
	waitFor(t, "the tick of b", func() bool { return len(o.received()) == 5 })
	publish("ping")
	waitFor(t, "the last ping", func() bool { return len(o.received()) == 6 })
	want := "ping tick:a wake b 15 wake b 17 tick:b ping"
	if got := strings.Join(o.received(), " "); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}

	// Ending drops the pending wakes.
	other := newOp("k2", &executed)
	ticket := subscribeWaking(other, hub.Wake{At: t0.Add(time.Hour), Key: "c"}, hub.Wake{At: t0.Add(2 * time.Hour), Key: "d"})
	if n := hub.PendingWakes(h); n != 2 {
		t.Fatalf("%d pending wakes, want 2", n)
	}
	h.Stop(ticket)
	if n := hub.PendingWakes(h); n != 0 {
		t.Fatalf("%d pending wakes after the subscription stopped, want 0", n)
	}
}
