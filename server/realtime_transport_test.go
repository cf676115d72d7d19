package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// These tests cover the realtime transports themselves: authentication at
// connection_init, token expiry, origins, limits and keep-alives over
// WebSocket, and subscriptions over server-sent events. Events come from
// userUpdated, triggered by updateMe over HTTP.

// rtWait bounds how long a test waits for something that must happen.
const rtWait = 10 * time.Second

const rtUserUpdated = `subscription($id: String!) { userUpdated(identity: $id) { user { identity friendlyName } reasons } }`

type rtUserEvent struct {
	UserUpdated struct {
		User struct {
			Identity     string
			FriendlyName *string
		}
		Reasons []string
	}
}

// rtRename renames c's user, which publishes userUpdated(FRIENDLY_NAME).
func rtRename(t *testing.T, c *parleytest.Client, name string) {
	t.Helper()
	c.Do(`mutation($n: String) { updateMe(input: {friendlyName: $n}) { id } }`, map[string]any{"n": name}, nil)
}

// rtWantRenamed decodes a userUpdated event and checks the new name.
func rtWantRenamed(t *testing.T, data json.RawMessage, identity, name string) {
	t.Helper()
	var ev rtUserEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	u := ev.UserUpdated.User
	if u.Identity != identity || u.FriendlyName == nil || *u.FriendlyName != name {
		t.Fatalf("userUpdated = %s, want %s renamed %q", data, identity, name)
	}
}

// rtServer starts a server where alice exists.
func rtServer(t *testing.T, b parleytest.Backend, opts parleytest.Options) (*parleytest.Server, *parleytest.Client) {
	t.Helper()
	s := parleytest.NewServer(t, b, opts)
	alice := s.Client("alice")
	alice.Do(`{ me { id } }`, nil, nil)
	return s, alice
}

var rtProtocols = []struct {
	name string
	opts []parleytest.DialOption
}{
	{parleytest.ProtocolTransportWS, nil},
	{parleytest.ProtocolLegacy, []parleytest.DialOption{parleytest.WithLegacyProtocol()}},
}

func TestWebSocketRefusesBadTokens(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{})
		now := time.Now()
		expired, err := auth.Mint(s.Secret, "alice", "", time.Hour, now.Add(-2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		foreign, err := auth.Mint([]byte("some-other-secret-0123456789abcdef"), "alice", "", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name   string
			opts   []parleytest.DialOption
			reason string
		}{
			{"no token", nil, "missing token"},
			{"empty payload token", []parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"token": " "})}, "missing token"},
			{"garbage", []parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"authorization": "Bearer nope"})}, "malformed token"},
			{"not a string", []parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"token": 42})}, "malformed token"},
			{"expired", []parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"Authorization": "Bearer " + expired})}, "token expired"},
			{"foreign secret", []parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"token": foreign})}, "invalid token signature"},
			// auth.Middleware lets an upgrade with a bad header through,
			// anonymous; connection_init then has no token to offer.
			{"bad header, no payload token", []parleytest.DialOption{parleytest.WithHeader("Authorization", "Bearer nope")}, "missing token"},
			{"expired header", []parleytest.DialOption{parleytest.WithHeader("Authorization", "Bearer "+expired)}, "missing token"},
		}
		for _, p := range rtProtocols {
			for _, tc := range cases {
				t.Run(p.name+"/"+tc.name, func(t *testing.T) {
					c, derr := s.TryDial(t, "", append(tc.opts, p.opts...)...)
					if derr == nil {
						c.Close()
						t.Fatal("connection acknowledged")
					}
					if derr.HTTPStatus != 0 || derr.Code != server.CloseForbidden || derr.Reason != tc.reason {
						t.Fatalf("refused with %v, want close %d %q", derr, server.CloseForbidden, tc.reason)
					}
					if p.name == parleytest.ProtocolLegacy && (derr.ConnectionError != tc.reason || derr.ConnectionErrorCode != "UNAUTHENTICATED") {
						t.Fatalf("legacy connection_error = %q (code %q), want %q (UNAUTHENTICATED)", derr.ConnectionError, derr.ConnectionErrorCode, tc.reason)
					}
				})
			}
		}
	})
}

// A client that sends subscribe right behind a bad connection_init gets the
// socket closed, and nothing for the subscription.
func TestWebSocketRefusedBeforeSubscription(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		hooks := &rtHooks{}
		s, _ := rtServer(t, b, parleytest.Options{Realtime: hooks})
		ctx, cancel := context.WithTimeout(context.Background(), rtWait)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, rtWSURL(s), &websocket.DialOptions{Subprotocols: []string{parleytest.ProtocolTransportWS}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		for _, m := range []string{
			`{"type":"connection_init","payload":{"authorization":"Bearer nope"}}`,
			`{"type":"subscribe","id":"1","payload":{"query":"subscription { userUpdated(identity: \"alice\") { reasons } }"}}`,
		} {
			if err := conn.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				if code := websocket.CloseStatus(err); code != server.CloseForbidden {
					t.Fatalf("closed with %v, want %d", err, server.CloseForbidden)
				}
				break
			}
			t.Errorf("got a message before the close: %s", data)
		}
		if got := hooks.events(); len(got) != 0 {
			t.Fatalf("hooks called for a refused connection: %v", got)
		}
	})
}

// gqlgen gives up on a connection_init whose payload is not an object
// without closing the socket; the server must still release it.
func TestWebSocketMalformedInitPayload(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{})
		for _, payload := range []string{`[1]`, `"token"`, `42`} {
			msgs, code := rtRawSession(t, s, parleytest.ProtocolTransportWS, `{"type":"connection_init","payload":`+payload+`}`)
			if len(msgs) != 0 {
				t.Fatalf("payload %s: got %q", payload, msgs)
			}
			t.Logf("payload %s: closed with %d", payload, code)
		}
	})
}

func TestWebSocketSubprotocolsAndTokenPlaces(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{})
		places := []struct {
			name string
			opts []parleytest.DialOption
		}{
			{"payload", nil},
			{"header", []parleytest.DialOption{parleytest.WithHeaderToken()}},
			{"bare token key", []parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"token": s.Token("bob")})}},
			// A bad header does not spoil a good connection_init.
			{"bad header, payload token", []parleytest.DialOption{parleytest.WithHeader("Authorization", "Bearer nope")}},
		}
		n := 0
		for _, p := range rtProtocols {
			for _, place := range places {
				t.Run(p.name+"/"+place.name, func(t *testing.T) {
					ws := s.Dial(t, "bob", append(place.opts, p.opts...)...)
					if ws.Subprotocol != p.name {
						t.Fatalf("subprotocol %q", ws.Subprotocol)
					}
					sub := ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
					ready(t, sub)
					n++
					name := fmt.Sprintf("Alice %d", n)
					rtRename(t, alice, name)
					rtWantRenamed(t, sub.Next(t, rtWait), "alice", name)
					sub.Stop()
				})
			}
		}
		// The payload's token wins over the header's: a bad one refuses.
		_, derr := s.TryDial(t, "bob", parleytest.WithHeaderToken(), parleytest.WithInitPayload(map[string]any{"token": "nope"}))
		if derr == nil || derr.Code != server.CloseForbidden {
			t.Fatalf("good header, bad payload: %v", derr)
		}
	})
}

// rtLeeway is the token leeway of the servers that test expiry: a
// connection closes that long after its token's exp, as a handshake would
// then refuse the token.
const rtLeeway = time.Second

// The connection ends when its token expires, with the same leeway as the
// handshake, with 4403 and no complete for its subscriptions, so that
// graphql-ws clients reconnect with a fresh token.
func TestWebSocketTokenExpiry(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, _ := rtServer(t, b, parleytest.Options{TokenLeeway: rtLeeway})
		for _, p := range rtProtocols {
			t.Run(p.name, func(t *testing.T) {
				tok, err := auth.Mint(s.Secret, "bob", "", 2*time.Second, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				pr, err := auth.NewVerifier(s.Secret).Verify(tok)
				if err != nil {
					t.Fatal(err)
				}
				// The close is timed on the monotonic clock from the dial, as
				// the server's timer is: a step of the wall clock during the
				// test (NTP on a CI machine) must not fail it.
				dialed := time.Now()
				want := pr.ExpiresAt.Add(rtLeeway).Sub(dialed)
				ws := s.Dial(t, "", append([]parleytest.DialOption{parleytest.WithInitPayload(map[string]any{"token": tok})}, p.opts...)...)
				// An open subscription does not keep the connection alive.
				sub := ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
				ready(t, sub)
				code := ws.CloseCode(t, rtWait)
				took := time.Since(dialed)
				if code != server.CloseForbidden {
					t.Fatalf("closed with %d, want %d", code, server.CloseForbidden)
				}
				if took < want || took > want+5*time.Second {
					t.Fatalf("closed %v after the dial; the token (exp %v, leeway %v) ends it %v after", took, pr.ExpiresAt, rtLeeway, want)
				}
				if ev, err := sub.Pending(); err == nil {
					t.Fatalf("the subscription got %v before the close; want nothing (no complete)", ev)
				}
			})
		}
		// A legacy client is told why before the close.
		t.Run("legacy reason", func(t *testing.T) {
			tok, err := auth.Mint(s.Secret, "bob", "", 2*time.Second, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			msgs, code := rtRawSession(t, s, parleytest.ProtocolLegacy, `{"type":"connection_init","payload":{"token":"`+tok+`"}}`)
			if code != server.CloseForbidden {
				t.Fatalf("closed with %d", code)
			}
			if len(msgs) == 0 || !strings.Contains(msgs[len(msgs)-1], `"connection_error"`) || !strings.Contains(msgs[len(msgs)-1], "token expired") || !strings.Contains(msgs[len(msgs)-1], `"code":"UNAUTHENTICATED"`) {
				t.Fatalf("messages before the close: %q", msgs)
			}
		})
	})
}

// A legacy graphql-ws client's bad messages are answered with error
// messages whose payload carries a code, and the connection stays open.
func TestLegacyWebSocketErrorsCarryCodes(t *testing.T) {
	t.Parallel()
	s := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), rtWait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, rtWSURL(s), &websocket.DialOptions{Subprotocols: []string{parleytest.ProtocolLegacy}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	tok, err := auth.Mint(s.Secret, "alice", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	read := func() map[string]any {
		t.Helper()
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatalf("decode %q: %v", data, err)
			}
			if m["type"] != "ka" {
				return m
			}
		}
	}
	write := func(msg string) {
		t.Helper()
		if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"type":"connection_init","payload":{"token":"` + tok + `"}}`)
	if m := read(); m["type"] != "connection_ack" {
		t.Fatalf("got %v, want connection_ack", m)
	}
	cases := []struct{ name, send, id string }{
		{"start without id", `{"type":"start","payload":{"query":"{me{id}}"}}`, ""},
		{"start without query", `{"id":"1","type":"start","payload":{"variables":{}}}`, "1"},
		{"unknown type", `{"id":"2","type":"subscribe"}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.send)
			m := read()
			payload, _ := m["payload"].(map[string]any)
			ext, _ := payload["extensions"].(map[string]any)
			if m["type"] != "error" || ext["code"] != "BAD_REQUEST" || payload["message"] == "" {
				t.Fatalf("got %v, want an error with code BAD_REQUEST", m)
			}
			if id, _ := m["id"].(string); id != tc.id {
				t.Fatalf("error for id %q, want %q", id, tc.id)
			}
		})
	}
	// The connection still serves operations.
	write(`{"id":"3","type":"start","payload":{"query":"{me{identity}}"}}`)
	if m := read(); m["type"] != "data" || m["id"] != "3" {
		t.Fatalf("got %v, want data for 3", m)
	}
}

// rtRawSession sends messages on a raw connection and returns what the
// server sends until it closes, skipping keep-alives, with the close code.
func rtRawSession(t *testing.T, s *parleytest.Server, protocol string, send ...string) ([]string, websocket.StatusCode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rtWait)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, rtWSURL(s), &websocket.DialOptions{Subprotocols: []string{protocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for _, m := range send {
		if err := conn.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("still open after %v; got %q", rtWait, got)
			}
			return got, websocket.CloseStatus(err)
		}
		if m := string(data); !strings.Contains(m, `"ka"`) && !strings.Contains(m, `"ping"`) {
			got = append(got, m)
		}
	}
}

func rtWSURL(s *parleytest.Server) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/graphql"
}

func TestWebSocketOrigin(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		check := func(t *testing.T, s *parleytest.Server, origin string, allowed bool) {
			t.Helper()
			var opts []parleytest.DialOption
			if origin != "" {
				opts = append(opts, parleytest.WithHeader("Origin", origin))
			}
			c, derr := s.TryDial(t, "bob", opts...)
			switch {
			case allowed && derr != nil:
				t.Fatalf("origin %q refused: %v", origin, derr)
			case !allowed && derr == nil:
				c.Close()
				t.Fatalf("origin %q accepted", origin)
			case !allowed && derr.HTTPStatus != http.StatusForbidden:
				t.Fatalf("origin %q refused with %v, want HTTP 403", origin, derr)
			case allowed:
				c.Close()
			}
		}
		t.Run("default", func(t *testing.T) {
			s := parleytest.NewServer(t, b, parleytest.Options{})
			check(t, s, "", true) // not a browser
			check(t, s, s.URL, true)
			check(t, s, "http://localhost:5173", true)
			check(t, s, "http://127.0.0.1:3000", true)
			check(t, s, "https://evil.example", false)
			check(t, s, "http://localhost.evil.example", false)
			check(t, s, "null", false)
		})
		t.Run("allow-list", func(t *testing.T) {
			s := parleytest.NewServer(t, b, parleytest.Options{WebSocket: server.WebSocketOptions{
				AllowedOrigins: []string{"app.example.com", "*.parley.example"},
			}})
			check(t, s, s.URL, true) // its own host, always
			check(t, s, "https://app.example.com", true)
			check(t, s, "https://eu.parley.example", true)
			check(t, s, "http://localhost:5173", false)
			check(t, s, "https://evil.example", false)
		})
	})
}

func TestWebSocketMaxSubscriptions(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{})
		max := server.DefaultWebSocketOptions.MaxSubscriptions
		ws := s.Dial(t, "bob")
		subs := make([]*parleytest.WSSub, max)
		for i := range subs {
			subs[i] = ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
		}
		// gqlgen starts operations concurrently, in no set order: let all
		// of them start (and prove they run) before the one too many.
		subs[max-1].NoEvent(t, time.Second)
		rtRename(t, alice, "Alice")
		for _, sub := range subs {
			rtWantRenamed(t, sub.Next(t, rtWait), "alice", "Alice")
		}
		over := ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
		errs := over.Err(t, rtWait)
		if errs[0].Code() != "RATE_LIMITED" || !strings.Contains(errs[0].Message, fmt.Sprint(max)) {
			t.Fatalf("subscription %d: %+v", max+1, errs)
		}
		over.Complete(t, rtWait)

		// The refusal touched nothing else: every subscription still runs,
		// and another connection has its own allowance.
		other := s.Dial(t, "bob").Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
		ready(t, other)
		rtRename(t, alice, "Alice 1")
		for _, sub := range append(subs, other) {
			rtWantRenamed(t, sub.Next(t, rtWait), "alice", "Alice 1")
		}

		// A subscription that ends frees its place.
		subs[0].Stop()
		subs[0].Complete(t, rtWait)
		again := ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
		ready(t, again)
		rtRename(t, alice, "Alice 2")
		rtWantRenamed(t, again.Next(t, rtWait), "alice", "Alice 2")
		rtWantRenamed(t, subs[max-1].Next(t, rtWait), "alice", "Alice 2")

		// Queries and mutations over the socket are not counted.
		q := ws.Subscribe(`{ me { identity } }`, nil)
		if data := q.Next(t, rtWait); !strings.Contains(string(data), `"bob"`) {
			t.Fatalf("query over the socket: %s", data)
		}
		q.Complete(t, rtWait)
	})
}

func TestWebSocketInitTimeout(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s := parleytest.NewServer(t, b, parleytest.Options{WebSocket: server.WebSocketOptions{InitTimeout: 200 * time.Millisecond}})
		for protocol, want := range map[string]websocket.StatusCode{
			parleytest.ProtocolTransportWS: server.CloseInitTimeout,
			parleytest.ProtocolLegacy:      websocket.StatusProtocolError,
		} {
			start := time.Now()
			_, code := rtRawSession(t, s, protocol)
			if code != want || time.Since(start) > 5*time.Second {
				t.Fatalf("%s: closed with %d after %v, want %d after 200ms", protocol, code, time.Since(start), want)
			}
		}
	})
}

// The server pings graphql-transport-ws clients; the test client answers,
// so its connection lives on; a client that does not answer is dropped.
func TestWebSocketPingPong(t *testing.T) {
	// Not parallel: its client must answer pings sent every 100 ms.
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{WebSocket: server.WebSocketOptions{PingPong: 100 * time.Millisecond}})
		ws := s.Dial(t, "bob")
		sub := ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
		sub.NoEvent(t, time.Second)
		rtRename(t, alice, "Alice")
		rtWantRenamed(t, sub.Next(t, rtWait), "alice", "Alice")

		// A raw client reads (and so sees the pings) but never answers.
		start := time.Now()
		msgs, code := rtRawSession(t, s, parleytest.ProtocolTransportWS, `{"type":"connection_init","payload":{"token":"`+s.Token("bob")+`"}}`)
		if len(msgs) == 0 || !strings.Contains(msgs[0], "connection_ack") {
			t.Fatalf("messages %q", msgs)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("silent client dropped after %v (code %d)", took, code)
		}
		t.Logf("silent client dropped with code %d", code)
	})
}

func TestSSESubscription(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{})
		st := s.SSE(t, "bob", rtUserUpdated, map[string]any{"id": "alice"})
		ready(t, st)
		rtRename(t, alice, "Alice")
		rtWantRenamed(t, st.Next(t, rtWait), "alice", "Alice")
		rtRename(t, alice, "Alice 2")
		rtWantRenamed(t, st.Next(t, rtWait), "alice", "Alice 2")

		anon := s.SSE(t, "", rtUserUpdated, map[string]any{"id": "alice"})
		if errs := anon.Err(t, rtWait); errs[0].Code() != "UNAUTHENTICATED" {
			t.Fatalf("anonymous SSE subscription: %+v", errs)
		}
		anon.Complete(t, rtWait)

		// Queries work over SSE too: one result, then complete.
		q := s.SSE(t, "bob", `{ me { identity } }`, nil)
		if data := q.Next(t, rtWait); !strings.Contains(string(data), `"bob"`) {
			t.Fatalf("query over SSE: %s", data)
		}
		q.Complete(t, rtWait)
	})
}

// An SSE subscription, like a WebSocket connection, ends when the token
// that opened it expires (with the same leeway), and without complete, so
// that graphql-sse clients reconnect with a fresh token instead of taking
// the subscription for finished.
func TestSSETokenExpiry(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, _ := rtServer(t, b, parleytest.Options{TokenLeeway: rtLeeway})
		tok, err := auth.Mint(s.Secret, "bob", "", 2*time.Second, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]any{"query": rtUserUpdated, "variables": map[string]any{"id": "alice"}})
		ctx, cancel := context.WithTimeout(context.Background(), rtWait)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				t.Fatalf("got %q; want the stream to end without events", sc.Text())
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("the stream failed instead of ending: %v", err)
		}
	})
}

// Every subscription event gets fresh loaders: the caller's membership is
// read anew for the second message, after markRead changed it.
func TestRealtimeFreshLoadersPerEvent(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{})
		bob := s.Client("bob")
		var created struct{ CreateChannel struct{ ID string } }
		alice.Do(`mutation($in: CreateChannelInput!) { createChannel(input: $in) { id } }`,
			map[string]any{"in": map[string]any{"type": "PRIVATE", "members": []string{"bob"}}}, &created)
		ch := created.CreateChannel.ID
		sub := s.Dial(t, "bob").Subscribe(`subscription($c: ID) { messageAdded(channelId: $c) {
			index channel { myMembership { lastReadIndex } } } }`, map[string]any{"c": ch})
		ready(t, sub)

		type added struct {
			MessageAdded struct {
				Index   int
				Channel struct{ MyMembership struct{ LastReadIndex *int } }
			}
		}
		send := func(body string) added {
			t.Helper()
			alice.Do(`mutation($c: ID!, $b: String!) { sendMessage(input: {channelId: $c, body: $b}) { id } }`,
				map[string]any{"c": ch, "b": body}, nil)
			var ev added
			data := sub.Next(t, rtWait)
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatalf("decode %s: %v", data, err)
			}
			return ev
		}
		first := send("one")
		before := first.MessageAdded.Channel.MyMembership.LastReadIndex
		bob.Do(`mutation($c: ID!, $i: Int!) { markRead(channelId: $c, index: $i) { lastReadIndex } }`,
			map[string]any{"c": ch, "i": first.MessageAdded.Index}, nil)
		second := send("two")
		got := second.MessageAdded.Channel.MyMembership.LastReadIndex
		if got == nil || *got != first.MessageAdded.Index {
			t.Fatalf("lastReadIndex in the second event = %v (first event: %v), want %d: loaders outlived an event",
				ptrString(got), ptrString(before), first.MessageAdded.Index)
		}
	})
}

func ptrString(p *int) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// rtHooks records RealtimeHooks calls.
type rtHooks struct {
	mu   sync.Mutex
	log  []string
	fail bool
}

func (h *rtHooks) record(s string) {
	h.mu.Lock()
	h.log = append(h.log, s)
	h.mu.Unlock()
}

func (h *rtHooks) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

func (h *rtHooks) Connected(ctx context.Context) error {
	p, ok := auth.FromContext(ctx)
	h.record(fmt.Sprintf("connected %s %v", p.Identity, ok))
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail {
		return errors.New("presence store down")
	}
	return nil
}

func (h *rtHooks) Disconnected(ctx context.Context) {
	p, ok := auth.FromContext(ctx)
	h.record(fmt.Sprintf("disconnected %s %v ctx.Err=%v", p.Identity, ok, ctx.Err()))
}

// waitFor polls the hooks' log until it has n entries.
func (h *rtHooks) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(rtWait)
	for time.Now().Before(deadline) {
		if got := h.events(); len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("hooks: %q, want %d entries", h.events(), n)
	return nil
}

func TestRealtimeHooks(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		hooks := &rtHooks{}
		s := parleytest.NewServer(t, b, parleytest.Options{Realtime: hooks, TokenLeeway: rtLeeway})

		ws := s.Dial(t, "alice")
		if got := hooks.events(); len(got) != 1 || got[0] != "connected alice true" {
			t.Fatalf("after dial: %q", got)
		}
		ws.Close()
		if got := hooks.waitFor(t, 2); got[1] != "disconnected alice true ctx.Err=<nil>" {
			t.Fatalf("after close: %q", got)
		}

		// Refused connections call nothing.
		if _, derr := s.TryDial(t, ""); derr == nil {
			t.Fatal("anonymous connection acknowledged")
		}

		// A failing Connected is logged; the connection goes on and is
		// still reported when it ends, here by token expiry.
		hooks.mu.Lock()
		hooks.fail = true
		hooks.mu.Unlock()
		tok, err := auth.Mint(s.Secret, "bob", "", time.Second, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ws = s.Dial(t, "", parleytest.WithInitPayload(map[string]any{"token": tok}))
		ws.CloseCode(t, rtWait)
		got := hooks.waitFor(t, 4)
		if got[2] != "connected bob true" || got[3] != "disconnected bob true ctx.Err=<nil>" {
			t.Fatalf("hooks: %q", got)
		}
	})
}
