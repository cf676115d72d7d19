package server_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// TestCORS: a page from an allowed origin may call /graphql from the
// browser (preflight and request); other origins get no CORS headers.
func TestCORS(t *testing.T) {
	t.Parallel()
	b := parleytest.Backends()[0]
	srv := parleytest.NewServer(t, b, parleytest.Options{
		WebSocket:   server.WebSocketOptions{AllowedOrigins: []string{"app.example.com"}},
		CORSHeaders: []string{"X-Client-Build"},
	})
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
	allowed := strings.Split(pre.Header.Get("Access-Control-Allow-Headers"), ", ")
	for _, h := range []string{"Authorization", "Content-Type", "X-Request-Id",
		"apollographql-client-name", "apollographql-client-version", "x-apollo-operation-name", "X-Client-Build"} {
		if !slices.Contains(allowed, h) {
			t.Errorf("preflight does not allow %s: %q", h, allowed)
		}
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

// TestQueryPath: /query, where gqlgen's examples serve GraphQL, answers 404
// with a GraphQL error that points to /graphql, for any method.
func TestQueryPath(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		req, err := http.NewRequest(method, srv.URL+"/query", strings.NewReader(`{"query":"{ __typename }"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Errors []struct {
				Message    string
				Extensions struct{ Code string }
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusNotFound || len(body.Errors) != 1 ||
			body.Errors[0].Extensions.Code != "NOT_FOUND" || !strings.Contains(body.Errors[0].Message, "/graphql") {
			t.Errorf("%s /query: %d %+v %v", method, resp.StatusCode, body, err)
		}
	}
}

// TestIntrospectionShowsPublicSchema: gqlgen's @goField is not among the
// directives, and DateTime names its specification.
func TestIntrospectionShowsPublicSchema(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	var out struct {
		Schema struct{ Directives []struct{ Name string } } `json:"__schema"`
		Type   struct{ SpecifiedByURL *string }             `json:"__type"`
	}
	srv.Client("").Do(`{ __schema { directives { name } } __type(name: "DateTime") { specifiedByURL } }`, nil, &out)
	var names []string
	for _, d := range out.Schema.Directives {
		names = append(names, d.Name)
	}
	if slices.Contains(names, "goField") || !slices.Contains(names, "specifiedBy") || !slices.Contains(names, "deprecated") {
		t.Errorf("directives: %v", names)
	}
	if out.Type.SpecifiedByURL == nil || *out.Type.SpecifiedByURL != "https://scalars.graphql.org/andimarek/date-time" {
		t.Errorf("DateTime specifiedByURL: %v", out.Type.SpecifiedByURL)
	}
}
