package requestid_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/parleychat/parley/requestid"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"":                                     false,
		"abc":                                  true,
		"0190d3c2-7a8e-7cc4-9e6b-3f2a1b4c5d6e": true,
		"Root=1-67891233-abcdef012345678912345678": true,
		"a.b_c:d/e+f=g@h":                          true,
		strings.Repeat("x", 128):                   true,
		strings.Repeat("x", 129):                   false,
		"has space":                                false,
		"new\nline":                                false,
		`quote"`:                                   false,
		"ünïcode":                                  false,
		"semi;colon":                               false,
	} {
		if got := requestid.Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestMiddleware: a sane incoming id is kept, anything else is replaced by a
// new UUID; the response echoes the id the handler's context carries.
func TestMiddleware(t *testing.T) {
	var seen string
	h := requestid.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = requestid.FromContext(r.Context())
	}))
	do := func(incoming string) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if incoming != "" {
			req.Header.Set(requestid.Header, incoming)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(requestid.Header)
		if got != seen {
			t.Errorf("response id %q, context id %q", got, seen)
		}
		return got
	}
	if got := do("req-42"); got != "req-42" {
		t.Errorf("sane id replaced by %q", got)
	}
	first, second := do(""), do("bad id\r\n")
	for _, id := range []string{first, second} {
		if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
			t.Errorf("generated id %q is not a UUIDv7 (%v)", id, err)
		}
	}
	if first == second {
		t.Errorf("two requests got the id %q", first)
	}
}

func TestLogAttrs(t *testing.T) {
	if attrs := requestid.LogAttrs(context.Background()); attrs != nil {
		t.Errorf("attrs without an id: %v", attrs)
	}
	attrs := requestid.LogAttrs(requestid.NewContext(context.Background(), "r1"))
	if len(attrs) != 1 || attrs[0].Key != "request_id" || attrs[0].Value.String() != "r1" {
		t.Errorf("attrs: %v", attrs)
	}
}
