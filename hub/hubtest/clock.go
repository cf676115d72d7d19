// Package hubtest has test doubles for package hub's dependencies.
package hubtest

import (
	"sync"
	"time"

	"github.com/parleychat/parley/hub"
)

// Clock is a hub.Clock that moves only when told (Advance), so that tests
// of wakes and expiries need no sleeps. It starts at the time New gives
// it. Safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

var _ hub.Clock = (*Clock)(nil)

type timer struct {
	at      time.Time
	f       func()
	stopped bool
}

// New returns a Clock at now.
func New(now time.Time) *Clock {
	return &Clock{now: now}
}

// Now implements hub.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements hub.Clock: f runs, on a goroutine of its own, when
// Advance reaches now+d (at once when d <= 0).
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	tm := &timer{at: c.now.Add(d), f: f}
	due := d <= 0
	if !due {
		c.timers = append(c.timers, tm)
	}
	c.mu.Unlock()
	if due {
		go f()
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !tm.stopped && !due
		tm.stopped = true
		for i, t := range c.timers {
			if t == tm {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return was
			}
		}
		return false
	}
}

// Advance moves the clock by d and runs the timers that fall due, each on
// a goroutine of its own, in time order of their start.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t)
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, t := range due {
		go t.f()
	}
}

// Timers is the number of timers waiting for their time.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}
