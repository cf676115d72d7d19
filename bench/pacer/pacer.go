// Package pacer releases events at a steady rate: R per second, evenly
// spaced, from a start time until a deadline.
//
// Tick n is due at start + n/R. When the caller falls behind (the work
// between ticks took longer than the spacing), overdue ticks are released
// at once, but only up to a small burst allowance: ticks more than Burst
// intervals late are skipped and counted, instead of being fired back to
// back. The achieved rate then shows the shortfall honestly, and the
// system under test never sees a flood that the offered rate did not ask
// for.
package pacer

import (
	"context"
	"fmt"
	"time"

	"github.com/parleychat/parley/bench/clock"
)

// DefaultBurst is the catch-up allowance used when Config.Burst is 0.
const DefaultBurst = 3

// Config describes a pacer.
type Config struct {
	// Rate is the number of ticks per second; it must be positive.
	Rate float64
	// Start is when tick 0 is due; zero means the clock's Now at New.
	Start time.Time
	// Deadline ends the pacer: no tick due at or after it is released. It
	// must not be zero.
	Deadline time.Time
	// Burst is how many intervals a tick may be late and still be
	// released; later ticks are skipped. 0 means DefaultBurst; negative
	// means no catch-up at all (any late tick is skipped, the one due
	// now is released).
	Burst int
	// Clock tells time and sleeps; nil is the real clock.
	Clock clock.Clock
}

// Tick is one released event.
type Tick struct {
	// Seq numbers the ticks of the schedule from 0, skipped ones included,
	// so Seq/Rate is the tick's offset from Start.
	Seq int64
	// Due is when the tick was scheduled.
	Due time.Time
	// Late is how long after Due the tick was released (≥ 0).
	Late time.Duration
}

// Pacer releases ticks. It is meant for one goroutine: Wait must not be
// called concurrently.
type Pacer struct {
	rate     float64
	interval time.Duration
	start    time.Time
	deadline time.Time
	burst    int64
	clock    clock.Clock

	next     int64 // the next tick's Seq
	released int64
	skipped  int64
}

// New returns a pacer for cfg.
func New(cfg Config) (*Pacer, error) {
	if !(cfg.Rate > 0) || cfg.Rate > 1e9 {
		return nil, fmt.Errorf("pacer: rate %v is not in (0, 1e9]", cfg.Rate)
	}
	if cfg.Deadline.IsZero() {
		return nil, fmt.Errorf("pacer: no deadline")
	}
	c := cfg.Clock
	if c == nil {
		c = clock.Real{}
	}
	start := cfg.Start
	if start.IsZero() {
		start = c.Now()
	}
	burst := int64(cfg.Burst)
	switch {
	case burst == 0:
		burst = DefaultBurst
	case burst < 0:
		burst = 0
	}
	return &Pacer{
		rate: cfg.Rate, interval: time.Duration(float64(time.Second) / cfg.Rate),
		start: start, deadline: cfg.Deadline, burst: burst, clock: c,
	}, nil
}

// due returns when tick seq is scheduled. It is computed from Start rather
// than accumulated, so rounding never drifts.
func (p *Pacer) due(seq int64) time.Time {
	return p.start.Add(time.Duration(float64(seq) * float64(time.Second) / p.rate))
}

// Wait blocks until the next tick is due and returns it. It returns false
// when the next tick would be due at or after the deadline, or when ctx
// ends.
func (p *Pacer) Wait(ctx context.Context) (Tick, bool) {
	if ctx.Err() != nil {
		return Tick{}, false
	}
	now := p.clock.Now()
	due := p.due(p.next)
	allowance := time.Duration(p.burst) * p.interval
	if excess := now.Sub(due) - allowance; excess > 0 && p.interval > 0 {
		// Skip the ticks that are more than burst intervals late: jump to
		// the oldest tick still within the allowance. The interval is
		// rounded, so the estimate is corrected against the exact schedule.
		skip := int64((excess + p.interval - 1) / p.interval)
		for now.Sub(p.due(p.next+skip)) > allowance {
			skip++
		}
		for skip > 0 && now.Sub(p.due(p.next+skip-1)) <= allowance {
			skip--
		}
		p.next += skip
		p.skipped += skip
		due = p.due(p.next)
	}
	if !due.Before(p.deadline) {
		return Tick{}, false
	}
	if wait := due.Sub(now); wait > 0 {
		if err := p.clock.Sleep(ctx, wait); err != nil {
			return Tick{}, false
		}
		now = p.clock.Now()
	}
	t := Tick{Seq: p.next, Due: due, Late: max(now.Sub(due), 0)}
	p.next++
	p.released++
	return t, true
}

// Released is the number of ticks Wait has returned.
func (p *Pacer) Released() int64 { return p.released }

// Skipped is the number of ticks dropped for being too late.
func (p *Pacer) Skipped() int64 { return p.skipped }

// Interval is the spacing between ticks.
func (p *Pacer) Interval() time.Duration { return p.interval }

// Scheduled is the number of ticks due in [Start, Deadline).
func (p *Pacer) Scheduled() int64 {
	var n int64
	// ⌈(deadline − start)·rate⌉, then corrected for rounding at the edge.
	span := p.deadline.Sub(p.start).Seconds()
	if span <= 0 {
		return 0
	}
	n = int64(span * p.rate)
	for n > 0 && !p.due(n-1).Before(p.deadline) {
		n--
	}
	for p.due(n).Before(p.deadline) {
		n++
	}
	return n
}
