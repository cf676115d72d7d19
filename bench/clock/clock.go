// Package clock gives parley-bench its notion of time: a Unix-nanosecond
// clock that follows the monotonic clock (so that a send time written into
// a message and a receive time read in the same process are comparable even
// if the wall clock steps), and a Clock interface with a real and a fake
// implementation for code that waits, such as the rate pacer.
package clock

import (
	"context"
	"sync"
	"time"
)

// epoch anchors UnixNano: its wall-clock reading plus the monotonic time
// elapsed since it.
var epoch = time.Now()

// UnixNano returns the current time as nanoseconds since the Unix epoch,
// advancing with the monotonic clock: differences between two readings in
// one process are exact durations even when the wall clock is adjusted.
func UnixNano() int64 {
	return epoch.UnixNano() + time.Since(epoch).Nanoseconds()
}

// Clock tells time and waits. Implementations must be safe for concurrent
// use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d, or until ctx ends, whichever comes first; it
	// returns ctx's error in the latter case. A d ≤ 0 returns at once.
	Sleep(ctx context.Context, d time.Duration) error
}

// Real is the system clock.
type Real struct{}

var _ Clock = Real{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx ends.
func (Real) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fake is a clock that only moves when told to: Sleep advances it by the
// duration at once, and Advance moves it explicitly. The zero value starts
// at the zero time; use NewFake for a given start.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Sleep advances the fake time by d (when positive) without waiting. It
// returns ctx's error if ctx has already ended.
func (f *Fake) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.Advance(d)
	return nil
}

// Advance moves the fake time forward by d; a negative d is ignored.
func (f *Fake) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}
