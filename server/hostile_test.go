package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/bench/hostile"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// TestHostileDocuments: every document of the denial-of-service probe
// (issue 9), as written and ten times as large, is refused with a coded
// error and a short answer, over HTTP and WebSocket. That the refusal costs
// little work is checked by counting (document_internal_test.go) and
// measured by parley-bench's hostile scenario.
func TestHostileDocuments(t *testing.T) {
	t.Parallel()
	b := parleytest.Backends()[0] // no storage involved
	srv := parleytest.NewServer(t, b, parleytest.Options{})
	alice := srv.Client("alice")
	want := map[string][]string{
		// 2^40 selections: over the complexity limit; ten times as large,
		// over the fragment limit.
		"fragment-doubling/1":  {"COMPLEXITY_LIMIT_EXCEEDED"},
		"fragment-doubling/10": {"BAD_USER_INPUT"},
		// The first conflict; ten times as large, over the token limit.
		"conflicting-fields/1":  {"GRAPHQL_VALIDATION_FAILED"},
		"conflicting-fields/10": {"GRAPHQL_PARSE_FAILED"},
		// Over the fragment limit; ten times as large, the token limit.
		"fragment-cycle/1":  {"BAD_USER_INPUT"},
		"fragment-cycle/10": {"GRAPHQL_PARSE_FAILED"},
	}
	ws := srv.Dial(t, "alice")
	for _, scale := range []int{1, 10} {
		for _, d := range hostile.Documents(scale) {
			name := fmt.Sprintf("%s/%d", d.Name, d.Scale)
			t.Run(name, func(t *testing.T) {
				r := alice.Post(d.Query, nil)
				if r.Status >= 500 {
					t.Errorf("status %d", r.Status)
				}
				if len(r.Errors) != 1 {
					t.Fatalf("%d errors, want 1: %.300v", len(r.Errors), r.Errors)
				}
				if !slices.Contains(want[name], r.Code()) {
					t.Errorf("code %q (%s), want one of %v", r.Code(), r.Errors[0].Message, want[name])
				}
				if len(r.Errors[0].Message) > 300 {
					t.Errorf("a message of %d bytes", len(r.Errors[0].Message))
				}

				errs := ws.Subscribe(d.Query, nil).Err(t, 10*time.Second)
				if len(errs) != 1 || !slices.Contains(want[name], errs[0].Code()) {
					t.Errorf("over WebSocket: %.300v", errs)
				}
			})
		}
	}
}

// TestLimitFragments: PARLEY_MAX_QUERY_FRAGMENTS fragment definitions
// pass, one more does not.
func TestLimitFragments(t *testing.T) {
	t.Parallel()
	chain := func(n int) string {
		var sb strings.Builder
		sb.WriteString("{ me { ...C0 } }")
		for i := range n - 1 {
			fmt.Fprintf(&sb, " fragment C%d on User { id ...C%d }", i, i+1)
		}
		fmt.Fprintf(&sb, " fragment C%d on User { identity }", n-1)
		return sb.String()
	}
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		limit := server.DefaultLimits.MaxFragments
		if limit != 100 {
			t.Errorf("default fragment limit = %d, want 100", limit)
		}
		r := alice.Post(chain(limit), nil)
		limitOK(t, r)
		if !strings.Contains(string(r.Data), `"identity":"alice"`) {
			t.Errorf("a document at the limit answered %s", r.Data)
		}
		limitErr(t, alice.Post(chain(limit+1), nil), "BAD_USER_INPUT", "101 fragments; the limit is 100")

		small := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxFragments: 2}})
		limitOK(t, small.Client("bob").Post(chain(2), nil))
		limitErr(t, small.Client("bob").Post(chain(3), nil), "BAD_USER_INPUT", "3 fragments; the limit is 2")
	})
}

// TestDocumentValidationBeforeWork: unknown fragments, fragment cycles and
// conflicting fields are refused with GRAPHQL_VALIDATION_FAILED and the
// words gqlparser's validation uses.
func TestDocumentValidationBeforeWork(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	alice := srv.Client("alice")
	for query, want := range map[string]string{
		`{ me { ...Nope } }`: `Unknown fragment "Nope".`,
		`{ me { ...A } } fragment A on User { id ...B } fragment B on User { ...A }`: `Cannot spread fragment "A" within itself via "B".`,
		`{ user(identity: "a") { id } user(identity: "b") { id } }`:                  `Fields "user" conflict because they have differing arguments.`,
	} {
		r := alice.Post(query, nil)
		limitErr(t, r, "GRAPHQL_VALIDATION_FAILED", want)
		if r.Status >= http.StatusInternalServerError {
			t.Errorf("%s: status %d", query, r.Status)
		}
	}
}
