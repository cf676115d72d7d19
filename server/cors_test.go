package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// TestCORS: a page from an allowed origin may call /graphql from the
// browser (preflight and request); other origins get no CORS headers.
func TestCORS(t *testing.T) {
	b := parleytest.Backends()[0]
	srv := parleytest.NewServer(t, b, parleytest.Options{WebSocket: server.WebSocketOptions{AllowedOrigins: []string{"app.example.com"}}})
	do := func(method, origin string, header map[string]string) *http.Response {
		t.Helper()
		body := strings.NewReader(`{"query":"{ __typename }"}`)
		req, err := http.NewRequest(method, srv.URL+"/graphql", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	pre := do(http.MethodOptions, "https://app.example.com", map[string]string{
		"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type",
	})
	if pre.StatusCode != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	if !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "X-Request-Id") {
		t.Errorf("preflight does not allow X-Request-Id: %v", pre.Header)
	}
	if r := do(http.MethodPost, "https://app.example.com", nil); r.StatusCode != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("request from an allowed origin: %d %v", r.StatusCode, r.Header)
	} else if r.Header.Get("Access-Control-Expose-Headers") != "X-Request-Id" || r.Header.Get("X-Request-Id") == "" {
		t.Errorf("the page cannot read the request id: %v", r.Header)
	}
	if r := do(http.MethodPost, "https://evil.example", nil); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("a foreign origin got CORS headers: %v", r.Header)
	}
}
