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

	"gorm.io/gorm"

	"github.com/parleychat/parley/parleytest"
)

// marker is in every bad request body; no answer may repeat it.
const marker = "MARKER-7d1f"

// rawResponse is an answer read as it came.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	errors []parleytest.Error
}

func (r rawResponse) code() string {
	if len(r.errors) == 0 {
		return ""
	}
	return r.errors[0].Code()
}

// do sends req and decodes the answer, which must be GraphQL-shaped JSON.
func do(t *testing.T, req *http.Request) rawResponse {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := rawResponse{status: resp.StatusCode, header: resp.Header, body: body}
	var decoded struct{ Errors []parleytest.Error }
	if err := json.Unmarshal(body, &decoded); err != nil {
		t.Fatalf("%s %s: answer is not JSON (status %d): %.200s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	r.errors = decoded.Errors
	return r
}

func newRequest(t *testing.T, method, url, contentType, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// TestBadHTTPRequests: every request that is not a GraphQL request gets a
// GraphQL-shaped answer with a code and the right status, that never
// repeats the request, and changes nothing.
func TestBadHTTPRequests(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	alice := srv.Client("alice")
	gql := srv.URL + "/graphql"
	create := `mutation { createChannel(input: {type: PUBLIC, uniqueName: "` + marker + `"}) { id } }`
	valid, err := json.Marshal(map[string]any{"query": create})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat(marker+" ", 40_000) // 480 KB
	for _, c := range []struct {
		name                       string
		method, url, ctype, body   string
		accept                     string
		status                     int
		code, message, allowHeader string
	}{
		{name: "not JSON", method: "POST", ctype: "application/json", body: marker, status: 400, code: "BAD_REQUEST", message: "JSON object"},
		{name: "cut short", method: "POST", ctype: "application/json", body: string(valid[:len(valid)-3]), status: 400, code: "BAD_REQUEST", message: "not valid JSON"},
		{name: "large garbage", method: "POST", ctype: "application/json", body: "{" + big, status: 400, code: "BAD_REQUEST"},
		{name: "empty", method: "POST", ctype: "application/json", body: "", status: 400, code: "BAD_REQUEST", message: "empty"},
		{name: "batch", method: "POST", ctype: "application/json", body: "[" + string(valid) + "," + string(valid) + "]", status: 400, code: "BAD_REQUEST", message: "batching is not supported"},
		{name: "a string", method: "POST", ctype: "application/json", body: `"` + marker + `"`, status: 400, code: "BAD_REQUEST", message: "JSON object"},
		{name: "variables a list", method: "POST", ctype: "application/json", body: `{"query": "{ me { id } }", "variables": [1, 2]}`, status: 400, code: "BAD_REQUEST", message: "variables must be a JSON object"},
		{name: "variables a string", method: "POST", ctype: "application/json", body: `{"query": "{ me { id } }", "variables": "` + marker + `"}`, status: 400, code: "BAD_REQUEST", message: "variables must be a JSON object"},
		{name: "query a number", method: "POST", ctype: "application/json", body: `{"query": 7}`, status: 400, code: "BAD_REQUEST", message: "query must be a string"},
		{name: "operationName an object", method: "POST", ctype: "application/json", body: `{"query": "{ me { id } }", "operationName": {}}`, status: 400, code: "BAD_REQUEST", message: "operationName must be a string"},
		{name: "extensions a list", method: "POST", ctype: "application/json", body: `{"query": "{ me { id } }", "extensions": []}`, status: 400, code: "BAD_REQUEST", message: "extensions must be a JSON object"},
		{name: "trailing value", method: "POST", ctype: "application/json", body: string(valid) + ` {"x": 1}`, status: 400, code: "BAD_REQUEST", message: "more than one JSON value"},
		{name: "text/plain", method: "POST", ctype: "text/plain", body: string(valid), status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "no content type", method: "POST", body: string(valid), status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "application/graphql", method: "POST", ctype: "application/graphql", body: create, status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "form", method: "POST", ctype: "application/x-www-form-urlencoded", body: "query=" + url.QueryEscape(create), status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "bad content type", method: "POST", ctype: "application/json; charset", body: string(valid), status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "DELETE without a stream token", method: "DELETE", status: 400, code: "BAD_REQUEST", message: "X-GraphQL-Event-Stream-Token"},
		{name: "DELETE unknown stream", method: "DELETE", url: gql + "?token=" + marker + "&operationId=1", status: 404, code: "NOT_FOUND"},
		{name: "POST unknown stream", method: "POST", url: gql + "?token=" + marker, ctype: "application/json", body: string(valid), status: 404, code: "NOT_FOUND"},
		{name: "PATCH", method: "PATCH", ctype: "application/json", body: string(valid), status: 405, code: "METHOD_NOT_ALLOWED", allowHeader: "GET, POST, PUT, DELETE, OPTIONS"},
		{name: "GET variables a list", method: "GET", url: gql + "?query=" + url.QueryEscape("{ me { id } }") + "&variables=" + url.QueryEscape("[1]"), status: 400, code: "BAD_REQUEST", message: "variables must be a JSON object"},
		{name: "GET variables not JSON", method: "GET", url: gql + "?query=" + url.QueryEscape("{ me { id } }") + "&variables=" + marker, status: 400, code: "BAD_REQUEST"},
		{name: "GET extensions not JSON", method: "GET", url: gql + "?query=" + url.QueryEscape("{ me { id } }") + "&extensions=" + marker, status: 400, code: "BAD_REQUEST"},
		{name: "GET bad query string", method: "GET", url: gql + "?query=%zz" + marker, status: 400, code: "BAD_REQUEST"},
		{name: "GET mutation", method: "GET", url: gql + "?query=" + url.QueryEscape(create), status: 405, code: "METHOD_NOT_ALLOWED", message: "GET", allowHeader: "POST"},
		{name: "SSE not JSON", method: "POST", ctype: "application/json", accept: "text/event-stream", body: marker, status: 400, code: "BAD_REQUEST"},
		{name: "SSE batch", method: "POST", ctype: "application/json", accept: "text/event-stream", body: "[" + string(valid) + "]", status: 400, code: "BAD_REQUEST", message: "batching"},
		{name: "unknown path", method: "GET", url: srv.URL + "/" + marker, status: 404, code: "NOT_FOUND"},
		{name: "unknown asset", method: "GET", url: srv.URL + "/playground/assets/" + marker + ".js", status: 404, code: "NOT_FOUND"},
		{name: "POST to the playground", method: "POST", url: srv.URL + "/", ctype: "application/json", body: string(valid), status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "POST to healthz", method: "POST", url: srv.URL + "/healthz", status: 405, code: "METHOD_NOT_ALLOWED"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := c.url
			if u == "" {
				u = gql
			}
			req := newRequest(t, c.method, u, c.ctype, c.body)
			req.Header.Set("Authorization", alice.Authorization)
			if c.accept != "" {
				req.Header.Set("Accept", c.accept)
			}
			r := do(t, req)
			if r.status != c.status {
				t.Errorf("status %d, want %d", r.status, c.status)
			}
			if len(r.errors) != 1 || r.code() != c.code {
				t.Fatalf("errors %+v, want one %s", r.errors, c.code)
			}
			if !strings.Contains(r.errors[0].Message, c.message) {
				t.Errorf("message %q does not mention %q", r.errors[0].Message, c.message)
			}
			if strings.Contains(string(r.body), marker) {
				t.Errorf("the answer repeats the request: %.300s", r.body)
			}
			if len(r.body) > 1000 {
				t.Errorf("an answer of %d bytes", len(r.body))
			}
			if c.allowHeader != "" && r.header.Get("Allow") != c.allowHeader {
				t.Errorf("Allow %q, want %q", r.header.Get("Allow"), c.allowHeader)
			}
		})
	}
	var n int64
	if err := srv.Store.DB(t.Context()).Table("channels").Count(&n).Error; err != nil || n != 0 {
		t.Errorf("bad requests created %d channels (%v)", n, err)
	}
	// The same mutation, sent properly, runs.
	r := do(t, func() *http.Request {
		req := newRequest(t, "POST", gql, "application/json", string(valid))
		req.Header.Set("Authorization", alice.Authorization)
		return req
	}())
	if r.status != 200 || len(r.errors) != 0 {
		t.Fatalf("a proper request: %d %s", r.status, r.body)
	}
}

// TestResponseMediaType: a client that asks for
// application/graphql-response+json gets it, with 400 for a document
// refused before execution; application/json clients get 422, as before.
func TestResponseMediaType(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	alice := srv.Client("alice")
	for _, c := range []struct {
		accept, media string
		invalid       int
	}{
		{"", "application/json", 422},
		{"application/json", "application/json", 422},
		{"*/*", "application/json", 422},
		{"application/graphql-response+json, application/json;q=0.9", "application/graphql-response+json", 400},
	} {
		for query, status := range map[string]int{`{ me { identity } }`: 200, `{ me { nope } }`: c.invalid} {
			body, _ := json.Marshal(map[string]any{"query": query})
			req := newRequest(t, "POST", srv.URL+"/graphql", "application/json", string(body))
			req.Header.Set("Authorization", alice.Authorization)
			if c.accept != "" {
				req.Header.Set("Accept", c.accept)
			}
			r := do(t, req)
			if r.status != status || r.header.Get("Content-Type") != c.media {
				t.Errorf("Accept %q, %s: status %d %q, want %d %q", c.accept, query, r.status, r.header.Get("Content-Type"), status, c.media)
			}
		}
	}
}

// TestRequestTimeout: an operation still running when the request's
// timeout passes is stopped with TIMEOUT, and writes nothing.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "friendlyName": "before"})
		// A second server on the same database stops requests after 200ms.
		hasty := parleytest.NewServer(t, b, parleytest.Options{DatabaseURL: srv.DatabaseURL, RequestTimeout: 200 * time.Millisecond})

		// A transaction of the test's, in the hasty server's store, holds
		// the channel's row (and, on SQLite, the store's writer lock) until
		// the answer has come.
		locked, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- hasty.Store.Write(context.Background(), func(tx *gorm.DB) error {
				if err := tx.Exec("UPDATE channels SET friendly_name = friendly_name WHERE id = ?", ch).Error; err != nil {
					return err
				}
				close(locked)
				<-release
				return nil
			})
		}()
		<-locked
		r := hasty.Client("alice").Post(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "after"}) { friendlyName } }`, map[string]any{"c": ch})
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		limitErr(t, r, "TIMEOUT", "longer than 200ms")
		var out struct{ Channel struct{ FriendlyName string } }
		callOK(t, alice, `query($c: ID!) { channel(id: $c) { friendlyName } }`, map[string]any{"c": ch}, &out)
		if out.Channel.FriendlyName != "before" {
			t.Errorf("a stopped mutation wrote %q", out.Channel.FriendlyName)
		}
	})
}
