package pacer

import (
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley/bench/clock"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newFake(t *testing.T, rate float64, window time.Duration, burst int) (*Pacer, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(t0)
	p, err := New(Config{Rate: rate, Start: t0, Deadline: t0.Add(window), Burst: burst, Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	return p, fc
}

func TestEvenSpacing(t *testing.T) {
	p, _ := newFake(t, 100, time.Second, 0)
	var ticks []Tick
	for {
		tk, ok := p.Wait(context.Background())
		if !ok {
			break
		}
		ticks = append(ticks, tk)
	}
	if len(ticks) != 100 {
		t.Fatalf("%d ticks in 1 s at 100/s, want 100", len(ticks))
	}
	for i, tk := range ticks {
		if want := t0.Add(time.Duration(i) * 10 * time.Millisecond); !tk.Due.Equal(want) || tk.Seq != int64(i) || tk.Late != 0 {
			t.Fatalf("tick %d = %+v, want due %v, not late", i, tk, want)
		}
	}
	if p.Skipped() != 0 || p.Released() != 100 || p.Scheduled() != 100 {
		t.Fatalf("skipped %d released %d scheduled %d", p.Skipped(), p.Released(), p.Scheduled())
	}
}

func TestFractionalRate(t *testing.T) {
	// 3 per second over 2 s: due at 0, ⅓, ⅔, 1, 1⅓, 1⅔: six ticks.
	p, _ := newFake(t, 3, 2*time.Second, 0)
	n := 0
	for {
		if _, ok := p.Wait(context.Background()); !ok {
			break
		}
		n++
	}
	if n != 6 || p.Scheduled() != 6 {
		t.Fatalf("%d ticks (scheduled %d), want 6", n, p.Scheduled())
	}
}

func TestSlowWorkerSkipsBeyondBurst(t *testing.T) {
	// Each tick's work takes 35 ms at 100/s (10 ms spacing): the caller
	// can do at most 1000/35 ≈ 28 ticks in a second, and the pacer must
	// never release more than burst+1 ticks back to back.
	p, fc := newFake(t, 100, time.Second, 2)
	released := 0
	var last time.Time
	backToBack := 0
	for {
		tk, ok := p.Wait(context.Background())
		if !ok {
			break
		}
		released++
		if tk.Late > 2*p.Interval() {
			t.Fatalf("tick %d released %v late, over the 2-interval allowance", tk.Seq, tk.Late)
		}
		now := fc.Now()
		if now.Equal(last) {
			backToBack++
		} else {
			backToBack = 0
		}
		last = now
		if backToBack > 0 {
			t.Fatalf("work advances the clock, so no two ticks may share an instant (tick %d)", tk.Seq)
		}
		fc.Advance(35 * time.Millisecond)
	}
	if released < 27 || released > 29 {
		t.Fatalf("released %d ticks, want about 28", released)
	}
	if int64(released)+p.Skipped() > p.Scheduled() {
		t.Fatalf("released %d + skipped %d > scheduled %d", released, p.Skipped(), p.Scheduled())
	}
	if p.Skipped() < 60 {
		t.Fatalf("skipped %d, want most of the 100", p.Skipped())
	}
}

func TestCatchUpWithinBurst(t *testing.T) {
	// A single 30 ms stall at 100/s with burst 3: the three overdue ticks
	// are released at once, none is skipped, and the total is exact.
	p, fc := newFake(t, 100, time.Second, 3)
	n := 0
	for {
		tk, ok := p.Wait(context.Background())
		if !ok {
			break
		}
		n++
		if tk.Seq == 10 {
			fc.Advance(30 * time.Millisecond)
		}
	}
	if n != 100 || p.Skipped() != 0 {
		t.Fatalf("released %d, skipped %d; want 100 and 0", n, p.Skipped())
	}
}

func TestLongStallBurstBounded(t *testing.T) {
	// A 500 ms stall with burst 3: afterwards at most 4 ticks come at the
	// same instant (the allowance plus the one due now).
	p, fc := newFake(t, 100, time.Second, 3)
	stalled := false
	sameInstant, maxSame := 0, 0
	var last time.Time
	for {
		tk, ok := p.Wait(context.Background())
		if !ok {
			break
		}
		if tk.Seq >= 20 && !stalled {
			stalled = true
			fc.Advance(500 * time.Millisecond)
			continue
		}
		if now := fc.Now(); now.Equal(last) {
			sameInstant++
		} else {
			sameInstant = 1
			last = now
		}
		maxSame = max(maxSame, sameInstant)
	}
	if maxSame > 4 {
		t.Fatalf("%d ticks released at one instant, want at most 4", maxSame)
	}
	if p.Skipped() < 40 {
		t.Fatalf("skipped %d, want the ~46 ticks of the stall", p.Skipped())
	}
	if p.Released()+p.Skipped() != 100 {
		t.Fatalf("released %d + skipped %d != 100", p.Released(), p.Skipped())
	}
}

func TestStopsAtDeadlineAndContext(t *testing.T) {
	p, fc := newFake(t, 10, time.Second, 0)
	fc.Advance(2 * time.Second)
	if _, ok := p.Wait(context.Background()); ok {
		t.Fatal("tick released after the deadline")
	}
	p2, _ := newFake(t, 10, time.Second, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := p2.Wait(ctx); ok {
		t.Fatal("tick released with a cancelled context")
	}
}

func TestRealClockSmoke(t *testing.T) {
	// Only checks that the real clock path works and stops; no timing
	// assertion.
	p, err := New(Config{Rate: 1000, Deadline: time.Now().Add(20 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, ok := p.Wait(context.Background()); !ok {
			break
		}
		n++
	}
	if n == 0 || n > 21 {
		t.Fatalf("released %d ticks in a 20 ms window at 1000/s", n)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Rate: 0, Deadline: t0},
		{Rate: -1, Deadline: t0},
		{Rate: 10},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
