package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestURLs(t *testing.T) {
	cases := []struct {
		in, gql, ws string
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/graphql", "ws://127.0.0.1:8080/graphql"},
		{"127.0.0.1:8080", "http://127.0.0.1:8080/graphql", "ws://127.0.0.1:8080/graphql"},
		{"https://h.example/api/graphql", "https://h.example/api/graphql", "wss://h.example/api/graphql"},
		{"ws://localhost:9/", "http://localhost:9/graphql", "ws://localhost:9/graphql"},
	}
	for _, c := range cases {
		gql, err := GraphQLURL(c.in)
		if err != nil || gql != c.gql {
			t.Errorf("GraphQLURL(%q) = %q, %v; want %q", c.in, gql, err, c.gql)
		}
		ws, err := WebSocketURL(c.in)
		if err != nil || ws != c.ws {
			t.Errorf("WebSocketURL(%q) = %q, %v; want %q", c.in, ws, err, c.ws)
		}
	}
	for _, bad := range []string{"ftp://x", "http://"} {
		if _, err := GraphQLURL(bad); err == nil {
			t.Errorf("GraphQLURL(%q) succeeded", bad)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	ctx := context.Background()
	for url, want := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://localhost:1": true, "http://[::1]:80": true,
		"http://127.5.0.1": true, "http://192.0.2.1:8080": false, "http://[2001:db8::1]": false,
	} {
		got, err := IsLoopback(ctx, url)
		if err != nil || got != want {
			t.Errorf("IsLoopback(%q) = %v, %v; want %v", url, got, err, want)
		}
	}
}

func TestGraphQLDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch {
		case r.Header.Get("Authorization") != "Bearer tok":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"message":"token expired","extensions":{"code":"UNAUTHENTICATED"}}]}`))
		case req.Query == "broken":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream down"))
		default:
			_, _ = w.Write([]byte(`{"data":{"echo":"` + req.Variables["v"].(string) + `"}}`))
		}
	}))
	defer srv.Close()
	c := NewGraphQL(srv.URL, nil)
	ctx := context.Background()
	var out struct{ Echo string }
	if err := c.Do(ctx, "tok", "q", map[string]any{"v": "hi"}, &out); err != nil || out.Echo != "hi" {
		t.Fatalf("Do = %v, %+v", err, out)
	}
	err := c.Do(ctx, "bad", "q", map[string]any{"v": "hi"}, nil)
	if !IsCode(err, "UNAUTHENTICATED") || !strings.Contains(err.Error(), "token expired") {
		t.Fatalf("unauthenticated: %v", err)
	}
	var herr *HTTPError
	if err := c.Do(ctx, "tok", "broken", nil, nil); !errors.As(err, &herr) || herr.Status != http.StatusBadGateway {
		t.Fatalf("broken: %v", err)
	}
}

// fakeServer speaks just enough graphql-transport-ws: it checks the
// token, pings the client and expects a pong, then answers a subscribe
// with two results and a complete.
func fakeServer(t *testing.T, pongs chan<- struct{}) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{ProtocolTransportWS}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		read := func() frame {
			_, data, err := c.Read(ctx)
			if err != nil {
				return frame{Type: "closed"}
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				t.Errorf("server: decode %q: %v", data, err)
			}
			return f
		}
		write := func(s string) {
			if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
				t.Errorf("server write: %v", err)
			}
		}
		init := read()
		var p map[string]string
		if err := json.Unmarshal(init.Payload, &p); err != nil || p["authorization"] != "Bearer good" {
			_ = c.Close(4403, "Forbidden")
			return
		}
		write(`{"type":"ping"}`) // before the ack: the client must pong too
		write(`{"type":"connection_ack"}`)
		for {
			f := read()
			switch f.Type {
			case "pong":
				pongs <- struct{}{}
			case "subscribe":
				write(`{"type":"ping"}`)
				write(`{"id":"` + f.ID + `","type":"next","payload":{"data":{"n":1}}}`)
				write(`{"id":"` + f.ID + `","type":"next","payload":{"data":null,"errors":[{"message":"boom"}]}}`)
				write(`{"id":"` + f.ID + `","type":"complete"}`)
			case "closed":
				return
			}
		}
	}))
}

func TestWebSocket(t *testing.T) {
	pongs := make(chan struct{}, 10)
	srv := fakeServer(t, pongs)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	_, err := Dial(ctx, url, DialOptions{Token: "bad"})
	var derr *DialError
	if !errors.As(err, &derr) || derr.Code != 4403 {
		t.Fatalf("bad token: %v", err)
	}

	c, err := Dial(ctx, url, DialOptions{Token: "good"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []Event
	done := make(chan struct{})
	if _, err := c.Subscribe(ctx, "subscription { n }", nil, func(ev Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		if ev.Kind == Complete {
			close(done)
		}
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("no complete")
	}
	for range 2 {
		select {
		case <-pongs:
		case <-ctx.Done():
			t.Fatal("the client did not answer both pings")
		}
	}
	mu.Lock()
	if len(events) != 3 || events[0].Kind != Next || string(events[0].Data) != `{"n":1}` || events[0].At == 0 ||
		len(events[1].Errors) != 1 || events[1].Errors[0].Message != "boom" || events[2].Kind != Complete {
		t.Fatalf("events = %+v", events)
	}
	mu.Unlock()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.Err() != nil {
		t.Fatalf("Err after Close = %v", c.Err())
	}
}

// TestSplitNext: the reader's fast path takes exactly Parley's next
// messages and leaves everything else to the full decode.
func TestSplitNext(t *testing.T) {
	for _, tc := range []struct {
		in, id, payload string
		ok              bool
	}{
		{`{"id":"7","type":"next","payload":{"data":{"a":1}}}`, "7", `{"data":{"a":1}}`, true},
		{`{"id":"7","type":"complete"}`, "", "", false},
		{`{"type":"next","id":"7","payload":{}}`, "", "", false},
		{`{"id":"a\"b","type":"next","payload":{}}`, "", "", false},
		{`{"id":"7","type":"next","payload":}`, "", "", false},
		{`{"id":"7`, "", "", false},
	} {
		id, payload, ok := splitNext([]byte(tc.in))
		if ok != tc.ok || id != tc.id || string(payload) != tc.payload {
			t.Errorf("splitNext(%s) = %q, %s, %v; want %q, %s, %v", tc.in, id, payload, ok, tc.id, tc.payload, tc.ok)
		}
	}
}
