package ratelimit

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
)

// clock is a fake clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var alice, bob = auth.Principal{Identity: "alice"}, auth.Principal{Identity: "bob"}

func limited(t *testing.T, err *apperr.Error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("allowed, want RATE_LIMITED %q", want)
	}
	if err.Code != apperr.RateLimited || !strings.Contains(err.Message, want) || err.RetryAfter < time.Second {
		t.Fatalf("got %+v, want RATE_LIMITED %q with a RetryAfter", err, want)
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"20/s":      {Events: 20, Per: time.Second, Burst: 20},
		"1/2s":      {Events: 1, Per: 2 * time.Second, Burst: 1},
		"100/m":     {Events: 100, Per: time.Minute, Burst: 100},
		"600/1h":    {Events: 600, Per: time.Hour, Burst: 600},
		" 5/500ms ": {Events: 5, Per: 500 * time.Millisecond, Burst: 5},
		"off":       {},
		"OFF":       {},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "20", "0/s", "-1/s", "x/s", "20/", "20/x", "20/-1s", "20/0s"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	for _, r := range []Rate{Defaults.Mutations, Defaults.Typing, {}} {
		back, err := ParseRate(r.String())
		if err != nil || back.Events != r.Events || back.Per != r.Per {
			t.Errorf("%+v → %q → %+v, %v", r, r.String(), back, err)
		}
	}
}

// TestMutations: the burst passes at once, one more does not until the
// rate has refilled a token; users have buckets of their own.
func TestMutations(t *testing.T) {
	c := newClock()
	l := New(Defaults, WithClock(c.Now))
	for i := range 50 {
		if err := l.Mutation(alice, 1); err != nil {
			t.Fatalf("mutation %d of the burst: %v", i+1, err)
		}
	}
	limited(t, l.Mutation(alice, 1), "too many mutations: at most 20 every 1s, in bursts of 50, per user; retry after 1s")
	if err := l.Mutation(bob, 1); err != nil {
		t.Fatalf("bob: %v", err)
	}
	c.Advance(time.Second / 20)
	if err := l.Mutation(alice, 1); err != nil {
		t.Fatalf("after 1/20 s: %v", err)
	}
	limited(t, l.Mutation(alice, 1), "too many mutations")

	// An operation of several fields takes one token each, all or none.
	c.Advance(time.Second / 2) // 10 tokens
	limited(t, l.Mutation(alice, 11), "too many mutations")
	if err := l.Mutation(alice, 10); err != nil {
		t.Fatalf("10 fields with 10 tokens: %v", err)
	}
	// More fields than the burst count as the burst.
	c.Advance(time.Hour)
	if err := l.Mutation(alice, 500); err != nil {
		t.Fatalf("a full bucket refused a large operation: %v", err)
	}
	limited(t, l.Mutation(alice, 1), "too many mutations")
}

// TestRetryAfter: the wait is how long until the tokens are there,
// rounded up to whole seconds.
func TestRetryAfter(t *testing.T) {
	c := newClock()
	l := New(Config{Mutations: Rate{Events: 1, Per: 10 * time.Second, Burst: 1}}, WithClock(c.Now))
	if err := l.Mutation(alice, 1); err != nil {
		t.Fatal(err)
	}
	err := l.Mutation(alice, 1)
	limited(t, err, "retry after 10s")
	if err.RetryAfterSeconds() != 10 || err.Extensions()["retryAfter"] != int64(10) {
		t.Fatalf("retryAfter %d, extensions %v", err.RetryAfterSeconds(), err.Extensions())
	}
	c.Advance(2500 * time.Millisecond)
	if err := l.Mutation(alice, 1); err == nil || err.RetryAfterSeconds() != 8 {
		t.Fatalf("after 2.5 s: %+v, want retry after 8 s", err)
	}
}

// TestTyping: one startTyping per user and channel every 2 s publishes.
func TestTyping(t *testing.T) {
	c := newClock()
	l := New(Defaults, WithClock(c.Now))
	if !l.Typing(alice, "c1") {
		t.Fatal("the first call was refused")
	}
	if l.Typing(alice, "c1") {
		t.Fatal("a second call at once was allowed")
	}
	if !l.Typing(alice, "c2") || !l.Typing(bob, "c1") {
		t.Fatal("another channel or user shares the limit")
	}
	c.Advance(2*time.Second - time.Millisecond)
	if l.Typing(alice, "c1") {
		t.Fatal("allowed before 2 s")
	}
	c.Advance(time.Millisecond)
	if !l.Typing(alice, "c1") {
		t.Fatal("refused after 2 s")
	}
}

// TestConnections: 10 new connections at once, the 11th waits for the
// rate; 50 open at once, the 51st waits for one to close.
func TestConnections(t *testing.T) {
	c := newClock()
	l := New(Defaults, WithClock(c.Now))
	var releases []func()
	for i := range 10 {
		release, err := l.Connect(alice)
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		releases = append(releases, release)
	}
	_, err := l.Connect(alice)
	limited(t, err, "too many new connections: at most 10 every 1s per user")
	if _, err := l.Connect(bob); err != nil {
		t.Fatalf("bob: %v", err)
	}
	for len(releases) < 50 {
		c.Advance(time.Second)
		for range 10 {
			release, err := l.Connect(alice)
			if err != nil {
				t.Fatalf("connection %d: %v", len(releases)+1, err)
			}
			releases = append(releases, release)
		}
	}
	c.Advance(time.Second)
	_, err = l.Connect(alice)
	limited(t, err, "too many open connections: at most 50 per user")
	releases[0]()
	releases[0]() // twice is once
	release, err := l.Connect(alice)
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	_, err = l.Connect(alice)
	limited(t, err, "too many open connections")
	release()
	for _, r := range releases[1:] {
		r()
	}
	if n := l.open.size(); n != 1 { // bob's
		t.Fatalf("%d identities still counted", n)
	}
}

// TestIdleBucketsAreForgotten: the buckets of users who stopped are
// dropped once full again, so memory follows the active users.
func TestIdleBucketsAreForgotten(t *testing.T) {
	c := newClock()
	l := New(Defaults, WithClock(c.Now))
	for i := range 10_000 {
		p := auth.Principal{Identity: fmt.Sprintf("u%d", i)}
		if err := l.Mutation(p, 1); err != nil {
			t.Fatal(err)
		}
		l.Typing(p, "c")
	}
	if n := l.mutations.size(); n != 10_000 {
		t.Fatalf("%d buckets for 10,000 users", n)
	}
	// A bucket still refilling at the sweep is kept.
	c.Advance(sweepEvery - time.Second)
	if err := l.Mutation(alice, 50); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	if err := l.Mutation(bob, 1); err != nil {
		t.Fatal(err)
	}
	if n := l.mutations.size(); n != 2 {
		t.Fatalf("%d mutation buckets after the sweep, want alice's and bob's", n)
	}
	l.Typing(bob, "c")
	if n := l.typing.size(); n != 1 {
		t.Fatalf("%d typing buckets after the sweep", n)
	}
}

// TestOff: a nil Limits and zero rates limit nothing.
func TestOff(t *testing.T) {
	for name, l := range map[string]*Limits{"nil": nil, "zero": New(Config{})} {
		for range 1000 {
			if err := l.Mutation(alice, 10); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !l.Typing(alice, "c") {
				t.Fatalf("%s: typing refused", name)
			}
			release, err := l.Connect(alice)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			defer release()
		}
	}
}

// TestConcurrent: concurrent callers share one bucket exactly.
func TestConcurrent(t *testing.T) {
	c := newClock()
	l := New(Defaults, WithClock(c.Now))
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 200 {
		wg.Go(func() {
			if l.Mutation(alice, 1) == nil {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Fatalf("%d of 200 concurrent mutations allowed, want the burst of 50", allowed)
	}
}

// TestAdminExempt: admin tokens, the application's backend acting for many
// users, are not limited.
func TestAdminExempt(t *testing.T) {
	l := New(Config{Mutations: Rate{Events: 1, Per: time.Hour, Burst: 1}, Typing: Defaults.Typing, Connections: Rate{Events: 1, Per: time.Hour, Burst: 1}, OpenConnections: 1})
	admin := auth.Principal{Identity: "backend", Admin: true}
	for range 100 {
		if err := l.Mutation(admin, 1); err != nil {
			t.Fatal(err)
		}
		if !l.Typing(admin, "c") {
			t.Fatal("typing refused")
		}
		if _, err := l.Connect(admin); err != nil {
			t.Fatal(err)
		}
	}
	// The same identity without the claim is limited.
	if err := l.Mutation(auth.Principal{Identity: "backend"}, 1); err != nil {
		t.Fatal(err)
	}
	limited(t, l.Mutation(auth.Principal{Identity: "backend"}, 1), "too many mutations")
}
