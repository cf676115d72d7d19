package parleytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// readEvents parses an event stream until it ends, calling comment with
// the text of each comment line (trimmed) and event with each event's
// name and data. It returns why the stream ended: io.EOF when the server
// ended it.
func readEvents(body io.ReadCloser, comment func(string), event func(name, data string)) error {
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var name string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if name != "" {
				event(name, strings.Join(data, "\n"))
			}
			name, data = "", nil
		case strings.HasPrefix(line, ":"):
			comment(strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// openEventStream sends a request with Accept: text/event-stream and
// header, and returns the event stream it answers and what ends the
// request; any other answer fails the test.
func openEventStream(t testing.TB, method, u string, body []byte, header http.Header) (io.ReadCloser, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header = header
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("event stream request: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("event stream response: HTTP %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp.Body, cancel
}

// SSEConn is an event stream in graphql-sse's single connection mode:
// reserved with PUT, opened with GET, and carrying the results of the
// operations posted with its token. Safe for concurrent use.
type SSEConn struct {
	// Token names the stream.
	Token    string
	s        *Server
	identity string
	done     chan struct{} // closed when the stream has ended
	readErr  error         // valid once done is closed

	mu     sync.Mutex
	cancel context.CancelFunc // ends the GET; nil until Open
	ops    map[string]*SSEOp
	stray  []string // events for no operation posted
}

// SSEOp is one operation of an SSEConn: its results, then complete.
type SSEOp struct {
	// ID is its operationId.
	ID string
	*stream
}

// ReserveSSE reserves a single-connection event stream as identity (a
// PUT to /graphql); a status other than 201 fails the test. The stream
// is closed when the test ends.
func (s *Server) ReserveSSE(t testing.TB, identity string) *SSEConn {
	t.Helper()
	status, body := s.SSERequest(t, http.MethodPut, "", identity, nil, nil)
	if status != http.StatusCreated || len(body) == 0 {
		t.Fatalf("reserve an event stream: HTTP %d %s", status, body)
	}
	c := &SSEConn{Token: string(body), s: s, identity: identity, done: make(chan struct{}), ops: map[string]*SSEOp{}}
	t.Cleanup(c.Close)
	return c
}

// SSERequest sends one request to /graphql as identity ("" is anonymous)
// with the stream token (unless empty), the URL parameters query and a
// JSON body (unless nil), and returns the status and the body. A GET asks
// for an event stream, and one that opens fails the test: it is for the
// refusals (Open opens streams).
func (s *Server) SSERequest(t testing.TB, method, token, identity string, query url.Values, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(mustMarshal(t, body))
	}
	u := s.URL + "/graphql"
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == http.MethodGet {
		req.Header.Set("Accept", "text/event-stream")
	}
	if token != "" {
		req.Header.Set("X-GraphQL-Event-Stream-Token", token)
	}
	if identity != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token(identity))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s /graphql: %v", method, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%s /graphql opened an event stream", method)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s /graphql: %v", method, err)
	}
	return resp.StatusCode, b
}

// Open opens the reserved stream with GET, the token in the URL (as
// EventSource sends it) and no Authorization, and waits until the server
// says it is open; a status other than 200 fails the test.
func (c *SSEConn) Open(t testing.TB) {
	t.Helper()
	body, cancel := openEventStream(t, http.MethodGet, c.s.URL+"/graphql?token="+url.QueryEscape(c.Token), nil, http.Header{})
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	open := make(chan struct{})
	go c.read(body, open)
	select {
	case <-open:
	case <-c.done:
		t.Fatalf("event stream ended before it was open: %v", c.readErr)
	case <-time.After(dialWait):
		t.Fatalf("event stream not open within %v", dialWait)
	}
}

// read routes the stream's events to their operations until it ends.
func (c *SSEConn) read(body io.ReadCloser, open chan struct{}) {
	defer close(c.done)
	opened := false
	c.readErr = readEvents(body, func(comment string) {
		if comment == "open" && !opened {
			opened = true
			close(open)
		}
	}, func(name, data string) {
		var msg struct {
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		err := json.Unmarshal([]byte(data), &msg)
		c.mu.Lock()
		op := c.ops[msg.ID]
		if err != nil || op == nil {
			c.stray = append(c.stray, name+" "+data)
		}
		c.mu.Unlock()
		switch {
		case op == nil:
		case name == "next":
			op.push(decodeResult(msg.Payload))
		case name == "complete":
			op.push(event{kind: "complete"})
		default:
			op.push(event{kind: "error", errors: []Error{{Message: "unknown event " + name}}})
		}
	})
}

// Post runs an operation on the stream as the identity that reserved it:
// a POST with the token and extensions.operationId id. A status other
// than 202 fails the test. Once it returns, a subscription is registered.
func (c *SSEConn) Post(t testing.TB, id, query string, vars map[string]any) *SSEOp {
	t.Helper()
	op := &SSEOp{ID: id, stream: newStream(c.done, func() error { return fmt.Errorf("event stream ended: %v", c.readErr) })}
	c.mu.Lock()
	c.ops[id] = op
	c.mu.Unlock()
	body := map[string]any{"query": query, "variables": vars, "extensions": map[string]any{"operationId": id}}
	if status, b := c.s.SSERequest(t, http.MethodPost, c.Token, c.identity, nil, body); status != http.StatusAccepted {
		t.Fatalf("post operation %s: HTTP %d %s", id, status, b)
	}
	return op
}

// Stop stops operation id with DELETE; a status other than 200 fails the
// test.
func (c *SSEConn) Stop(t testing.TB, id string) {
	t.Helper()
	if status, b := c.s.SSERequest(t, http.MethodDelete, c.Token, c.identity, url.Values{"operationId": {id}}, nil); status != http.StatusOK {
		t.Fatalf("stop operation %s: HTTP %d %s", id, status, b)
	}
}

// Ended waits until the server ends the stream and returns why; nothing
// within timeout fails the test.
func (c *SSEConn) Ended(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.readErr
	case <-time.After(timeout):
		t.Fatalf("event stream still open after %v", timeout)
		return nil
	}
}

// Stray returns the events that named no operation posted.
func (c *SSEConn) Stray() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.stray...)
}

// Close ends the GET request, if open. Closing twice does nothing.
func (c *SSEConn) Close() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-c.done
	}
}
