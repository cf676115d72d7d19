package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/hub/hubtest"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/ratelimit"
	"github.com/parleychat/parley/server"
)

// ssePost is the body of a POST that runs query as operation id.
func ssePost(id, query string, vars map[string]any) map[string]any {
	return map[string]any{"query": query, "variables": vars, "extensions": map[string]any{"operationId": id}}
}

// wantCode checks an HTTP answer's status and the code of its one error.
func wantCode(t *testing.T, what string, status int, body []byte, wantStatus int, code string) {
	t.Helper()
	r := decodeAnswer(t, body)
	if status != wantStatus || r.Code() != code {
		t.Fatalf("%s: HTTP %d %s, want %d %s", what, status, body, wantStatus, code)
	}
}

func decodeAnswer(t *testing.T, body []byte) *parleytest.Response {
	t.Helper()
	var r parleytest.Response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	return &r
}

// A single-connection stream carries subscriptions, queries and
// mutations, each by its operationId; DELETE stops one without complete,
// and its id may then be used again.
func TestSSESingleConnection(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{})
		c := s.ReserveSSE(t, "bob")
		c.Open(t)

		sub := c.Post(t, "s1", rtUserUpdated, map[string]any{"id": "alice"})
		rtRename(t, alice, "Alice")
		rtWantRenamed(t, sub.Next(t, rtWait), "alice", "Alice")

		q := c.Post(t, "q1", `{ me { identity } }`, nil)
		if data := q.Next(t, rtWait); string(data) != `{"me":{"identity":"bob"}}` {
			t.Fatalf("query over the stream: %s", data)
		}
		q.Complete(t, rtWait)
		m := c.Post(t, "m1", `mutation { updateMe(input: {friendlyName: "Bob"}) { friendlyName } }`, nil)
		if data := m.Next(t, rtWait); string(data) != `{"updateMe":{"friendlyName":"Bob"}}` {
			t.Fatalf("mutation over the stream: %s", data)
		}
		m.Complete(t, rtWait)
		bad := c.Post(t, "v1", `{ nope }`, nil)
		if errs := bad.Err(t, rtWait); errs[0].Code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("invalid document: %+v", errs)
		}
		bad.Complete(t, rtWait)

		// An id in use is refused; a missing one too.
		status, body := s.SSERequest(t, http.MethodPost, c.Token, "bob", nil, ssePost("s1", rtUserUpdated, map[string]any{"id": "alice"}))
		wantCode(t, "duplicate operationId", status, body, http.StatusConflict, "CONFLICT")
		for _, ext := range []any{nil, map[string]any{}, map[string]any{"operationId": ""}, map[string]any{"operationId": 7}} {
			status, body = s.SSERequest(t, http.MethodPost, c.Token, "bob", nil, map[string]any{"query": `{ me { id } }`, "extensions": ext})
			wantCode(t, "no operationId", status, body, http.StatusBadRequest, "BAD_REQUEST")
		}
		status, body = s.SSERequest(t, http.MethodDelete, c.Token, "bob", nil, nil)
		wantCode(t, "DELETE without operationId", status, body, http.StatusBadRequest, "BAD_REQUEST")

		// DELETE stops s1: no complete, no more events. s1 runs again
		// under the same id; the stream is ordered, so the rename
		// reaching the new s1 after the old one was stopped shows that
		// the old one got nothing.
		c.Stop(t, "s1")
		if ev, err := sub.Pending(); err == nil {
			t.Fatalf("stopped operation got %v", ev)
		}
		again := c.Post(t, "s1", rtUserUpdated, map[string]any{"id": "alice"})
		if again == sub {
			t.Fatal("the helper reused the operation")
		}
		rtRename(t, alice, "Alice 2")
		rtWantRenamed(t, again.Next(t, rtWait), "alice", "Alice 2")
		c.Stop(t, "unknown") // 200 all the same
		if stray := c.Stray(); len(stray) > 0 {
			t.Fatalf("events for no running operation: %q", stray)
		}
	})
}

// Operations posted before the stream opens wait in its queue.
func TestSSESingleConnectionPostBeforeOpen(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{})
		c := s.ReserveSSE(t, "bob")
		q := c.Post(t, "q", `{ me { identity } }`, nil)
		sub := c.Post(t, "s", rtUserUpdated, map[string]any{"id": "alice"})
		rtRename(t, alice, "Alice")
		c.Open(t)
		if data := q.Next(t, rtWait); string(data) != `{"me":{"identity":"bob"}}` {
			t.Fatalf("query: %s", data)
		}
		q.Complete(t, rtWait)
		rtWantRenamed(t, sub.Next(t, rtWait), "alice", "Alice")
	})
}

// A token names one stream of one user: unknown tokens get 404, a second
// GET 409, and requests of another user 403. The GET may come without
// Authorization (EventSource cannot send it).
func TestSSESingleConnectionRefusals(t *testing.T) {
	t.Parallel()
	s, _ := rtServer(t, parleytest.Backends()[0], parleytest.Options{})
	c := s.ReserveSSE(t, "bob")
	query := ssePost("q", `{ me { id } }`, nil)

	status, body := s.SSERequest(t, http.MethodPut, "", "", nil, nil)
	wantCode(t, "anonymous PUT", status, body, http.StatusUnauthorized, "UNAUTHENTICATED")

	status, body = s.SSERequest(t, http.MethodPost, c.Token, "carol", nil, query)
	wantCode(t, "POST as another user", status, body, http.StatusForbidden, "FORBIDDEN")
	status, body = s.SSERequest(t, http.MethodPost, c.Token, "", nil, query)
	wantCode(t, "anonymous POST", status, body, http.StatusForbidden, "FORBIDDEN")
	status, body = s.SSERequest(t, http.MethodDelete, c.Token, "carol", url.Values{"operationId": {"q"}}, nil)
	wantCode(t, "DELETE as another user", status, body, http.StatusForbidden, "FORBIDDEN")
	status, body = sseGet(t, s, c.Token, "carol")
	wantCode(t, "GET as another user", status, body, http.StatusForbidden, "FORBIDDEN")
	status, body = sseGet(t, s, "unknown", "")
	wantCode(t, "GET of an unknown token", status, body, http.StatusNotFound, "NOT_FOUND")
	status, body = s.SSERequest(t, http.MethodPost, "unknown", "bob", nil, query)
	wantCode(t, "POST to an unknown token", status, body, http.StatusNotFound, "NOT_FOUND")

	c.Open(t)
	status, body = sseGet(t, s, c.Token, "")
	wantCode(t, "second GET", status, body, http.StatusConflict, "CONFLICT")
}

// sseGet opens a stream as identity, the token in the URL as EventSource
// sends it, and returns a refusal's status and body; a stream that opens
// fails the test.
func sseGet(t *testing.T, s *parleytest.Server, token, identity string) (int, []byte) {
	t.Helper()
	return s.SSERequest(t, http.MethodGet, "", identity, url.Values{"token": {token}}, nil)
}

// A reservation that no GET opens lapses after server.ReservationTimeout:
// open at the last moment, unknown at it.
func TestSSEReservationLapses(t *testing.T) {
	t.Parallel()
	clock := hubtest.New(time.Now())
	s, _ := rtServer(t, parleytest.Backends()[0], parleytest.Options{Clock: clock})
	early := s.ReserveSSE(t, "bob")
	late := s.ReserveSSE(t, "bob")
	clock.Advance(server.ReservationTimeout - time.Nanosecond)
	early.Open(t)
	clock.Advance(time.Nanosecond)
	status, body := sseGet(t, s, late.Token, "")
	wantCode(t, "GET of a lapsed reservation", status, body, http.StatusNotFound, "NOT_FOUND")
	// The open one does not lapse, and stays one stream.
	status, body = sseGet(t, s, early.Token, "")
	wantCode(t, "second GET of the open stream", status, body, http.StatusConflict, "CONFLICT")
	q := early.Post(t, "q", `{ me { identity } }`, nil)
	if data := q.Next(t, rtWait); string(data) != `{"me":{"identity":"bob"}}` {
		t.Fatalf("query: %s", data)
	}
}

// Reservations count as the user's open realtime connections.
func TestSSEReservationLimit(t *testing.T) {
	t.Parallel()
	s, _ := rtServer(t, parleytest.Backends()[0], parleytest.Options{RateLimits: &ratelimit.Config{
		OpenConnections: 2, Connections: ratelimit.Rate{Events: 100, Per: time.Minute, Burst: 100},
	}})
	s.ReserveSSE(t, "bob")
	s.ReserveSSE(t, "bob")
	status, body := s.SSERequest(t, http.MethodPut, "", "bob", nil, nil)
	wantCode(t, "third reservation", status, body, http.StatusTooManyRequests, "RATE_LIMITED")
	s.ReserveSSE(t, "carol")
}

// A stream's subscriptions are capped like a WebSocket's: one more gets
// RATE_LIMITED, then complete.
func TestSSESingleConnectionMaxSubscriptions(t *testing.T) {
	t.Parallel()
	s, alice := rtServer(t, parleytest.Backends()[0], parleytest.Options{WebSocket: server.WebSocketOptions{MaxSubscriptions: 2}})
	c := s.ReserveSSE(t, "bob")
	c.Open(t)
	a := c.Post(t, "a", rtUserUpdated, map[string]any{"id": "alice"})
	b := c.Post(t, "b", rtUserUpdated, map[string]any{"id": "alice"})
	over := c.Post(t, "c", rtUserUpdated, map[string]any{"id": "alice"})
	if errs := over.Err(t, rtWait); errs[0].Code() != "RATE_LIMITED" {
		t.Fatalf("third subscription: %+v", errs)
	}
	over.Complete(t, rtWait)
	rtRename(t, alice, "Alice")
	rtWantRenamed(t, a.Next(t, rtWait), "alice", "Alice")
	rtWantRenamed(t, b.Next(t, rtWait), "alice", "Alice")
}

// A stream whose queue overflows ends: QueueLength events wait for the
// GET, one more ends the stream, whose token is then unknown.
func TestSSESingleConnectionOverflow(t *testing.T) {
	t.Parallel()
	s, _ := rtServer(t, parleytest.Backends()[0], parleytest.Options{WebSocket: server.WebSocketOptions{QueueLength: 2}})
	full := s.ReserveSSE(t, "bob")
	q := full.Post(t, "q", `{ me { identity } }`, nil) // next and complete: 2 events
	full.Open(t)
	q.Next(t, rtWait)
	q.Complete(t, rtWait)

	over := s.ReserveSSE(t, "bob")
	over.Post(t, "q1", `{ me { identity } }`, nil)
	over.Post(t, "q2", `{ me { identity } }`, nil) // its next is one too many
	status, body := s.SSERequest(t, http.MethodPost, over.Token, "bob", nil, ssePost("q3", `{ me { identity } }`, nil))
	wantCode(t, "POST to an overflowed stream", status, body, http.StatusNotFound, "NOT_FOUND")
	status, body = sseGet(t, s, over.Token, "")
	wantCode(t, "GET of an overflowed stream", status, body, http.StatusNotFound, "NOT_FOUND")
}

// The stream ends when the token that reserved it expires (with the
// leeway): no complete for its operations, so that the client reserves
// again with a fresh token.
func TestSSESingleConnectionTokenExpiry(t *testing.T) {
	t.Parallel()
	clock := hubtest.New(time.Now())
	s, _ := rtServer(t, parleytest.Backends()[0], parleytest.Options{Clock: clock, TokenLeeway: rtLeeway})
	c := s.ReserveSSE(t, "bob")
	c.Open(t)
	sub := c.Post(t, "s", rtUserUpdated, map[string]any{"id": "alice"})
	// parleytest's tokens last an hour from when they are minted, after
	// the clock started.
	clock.Advance(time.Hour + rtLeeway + time.Minute)
	if err := c.Ended(t, rtWait); err != io.EOF {
		t.Fatalf("stream ended with %v, want the server to end it", err)
	}
	if ev, err := sub.Pending(); err == nil {
		t.Fatalf("the subscription got %v; want nothing", ev)
	}
	// The token ended with its stream.
	status, body := s.SSERequest(t, http.MethodPost, c.Token, "bob", nil, ssePost("q", `{ me { id } }`, nil))
	wantCode(t, "POST after the stream ended", status, body, http.StatusNotFound, "NOT_FOUND")
}

// Shutdown ends a single-connection stream without complete, and does
// not wait for it.
func TestShutdownEndsSingleConnectionStream(t *testing.T) {
	t.Parallel()
	s, _ := rtServer(t, parleytest.Backends()[0], parleytest.Options{})
	c := s.ReserveSSE(t, "bob")
	c.Open(t)
	sub := c.Post(t, "s", rtUserUpdated, map[string]any{"id": "alice"})
	s.ReserveSSE(t, "bob") // never opened
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := c.Ended(t, rtWait); err != io.EOF {
		t.Fatalf("stream ended with %v, want the server to end it", err)
	}
	if ev, err := sub.Pending(); err == nil {
		t.Fatalf("the subscription got %v; want nothing", ev)
	}
	if strings.Contains(strings.Join(c.Stray(), ""), "complete") {
		t.Fatalf("complete after shutdown: %q", c.Stray())
	}
}
