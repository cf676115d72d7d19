package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/ratelimit"
	"github.com/parleychat/parley/server"
)

// perHour is a rate that does not refill during a test.
func perHour(events int) ratelimit.Rate {
	return ratelimit.Rate{Events: events, Per: time.Hour, Burst: events}
}

// retryAfter is an error's extensions.retryAfter, or -1.
func retryAfter(e parleytest.Error) float64 {
	v, ok := e.Extensions["retryAfter"].(float64)
	if !ok {
		return -1
	}
	return v
}

// TestMutationRateLimit: a user's mutations pass up to the burst; the next
// is refused whole with RATE_LIMITED, retryAfter and HTTP 429, over HTTP
// and WebSocket, and writes nothing. Each root field counts. Other users
// and queries are not limited.
func TestMutationRateLimit(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{RateLimits: &ratelimit.Config{Mutations: perHour(3)}})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		create := func(name string) string {
			return fmt.Sprintf(`mutation { createChannel(input: {type: PUBLIC, uniqueName: %q}) { id } }`, name)
		}
		// Two root fields take two tokens.
		callOK(t, alice, `mutation { a: createChannel(input: {type: PUBLIC, uniqueName: "a"}) { id } b: createChannel(input: {type: PUBLIC, uniqueName: "b"}) { id } }`, nil, nil)
		// Two fields with one token left: refused whole.
		two := alice.Post(`mutation { c: createChannel(input: {type: PUBLIC, uniqueName: "c"}) { id } d: createChannel(input: {type: PUBLIC, uniqueName: "d"}) { id } }`, nil)
		limitErr(t, two, "RATE_LIMITED", "too many mutations")
		callOK(t, alice, create("e"), nil, nil) // the last token

		req := newRequest(t, "POST", srv.URL+"/graphql", "application/json", `{"query": `+strconv.Quote(create("f"))+`}`)
		req.Header.Set("Authorization", alice.Authorization)
		r := do(t, req)
		if r.status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" {
			t.Fatalf("over the limit: %d %s", r.status, r.body)
		}
		wait, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || wait < 1 || float64(wait) != retryAfter(r.errors[0]) {
			t.Errorf("Retry-After %q, extensions %v", r.header.Get("Retry-After"), r.errors[0].Extensions)
		}
		var resp struct{ Data json.RawMessage }
		if err := json.Unmarshal(r.body, &resp); err != nil || (len(resp.Data) > 0 && string(resp.Data) != "null") {
			t.Errorf("data %s", resp.Data)
		}

		ws := srv.Dial(t, "alice")
		errs := ws.Subscribe(create("g"), nil).Err(t, 10*time.Second)
		if len(errs) != 1 || errs[0].Code() != "RATE_LIMITED" || retryAfter(errs[0]) < 1 {
			t.Errorf("over WebSocket: %+v", errs)
		}

		callOK(t, alice, `{ me { identity } }`, nil, nil) // queries are not counted
		callOK(t, bob, create("bob"), nil, nil)
		var names []string
		if err := srv.Store.DB(t.Context()).Table("channels").Order("unique_name").Pluck("unique_name", &names).Error; err != nil {
			t.Fatal(err)
		}
		if strings.Join(names, ",") != "a,b,bob,e" {
			t.Errorf("channels %v: refused mutations wrote", names)
		}
	})
}

// TestTypingRateLimit: one startTyping per user and channel publishes;
// one more within the period answers true and publishes nothing.
func TestTypingRateLimit(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{RateLimits: &ratelimit.Config{Typing: perHour(1)}})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob", "carol"}})
		bob := srv.Dial(t, "bob")
		started := bob.Subscribe(`subscription($c: ID!) { typingStarted(channelId: $c) { user { identity } } }`, map[string]any{"c": ch})
		ended := bob.Subscribe(`subscription($c: ID!) { typingEnded(channelId: $c) { user { identity } } }`, map[string]any{"c": ch})
		ready(t, bob)

		const typing = `mutation($c: ID!) { startTyping(channelId: $c) }`
		var out struct{ StartTyping bool }
		callOK(t, alice, typing, map[string]any{"c": ch}, &out)
		if got := string(started.Next(t, 10*time.Second)); !strings.Contains(got, `"alice"`) {
			t.Fatalf("typingStarted %s", got)
		}
		mustSend(t, alice, ch, "done") // ends the spell
		if got := string(ended.Next(t, 10*time.Second)); !strings.Contains(got, `"alice"`) {
			t.Fatalf("typingEnded %s", got)
		}
		// Over the limit: true, and no typingStarted. Carol's, sent after
		// it on the same channel, is the next event.
		callOK(t, alice, typing, map[string]any{"c": ch}, &out)
		if !out.StartTyping {
			t.Error("an ignored startTyping answered false")
		}
		callOK(t, srv.Client("carol"), typing, map[string]any{"c": ch}, nil)
		if got := string(started.Next(t, 10*time.Second)); !strings.Contains(got, `"carol"`) {
			t.Fatalf("after an ignored startTyping: %s", got)
		}
		// The limit is per channel.
		other := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})
		callOK(t, alice, typing, map[string]any{"c": other}, &out)
	})
}

// sseStatus opens an event stream as identity and returns its status and
// code without reading further; 200 leaves the stream open until the test
// ends.
func sseStatus(t *testing.T, srv *parleytest.Server, identity string) (int, string, http.Header) {
	t.Helper()
	req := newRequest(t, "POST", srv.URL+"/graphql", "application/json", `{"query": "subscription { channelEvents { type } }"}`)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+srv.Token(identity))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp.StatusCode, "", resp.Header
	}
	defer resp.Body.Close()
	var body struct{ Errors []parleytest.Error }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("SSE refusal %d: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body.Errors[0].Code(), resp.Header
}

// TestOpenConnectionLimit: a user holds at most OpenConnections WebSocket
// and SSE connections at once; one more is refused with 4429 (WebSocket)
// or 429 RATE_LIMITED (SSE), and a closed one frees its place.
func TestOpenConnectionLimit(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{RateLimits: &ratelimit.Config{OpenConnections: 2}})
	first := srv.Dial(t, "alice")
	if status, _, _ := sseStatus(t, srv, "alice"); status != http.StatusOK {
		t.Fatalf("second connection, SSE: %d", status)
	}
	_, derr := srv.TryDial(t, "alice")
	if derr == nil || int(derr.Code) != server.CloseRateLimited || !strings.Contains(derr.Reason, "too many open connections: at most 2 per user") {
		t.Fatalf("third connection: %v", derr)
	}
	_, derr = srv.TryDial(t, "alice", parleytest.WithLegacyProtocol())
	if derr == nil || int(derr.Code) != server.CloseRateLimited || !strings.Contains(derr.ConnectionError, "too many open connections") {
		t.Fatalf("third connection, legacy graphql-ws: %v", derr)
	}
	status, code, header := sseStatus(t, srv, "alice")
	if status != http.StatusTooManyRequests || code != "RATE_LIMITED" || header.Get("Retry-After") == "" {
		t.Fatalf("third connection, SSE: %d %s %v", status, code, header)
	}
	srv.Dial(t, "bob") // others are not limited

	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The server frees the place once it has seen the close; until
		// then, the refusal costs nothing.
		if _, derr := srv.TryDial(t, "alice"); derr == nil {
			break
		} else if int(derr.Code) != server.CloseRateLimited || time.Now().After(deadline) {
			t.Fatalf("after a close: %v", derr)
		}
	}
}

// TestNewConnectionRate: a user opens at most Connections new WebSocket or
// SSE connections per period; one more is refused with retry after.
func TestNewConnectionRate(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{RateLimits: &ratelimit.Config{Connections: perHour(2)}})
	srv.Dial(t, "alice").Close()
	if status, _, _ := sseStatus(t, srv, "alice"); status != http.StatusOK {
		t.Fatalf("second connection, SSE: %d", status)
	}
	_, derr := srv.TryDial(t, "alice")
	if derr == nil || int(derr.Code) != server.CloseRateLimited || !strings.Contains(derr.Reason, "too many new connections: at most 2 every 1h0m0s per user; retry after") {
		t.Fatalf("third connection: %v", derr)
	}
	status, code, header := sseStatus(t, srv, "alice")
	if wait, err := strconv.Atoi(header.Get("Retry-After")); status != http.StatusTooManyRequests || code != "RATE_LIMITED" || err != nil || wait < 1000 {
		t.Fatalf("third connection, SSE: %d %s Retry-After %q", status, code, header.Get("Retry-After"))
	}
	srv.Dial(t, "bob")
}
