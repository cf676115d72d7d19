package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// These tests hold the graphql-transport-ws protocol case by case, as a
// client speaking it frame by frame sees it.

// rawConn is a WebSocket speaking raw frames to a test server.
type rawConn struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
}

// dialRaw opens a WebSocket with the given subprotocol, closed with the
// test.
func dialRaw(t *testing.T, s *parleytest.Server, protocol string) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rtWait)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, rtWSURL(s), &websocket.DialOptions{Subprotocols: []string{protocol}})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { conn.CloseNow() })
	return &rawConn{t: t, conn: conn, ctx: ctx}
}

// send writes a text message.
func (c *rawConn) send(msg string) {
	c.t.Helper()
	if err := c.conn.Write(c.ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("write %s: %v", msg, err)
	}
}

// init sends connection_init with a token of identity and waits for the
// acknowledgement.
func (c *rawConn) init(s *parleytest.Server, identity string) {
	c.t.Helper()
	c.send(`{"type":"connection_init","payload":{"authorization":"Bearer ` + s.Token(identity) + `"}}`)
	if m := c.next(); m.Type != "connection_ack" {
		c.t.Fatalf("got %+v, want connection_ack", m)
	}
}

// rawMessage is a message from the server.
type rawMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// next reads the next message, skipping pings, failing on a close.
func (c *rawConn) next() rawMessage {
	c.t.Helper()
	for {
		typ, data, err := c.conn.Read(c.ctx)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if typ != websocket.MessageText {
			c.t.Fatalf("got a binary message %q", data)
		}
		var m rawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			c.t.Fatalf("decode %q: %v", data, err)
		}
		if m.Type != "ping" && m.Type != "ka" {
			return m
		}
	}
}

// closed reads until the server closes the connection and returns the
// close code and reason; -1 when it ended without a close frame.
func (c *rawConn) closed() (websocket.StatusCode, string) {
	c.t.Helper()
	for {
		_, data, err := c.conn.Read(c.ctx)
		if err != nil {
			if c.ctx.Err() != nil {
				c.t.Fatalf("still open after %v", rtWait)
			}
			if ce, ok := errors.AsType[websocket.CloseError](err); ok {
				return ce.Code, ce.Reason
			}
			return -1, err.Error()
		}
		var m rawMessage
		if json.Unmarshal(data, &m) == nil && m.Type != "ping" && m.Type != "ka" {
			c.t.Logf("before the close: %s", data)
		}
	}
}

func TestTransportWSProtocol(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, alice := rtServer(t, b, parleytest.Options{})
		sub := `{"id":"1","type":"subscribe","payload":{"query":"subscription { userUpdated(identity: \"alice\") { reasons } }"}}`
		closes := []struct {
			name   string
			init   bool
			send   []string
			binary bool
			code   websocket.StatusCode
			reason string
		}{
			{"second connection_init", true, []string{`{"type":"connection_init"}`}, false, server.CloseTooManyInits, "Too many initialisation requests"},
			{"subscribe before ack", false, []string{sub}, false, server.CloseUnauthorized, "Unauthorized"},
			{"duplicate active id", true, []string{sub, sub}, false, server.CloseSubscriberExists, "Subscriber for 1 already exists"},
			{"missing id", true, []string{`{"type":"subscribe","payload":{"query":"{ me { id } }"}}`}, false, server.CloseBadMessage, ""},
			{"empty id", true, []string{`{"id":"","type":"subscribe","payload":{"query":"{ me { id } }"}}`}, false, server.CloseBadMessage, ""},
			{"id not a string", true, []string{`{"id":1,"type":"subscribe","payload":{"query":"{ me { id } }"}}`}, false, server.CloseBadMessage, ""},
			{"subscribe without a query", true, []string{`{"id":"1","type":"subscribe","payload":{}}`}, false, server.CloseBadMessage, ""},
			{"complete without an id", true, []string{`{"type":"complete"}`}, false, server.CloseBadMessage, ""},
			{"malformed JSON", true, []string{`{"type":`}, false, server.CloseBadMessage, ""},
			{"malformed JSON before init", false, []string{`nope`}, false, server.CloseBadMessage, ""},
			{"unknown type", true, []string{`{"type":"start","id":"1"}`}, false, server.CloseBadMessage, ""},
			{"binary frame", true, nil, true, server.CloseBadMessage, ""},
		}
		for _, tc := range closes {
			t.Run(tc.name, func(t *testing.T) {
				c := dialRaw(t, s, parleytest.ProtocolTransportWS)
				if tc.init {
					c.init(s, "bob")
				}
				for _, m := range tc.send {
					c.send(m)
				}
				if tc.binary {
					if err := c.conn.Write(c.ctx, websocket.MessageBinary, []byte(`{"type":"ping"}`)); err != nil {
						t.Fatal(err)
					}
				}
				code, reason := c.closed()
				if code != tc.code || (tc.reason != "" && reason != tc.reason) {
					t.Fatalf("closed with %d %q, want %d %q", code, reason, tc.code, tc.reason)
				}
			})
		}

		t.Run("ping pong", func(t *testing.T) {
			c := dialRaw(t, s, parleytest.ProtocolTransportWS)
			c.init(s, "bob")
			c.send(`{"type":"ping","payload":{"n":1}}`)
			if m := c.next(); m.Type != "pong" || string(m.Payload) != `{"n":1}` {
				t.Fatalf("got %+v, want a pong echoing the payload", m)
			}
			// A pong the server did not ask for is fine.
			c.send(`{"type":"pong"}`)
			c.send(`{"type":"ping"}`)
			if m := c.next(); m.Type != "pong" {
				t.Fatalf("got %+v, want pong", m)
			}
		})

		t.Run("complete stops the operation", func(t *testing.T) {
			ws := s.Dial(t, "bob")
			stopped := ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
			kept := ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"})
			ready(t, ws)
			stopped.Stop()
			stopped.Complete(t, rtWait)
			rtRename(t, alice, "After stop")
			rtWantRenamed(t, kept.Next(t, rtWait), "alice", "After stop")
			stopped.NoEvent(t, quiet)
		})

		t.Run("queries and mutations", func(t *testing.T) {
			ws := s.Dial(t, "bob")
			q := ws.Subscribe(`{ me { identity } }`, nil)
			if data := q.Next(t, rtWait); string(data) != `{"me":{"identity":"bob"}}` {
				t.Fatalf("query: %s", data)
			}
			q.Complete(t, rtWait)
			m := ws.Subscribe(`mutation { updateMe(input: {friendlyName: "Bob"}) { friendlyName } }`, nil)
			if data := m.Next(t, rtWait); string(data) != `{"updateMe":{"friendlyName":"Bob"}}` {
				t.Fatalf("mutation: %s", data)
			}
			m.Complete(t, rtWait)
		})

		t.Run("ids with control characters come back as JSON", func(t *testing.T) {
			c := dialRaw(t, s, parleytest.ProtocolTransportWS)
			c.init(s, "bob")
			id := "a\x00\a\"\\\u00e9\U0001F600"
			quoted, err := json.Marshal(id)
			if err != nil {
				t.Fatal(err)
			}
			c.send(`{"id":` + string(quoted) + `,"type":"subscribe","payload":{"query":"{ me { identity } }"}}`)
			for _, want := range []string{"next", "complete"} {
				if m := c.next(); m.Type != want || m.ID != id {
					t.Fatalf("got %+v, want %s with id %q", m, want, id)
				}
			}
		})

		t.Run("validation errors", func(t *testing.T) {
			c := dialRaw(t, s, parleytest.ProtocolTransportWS)
			c.init(s, "bob")
			c.send(`{"id":"v","type":"subscribe","payload":{"query":"subscription { noSuchField }"}}`)
			m := c.next()
			var errs []parleytest.Error
			if err := json.Unmarshal(m.Payload, &errs); m.Type != "error" || m.ID != "v" || err != nil || len(errs) == 0 || errs[0].Code() != "GRAPHQL_VALIDATION_FAILED" {
				t.Fatalf("got %+v, want an error message with GRAPHQL_VALIDATION_FAILED", m)
			}
			// The id is free again, and the connection goes on.
			c.send(`{"id":"v","type":"subscribe","payload":{"query":"{ me { identity } }"}}`)
			if m := c.next(); m.Type != "next" || m.ID != "v" {
				t.Fatalf("got %+v, want next", m)
			}
			if m := c.next(); m.Type != "complete" || m.ID != "v" {
				t.Fatalf("got %+v, want complete", m)
			}
		})
	})
}

// A subscription over plain HTTP is refused with 400 and a coded error
// naming the transports to use.
func TestSubscriptionOverPlainHTTP(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, _ := rtServer(t, b, parleytest.Options{})
		for _, method := range []string{http.MethodPost, http.MethodGet} {
			ctx, cancel := context.WithTimeout(context.Background(), rtWait)
			var req *http.Request
			var err error
			if method == http.MethodPost {
				body := `{"query":"subscription { userUpdated(identity: \"alice\") { reasons } }"}`
				req, err = http.NewRequestWithContext(ctx, method, s.URL+"/graphql", bytes.NewReader([]byte(body)))
				req.Header.Set("Content-Type", "application/json")
			} else {
				req, err = http.NewRequestWithContext(ctx, method, s.URL+`/graphql?query=subscription+%7B+userUpdated(identity:+"alice")+%7B+reasons+%7D+%7D`, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+s.Token("bob"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			var r parleytest.Response
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatalf("%s: decode %s: %v", method, data, err)
			}
			if resp.StatusCode != http.StatusBadRequest || r.Code() != "BAD_REQUEST" ||
				!strings.Contains(r.Errors[0].Message, "graphql-transport-ws") || !strings.Contains(r.Errors[0].Message, "text/event-stream") {
				t.Fatalf("%s: HTTP %d %s, want 400 BAD_REQUEST naming the transports", method, resp.StatusCode, data)
			}
		}
	})
}

// Shutdown closes every WebSocket with 1012 (service restart) and ends
// every event stream, with no complete for their subscriptions, so that
// clients reconnect to another node and resume.
func TestShutdownClosesRealtime(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		s, _ := rtServer(t, b, parleytest.Options{})
		var subs []*parleytest.WSSub
		var conns []*parleytest.WSConn
		for _, p := range rtProtocols {
			ws := s.Dial(t, "bob", p.opts...)
			conns = append(conns, ws)
			subs = append(subs, ws.Subscribe(rtUserUpdated, map[string]any{"id": "alice"}))
			ready(t, ws)
		}
		st := s.SSE(t, "bob", rtUserUpdated, map[string]any{"id": "alice"})
		ready(t, st)

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		t.Logf("shutdown took %v", time.Since(start))
		for i, ws := range conns {
			if code := ws.CloseCode(t, rtWait); code != server.CloseServiceRestart {
				t.Errorf("%s: closed with %d, want %d", rtProtocols[i].name, code, server.CloseServiceRestart)
			}
			if ev, err := subs[i].Pending(); err == nil {
				t.Errorf("%s: the subscription got %v before the close; want nothing", rtProtocols[i].name, ev)
			}
		}
		if _, err := st.Wait(rtWait); err == nil || !strings.Contains(err.Error(), "event stream ended") {
			t.Fatalf("event stream: %v, want it ended without complete", err)
		}
	})
}

// A client that stops reading stalls the server's writes to it; the
// connection is closed once a write has stalled for WriteTimeout, and the
// others go on.
func TestWriteTimeout(t *testing.T) {
	// Not parallel: its 300 ms write deadline must only ever catch the stalled client.
	b := parleytest.Backends()[0]
	const bodySize = 400_000
	messages := stallingMessages(t, bodySize)
	srv := parleytest.NewServer(t, b, parleytest.Options{
		ChatLimits: chat.Limits{MaxBodyBytes: 1 << 20},
		WebSocket:  server.WebSocketOptions{WriteTimeout: 300 * time.Millisecond, QueueLength: 10_000},
	})
	alice := srv.Client("alice")
	ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob", "carol"}})
	fast := srv.Dial(t, "carol").Subscribe(messageAddedSub, map[string]any{"c": ch})
	stalled := srv.Dial(t, "bob", parleytest.WithPausedReading())
	stalled.Subscribe(messageAddedSub, map[string]any{"c": ch})
	ready(t, fast, stalled)
	body := strings.Repeat("x", bodySize)
	for i := range messages {
		mustSend(t, alice, ch, body)
		if ev := nextAdded(t, fast); ev.MessageAdded.Index != i {
			t.Fatalf("fast subscriber: message %d is index %d", i, ev.MessageAdded.Index)
		}
	}
	// The stalled connection is gone: resuming finds it closed.
	stalled.Resume()
	code := stalled.CloseCode(t, rtWait)
	t.Logf("the stalled connection ended with %d", code)
}
