// Package presencetest is the conformance suite that every
// presence.Tracker implementation runs from its own tests:
//
//	func TestTracker(t *testing.T) {
//		presencetest.Run(t, func(t *testing.T) presence.Tracker {
//			p := memory.New()
//			t.Cleanup(func() { _ = p.Close() })
//			return p
//		})
//	}
//
// User IDs get a random suffix, so the suite can share a server with other
// tests. Its functions are meant to be called from a test's goroutine, like
// the testing.T they take.
package presencetest

import (
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/presence"
)

// Run runs the Tracker conformance tests. newTracker must return
// a new Tracker of a node of its own (the Presences of one test may share
// their users, as nodes of one Redis do, or not), and should close it in
// t.Cleanup (the suite closes some itself first, so Close must allow a
// second call).
func Run(t *testing.T, newTracker func(t *testing.T) presence.Tracker) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, newTracker func(t *testing.T) presence.Tracker)
	}{
		{"FirstLast", testFirstLast},
		{"DisconnectUnknown", testDisconnectUnknown},
		{"ManyUsers", testManyUsers},
		{"ConcurrentConnects", testConcurrentConnects},
		{"Close", testPresenceClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newTracker)
		})
	}
}

// Unique returns name with a random suffix, for user IDs that no other
// test uses.
func Unique(name string) string {
	return name + "-" + strings.ToLower(rand.Text()[:10])
}

func testFirstLast(t *testing.T, newTracker func(t *testing.T) presence.Tracker) {
	p := newTracker(t)
	ctx := t.Context()
	u, stranger := Unique("user"), Unique("stranger")
	expectConnect(t, p, u, true)
	expectConnect(t, p, u, false)
	expectOnline(t, p, map[string]bool{u: true, stranger: false})
	expectDisconnect(t, p, u, false)
	expectOnline(t, p, map[string]bool{u: true})
	expectDisconnect(t, p, u, true)
	expectOnline(t, p, map[string]bool{u: false, stranger: false})
	expectConnect(t, p, u, true)
	expectDisconnect(t, p, u, true)
	if online, err := p.Online(ctx, nil); err != nil || len(online) != 0 {
		t.Fatalf("Online(nil) = %v, %v; want an empty map", online, err)
	}
}

func testDisconnectUnknown(t *testing.T, newTracker func(t *testing.T) presence.Tracker) {
	p := newTracker(t)
	u := Unique("user")
	if _, err := p.Disconnect(t.Context(), u); err == nil {
		t.Fatal("Disconnect of a user who never connected succeeded")
	}
	expectConnect(t, p, u, true)
	expectDisconnect(t, p, u, true)
	if _, err := p.Disconnect(t.Context(), u); err == nil {
		t.Fatal("Disconnect of a user with no connection left succeeded")
	}
}

func testManyUsers(t *testing.T, newTracker func(t *testing.T) presence.Tracker) {
	p := newTracker(t)
	want := map[string]bool{}
	var ids []string
	for i := range 40 {
		u := Unique("user" + strconv.Itoa(i))
		ids = append(ids, u)
		want[u] = i%2 == 0
		if i%2 == 0 {
			expectConnect(t, p, u, true)
		}
	}
	ids = append(ids, ids[0], ids[1]) // duplicates are fine
	online, err := p.Online(t.Context(), ids)
	if err != nil {
		t.Fatalf("Online: %v", err)
	}
	if len(online) != len(want) {
		t.Fatalf("Online returned %d users, want %d", len(online), len(want))
	}
	for u, w := range want {
		if online[u] != w {
			t.Errorf("Online[%s] = %v, want %v", u, online[u], w)
		}
	}
}

// testConcurrentConnects connects and disconnects users from many
// goroutines: every user must end offline, with as many firsts as lasts.
func testConcurrentConnects(t *testing.T, newTracker func(t *testing.T) presence.Tracker) {
	p := newTracker(t)
	users := []string{Unique("u0"), Unique("u1"), Unique("u2")}
	const workers, rounds = 6, 20
	var (
		mu            sync.Mutex
		firsts, lasts = map[string]int{}, map[string]int{}
		wg            sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				u := users[(w+i)%len(users)]
				first, err := p.Connect(t.Context(), u)
				if err != nil {
					errs <- err
					return
				}
				last, err := p.Disconnect(t.Context(), u)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if first {
					firsts[u]++
				}
				if last {
					lasts[u]++
				}
				mu.Unlock()
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range users {
		if firsts[u] == 0 || firsts[u] != lasts[u] {
			t.Errorf("user %s: %d firsts and %d lasts, want equal and positive", u, firsts[u], lasts[u])
		}
	}
	want := map[string]bool{}
	for _, u := range users {
		want[u] = false
	}
	expectOnline(t, p, want)
}

func testPresenceClose(t *testing.T, newTracker func(t *testing.T) presence.Tracker) {
	p := newTracker(t)
	u := Unique("user")
	expectConnect(t, p, u, true)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := p.Connect(t.Context(), u); !errors.Is(err, presence.ErrClosed) {
		t.Fatalf("Connect after Close = %v, want ErrClosed", err)
	}
	if _, err := p.Disconnect(t.Context(), u); !errors.Is(err, presence.ErrClosed) {
		t.Fatalf("Disconnect after Close = %v, want ErrClosed", err)
	}
	if _, err := p.Online(t.Context(), []string{u}); !errors.Is(err, presence.ErrClosed) {
		t.Fatalf("Online after Close = %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The closed node's connections are gone for the others.
	expectOnline(t, newTracker(t), map[string]bool{u: false})
}

// expectConnect connects u and checks first.
func expectConnect(t *testing.T, p presence.Tracker, u string, want bool) {
	t.Helper()
	first, err := p.Connect(t.Context(), u)
	if err != nil {
		t.Fatalf("Connect(%s): %v", u, err)
	}
	if first != want {
		t.Fatalf("Connect(%s) first = %v, want %v", u, first, want)
	}
}

// expectDisconnect disconnects u and checks last.
func expectDisconnect(t *testing.T, p presence.Tracker, u string, want bool) {
	t.Helper()
	last, err := p.Disconnect(t.Context(), u)
	if err != nil {
		t.Fatalf("Disconnect(%s): %v", u, err)
	}
	if last != want {
		t.Fatalf("Disconnect(%s) last = %v, want %v", u, last, want)
	}
}

// expectOnline checks Online for the users in want.
func expectOnline(t *testing.T, p presence.Tracker, want map[string]bool) {
	t.Helper()
	ids := make([]string, 0, len(want))
	for u := range want {
		ids = append(ids, u)
	}
	online, err := p.Online(t.Context(), ids)
	if err != nil {
		t.Fatalf("Online: %v", err)
	}
	for u, w := range want {
		if online[u] != w {
			t.Fatalf("Online[%s] = %v, want %v", u, online[u], w)
		}
	}
}
