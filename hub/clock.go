package hub

import (
	"container/heap"
	"time"
)

// Clock is the time source of a Hub's wakes (Verdict.Wake, Spec.Wakes),
// and of the transports' timers that Hub.Clock hands out. Tests give a
// Hub a clock they move by hand (package hub/hubtest).
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// AfterFunc calls f on a goroutine of its own once d has passed
	// (d <= 0: at once), unless the returned stop is called first; stop
	// reports whether it prevented the call.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the Clock of the operating system.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc implements Clock with time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Wake asks the hub to hand the subscription a Tick with Key at At (or at
// once when At has passed). A Wake with the Key of one still pending
// replaces it; a subscription that ends drops its pending wakes.
type Wake struct {
	At  time.Time
	Key string
}

// Tick is the event a subscription's Pick gets, with topic "", when one of
// its wakes is due. At is the time the wake asked for.
type Tick struct {
	Key string
	At  time.Time
}

// wake is one pending Wake in the hub's heap.
type wake struct {
	Wake
	s     *Subscription
	index int // in the heap; -1 once removed
}

// wakeHeap orders pending wakes by time, earliest first.
type wakeHeap []*wake

func (w wakeHeap) Len() int           { return len(w) }
func (w wakeHeap) Less(i, j int) bool { return w[i].At.Before(w[j].At) }
func (w wakeHeap) Swap(i, j int) {
	w[i], w[j] = w[j], w[i]
	w[i].index, w[j].index = i, j
}
func (w *wakeHeap) Push(x any) {
	e := x.(*wake)
	e.index = len(*w)
	*w = append(*w, e)
}
func (w *wakeHeap) Pop() any {
	old := *w
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*w = old[:len(old)-1]
	return e
}

// Clock is the hub's clock, for transports' timers that must move with
// it (token expiry).
func (h *Hub) Clock() Clock { return h.clock }

// wakeLocked schedules w for s, replacing s's pending wake of the same
// key. h.mu is held.
func (h *Hub) wakeLocked(s *Subscription, w Wake) {
	if s.ended {
		return
	}
	if old := s.wakes[w.Key]; old != nil {
		old.At = w.At
		heap.Fix(&h.wakes, old.index)
	} else {
		e := &wake{Wake: w, s: s}
		if s.wakes == nil {
			s.wakes = map[string]*wake{}
		}
		s.wakes[w.Key] = e
		heap.Push(&h.wakes, e)
	}
	h.armLocked()
}

// dropWakesLocked removes the pending wakes of s, which ended. h.mu is
// held.
func (h *Hub) dropWakesLocked(s *Subscription) {
	for _, e := range s.wakes {
		if e.index >= 0 {
			heap.Remove(&h.wakes, e.index)
		}
	}
	s.wakes = nil
}

// armLocked sets the hub's one timer for its earliest wake. h.mu is held.
func (h *Hub) armLocked() {
	if len(h.wakes) == 0 || h.closed {
		return
	}
	next := h.wakes[0].At
	if h.armed && !next.Before(h.armedAt) {
		return
	}
	if h.armed {
		h.stopTimer()
	}
	h.armed, h.armedAt = true, next
	h.stopTimer = h.clock.AfterFunc(next.Sub(h.clock.Now()), h.fire)
}

// fire hands every due wake its Tick, in time order, and re-arms the
// timer for the next.
func (h *Hub) fire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = false
	if h.closed {
		return
	}
	now := h.clock.Now()
	for len(h.wakes) > 0 && !h.wakes[0].At.After(now) {
		e := heap.Pop(&h.wakes).(*wake)
		delete(e.s.wakes, e.Key)
		if !e.s.ended {
			h.deliverLocked([]*Subscription{e.s}, "", Tick{Key: e.Key, At: e.At})
		}
	}
	h.armLocked()
}
