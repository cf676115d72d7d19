package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// limitErr checks that r is refused with an error whose message holds every
// part of want, and that no data came back.
func limitErr(t *testing.T, r *parleytest.Response, code string, want ...string) {
	t.Helper()
	if len(r.Errors) == 0 {
		t.Errorf("want an error, got data %s", r.Data)
		return
	}
	if code != "" && r.Code() != code {
		t.Errorf("want code %s, got %+v", code, r.Errors)
	}
	for _, w := range want {
		if !strings.Contains(r.Errors[0].Message, w) {
			t.Errorf("message %q does not mention %q", r.Errors[0].Message, w)
		}
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(r.Data, &data); len(r.Data) > 0 && err != nil {
		t.Errorf("decode data %s: %v", r.Data, err)
	}
	for field, v := range data {
		if string(v) != "null" {
			t.Errorf("a refused request returned %s: %s", field, v)
		}
	}
}

// limitOK checks that r succeeded.
func limitOK(t *testing.T, r *parleytest.Response) {
	t.Helper()
	if len(r.Errors) > 0 || r.Status != http.StatusOK {
		t.Errorf("want success, got status %d %+v", r.Status, r.Errors)
	}
}

// paddedBody is a request body of exactly n bytes running `{ me { id } }`,
// padded with JSON whitespace.
func paddedBody(t *testing.T, n int) []byte {
	t.Helper()
	const head, tail = `{"query":"{ me { id } }"`, `}`
	pad := n - len(head) - len(tail)
	if pad < 0 {
		t.Fatalf("a body of %d bytes is too small", n)
	}
	return []byte(head + strings.Repeat(" ", pad) + tail)
}

// countTokens counts a document's lexical tokens as the parser's token limit
// does (the end of input is not one).
func countTokens(t *testing.T, query string) int {
	t.Helper()
	lx := lexer.New(&ast.Source{Input: query})
	n := 0
	for {
		tok, err := lx.ReadToken()
		if err != nil {
			t.Fatalf("lex %q: %v", query, err)
		}
		if tok.Kind == lexer.EOF {
			return n
		}
		n++
	}
}

// tokensQuery is `{ me { id id … } }` of exactly n tokens (n >= 6).
func tokensQuery(t *testing.T, n int) string {
	t.Helper()
	q := "{ me { " + strings.Repeat("id ", n-5) + "} }"
	if got := countTokens(t, q); got != n {
		t.Fatalf("tokensQuery(%d) has %d tokens", n, got)
	}
	return q
}

// depthSelection is a selection set that is depth levels deep, counted as
// server/limits.go counts (every field is a level, a leaf included):
// myChannels { edges { node { lastMessage { channel { lastMessage … { id } } } } } }.
func depthSelection(depth int) string {
	fields := []string{"myChannels(first: 1)", "edges", "node"}
	for i := 0; len(fields) < depth-1; i++ {
		fields = append(fields, []string{"lastMessage", "channel"}[i%2])
	}
	return "{ " + strings.Join(fields, " { ") + " { id" + strings.Repeat(" }", len(fields)) + " }"
}

// aliasesQuery selects me under n aliases.
func aliasesQuery(n int) string {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range n {
		fmt.Fprintf(&sb, " a%d: me { id }", i)
	}
	sb.WriteString(" }")
	return sb.String()
}

func TestLimitRequestBody(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		t.Run("default", func(t *testing.T) {
			srv := parleytest.NewServer(t, b, parleytest.Options{})
			alice := srv.Client("alice")
			n := int(server.DefaultLimits.MaxBodyBytes)
			if n != 1<<20 {
				t.Errorf("default body limit = %d, want 1 MiB", n)
			}
			r := alice.PostRaw(paddedBody(t, n))
			limitOK(t, r)
			if !strings.Contains(string(r.Data), `"id":"`) {
				t.Errorf("a body at the limit did not run: %s", r.Data)
			}
			r = alice.PostRaw(paddedBody(t, n+1))
			if r.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", r.Status)
			}
			limitErr(t, r, "BAD_USER_INPUT", strconv.Itoa(n))
		})

		t.Run("configured", func(t *testing.T) {
			srv := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxBodyBytes: 1000}})
			alice := srv.Client("alice")
			limitOK(t, alice.PostRaw(paddedBody(t, 1000)))
			r := alice.PostRaw(paddedBody(t, 1001))
			if r.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413", r.Status)
			}
			limitErr(t, r, "BAD_USER_INPUT", "1000")
		})

		// A body of unknown length (chunked) is cut at the limit too.
		t.Run("chunked", func(t *testing.T) {
			srv := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxBodyBytes: 1000}})
			alice := srv.Client("alice")
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/graphql", io.MultiReader(bytes.NewReader(paddedBody(t, 1001))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", alice.Authorization)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var chunked parleytest.Response
			if err := json.NewDecoder(resp.Body).Decode(&chunked); err != nil {
				t.Fatalf("decode (status %d): %v", resp.StatusCode, err)
			}
			chunked.Status = resp.StatusCode
			limitErr(t, &chunked, "BAD_USER_INPUT", "limit of 1000 bytes")
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("chunked body over the limit: status %d, want 413", resp.StatusCode)
			}
		})
	})
}

func TestLimitTokens(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxTokens: 200}})
		alice := srv.Client("alice")
		limitOK(t, alice.Post(tokensQuery(t, 200), nil))
		limitErr(t, alice.Post(tokensQuery(t, 201), nil), "", "token limit", "200")

		def := parleytest.NewServer(t, b, parleytest.Options{})
		limitErr(t, def.Client("alice").Post(tokensQuery(t, server.DefaultLimits.MaxTokens+1), nil), "", "token limit", "10000")
	})
}

func TestLimitDepth(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		limit := server.DefaultLimits.MaxDepth
		limitOK(t, alice.Post(depthSelection(limit), nil))
		over := fmt.Sprintf("%d levels deep; the limit is %d", limit+1, limit)
		limitErr(t, alice.Post(depthSelection(limit+1), nil), "BAD_USER_INPUT", over)
		// Fragments, named or inline, do not hide depth.
		limitErr(t, alice.Post("query { ...F } fragment F on Query "+depthSelection(limit+1), nil), "BAD_USER_INPUT", over)
		limitErr(t, alice.Post("{ ... on Query "+depthSelection(limit+1)+" }", nil), "BAD_USER_INPUT", over)
		limitOK(t, alice.Post("query { ...F } fragment F on Query "+depthSelection(limit), nil))

		small := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxDepth: 3}})
		bob := small.Client("bob")
		limitOK(t, bob.Post(`{ me { id } }`, nil))
		// Three levels pass the limit and reach the resolver.
		limitErr(t, bob.Post(`{ channel(id: "x") { createdBy { id } } }`, nil), "NOT_FOUND")
		limitErr(t, bob.Post(`{ myChannels { edges { node { id } } } }`, nil), "BAD_USER_INPUT", "4 levels deep; the limit is 3")
		// Introspection is not counted.
		limitOK(t, bob.Post(`{ __schema { types { fields { type { ofType { ofType { name } } } } } } }`, nil))
	})
}

func TestLimitAliases(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		limit := server.DefaultLimits.MaxAliases
		if limit != 15 {
			t.Errorf("default alias limit = %d, want 15", limit)
		}
		limitOK(t, alice.Post(aliasesQuery(limit), nil))
		over := fmt.Sprintf("%d aliases; the limit is %d", limit+1, limit)
		limitErr(t, alice.Post(aliasesQuery(limit+1), nil), "BAD_USER_INPUT", over)
		// Aliases in fragments count with the operation's.
		split := `query { ...F x1: me { id } x2: me { id } x3: me { id } x4: me { id } x5: me { id } x6: me { id } x7: me { id } x8: me { id } }
			fragment F on Query { f1: me { id } f2: me { id } f3: me { id } f4: me { id } f5: me { id } f6: me { id } f7: me { id } f8: me { id } }`
		limitErr(t, alice.Post(split, nil), "BAD_USER_INPUT", over)

		small := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxAliases: 2}})
		limitOK(t, small.Client("bob").Post(aliasesQuery(2), nil))
		limitErr(t, small.Client("bob").Post(aliasesQuery(3), nil), "BAD_USER_INPUT", "3 aliases; the limit is 2")
	})
}

func TestLimitComplexity(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		// messages(last: 100) { edges { node { id } } } costs
		// 1 + (edges 1 + (node 1 + id 1)) × 100 = 301.
		srv := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxComplexity: 301}})
		alice := srv.Client("alice")
		var created struct{ CreateChannel channelData }
		callOK(t, alice, createChannel, map[string]any{"in": map[string]any{"type": "PRIVATE"}}, &created)
		ch := created.CreateChannel.ID
		callOK(t, alice, sendMessage, map[string]any{"c": ch, "b": "hello"}, nil)
		vars := map[string]any{"c": ch}

		limitOK(t, alice.Post(`query($c: ID!) { messages(channelId: $c, last: 100) { edges { node { id } } } }`, vars))
		limitErr(t, alice.Post(`query($c: ID!) { __typename messages(channelId: $c, last: 100) { edges { node { id } } } }`, vars),
			"", "complexity 302", "limit of 301")
		// A nested selection multiplies by the page size: 1 + 6 × 100.
		nested := `query($c: ID!, $n: Int) { messages(channelId: $c, last: $n) { edges { node { id body author { identity } } } } }`
		limitErr(t, alice.Post(nested, map[string]any{"c": ch, "n": 100}), "", "complexity 601", "limit of 301")
		r := alice.Post(nested, map[string]any{"c": ch, "n": 1})
		limitOK(t, r)
		if !strings.Contains(string(r.Data), `"body":"hello"`) {
			t.Errorf("last: 1 = %s", r.Data)
		}

		// Every list multiplies by first or last, or by the default page size.
		costly := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxComplexity: 1}})
		bob := costly.Client("bob")
		re := regexp.MustCompile(`complexity (\d+)`)
		for _, c := range []struct {
			query string
			want  int
		}{
			{`{ messages(channelId: "x", first: 10) { edges { node { id } } } }`, 1 + 3*10},
			{`{ messages(channelId: "x") { edges { node { id } } } }`, 1 + 3*50},
			{`{ members(channelId: "x", first: 20) { edges { node { id } } } }`, 1 + 3*20},
			{`{ myChannels(first: 7) { edges { node { id } } } }`, 1 + 3*7},
			{`{ publicChannels { edges { node { id } } } }`, 1 + 3*50},
			{`{ publicChannels(first: 0) { edges { node { id } } } }`, 1 + 3*1},
		} {
			r := bob.Post(c.query, nil)
			limitErr(t, r, "", "complexity")
			if len(r.Errors) == 0 {
				continue
			}
			m := re.FindStringSubmatch(r.Errors[0].Message)
			if m == nil || m[1] != strconv.Itoa(c.want) {
				t.Errorf("%s: %q, want complexity %d", c.query, r.Errors[0].Message, c.want)
			}
		}
	})
}

// TestLimitRejectsBeforeValidation checks that documents over the alias or
// token limits are refused before the expensive work: the refusal names the
// limit even when the document would also fail validation.
func TestLimitRejectsBeforeValidation(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		anon, alice := srv.Client(""), srv.Client("alice")
		var sb strings.Builder
		sb.WriteString("{")
		for i := range 16 {
			fmt.Fprintf(&sb, " a%d: noSuchField { id }", i)
		}
		sb.WriteString(" }")
		aliases := sb.String()
		for range 2 { // twice: a refusal is worked out again, as cheaply
			limitErr(t, anon.Post(aliases, nil), "BAD_USER_INPUT", "16 aliases; the limit is 15")
			limitErr(t, alice.Post(aliases, nil), "BAD_USER_INPUT", "16 aliases; the limit is 15")
		}

		// Half a megabyte of invalid selections, far over the token limit.
		tokens := "{ " + strings.Repeat("noSuchField ", 40_000) + "}"
		for range 2 {
			limitErr(t, anon.Post(tokens, nil), "", "token limit of 10000")
		}
	})
}

// TestLimitFields: validation's overlapping-fields rule is quadratic in
// same-named fields, which the alias limit does not see; the field limit
// bounds it. Repeating one field is the worst case.
func TestLimitFields(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		anon := srv.Client("")
		limit := server.DefaultLimits.MaxFields
		limitOK(t, anon.Post("{ "+strings.Repeat("__typename ", limit)+"}", nil))
		limitErr(t, anon.Post("{ "+strings.Repeat("__typename ", limit+1)+"}", nil), "BAD_USER_INPUT",
			fmt.Sprintf("%d fields; the limit is %d", limit+1, limit))

		small := parleytest.NewServer(t, b, parleytest.Options{ServerLimits: server.Limits{MaxFields: 6}})
		const spreads = `query { me { ...F } me2: me { ...F } } fragment F on User { id identity }`
		limitOK(t, small.Client("alice").Post(spreads, nil))
		limitErr(t, small.Client("alice").Post(`query { me { ...F createdAt } me2: me { ...F } } fragment F on User { id identity }`, nil),
			"BAD_USER_INPUT", "7 fields; the limit is 6")
	})
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	const query = `{ __schema { queryType { name } } }`
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		for _, c := range []*parleytest.Client{srv.Client(""), srv.Client("alice")} {
			r := c.Post(query, nil)
			limitOK(t, r)
			if string(r.Data) != `{"__schema":{"queryType":{"name":"Query"}}}` {
				t.Errorf("introspection = %s", r.Data)
			}
		}

		off := parleytest.NewServer(t, b, parleytest.Options{DisableIntrospection: true})
		r := off.Client("alice").Post(query, nil)
		if len(r.Errors) == 0 || strings.Contains(string(r.Data), "Query") {
			t.Fatalf("introspection disabled, yet %s %+v", r.Data, r.Errors)
		}
		limitOK(t, off.Client("alice").Post(`{ me { id } }`, nil))
		t.Run("error says so", func(t *testing.T) {
			if r.Code() == "INTERNAL" || !strings.Contains(r.Errors[0].Message, "introspection") {
				t.Fatalf("disabled introspection answers %+v", r.Errors)
			}
		})
	})
}

func TestGETTransport(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		r := alice.Get(`query($x: String!) { me { identity } user(identity: $x) { identity } }`, map[string]any{"x": "alice"})
		limitOK(t, r)
		if string(r.Data) != `{"me":{"identity":"alice"},"user":{"identity":"alice"}}` {
			t.Errorf("GET query = %s", r.Data)
		}

		r = alice.Get(`mutation { createChannel(input: {type: PUBLIC, uniqueName: "via-get"}) { id } }`, nil)
		limitErr(t, r, "", "GET")
		if r.Status == http.StatusOK {
			t.Errorf("a GET mutation got status 200")
		}
		callFails(t, alice, "NOT_FOUND", `{ channelByUniqueName(uniqueName: "via-get") { id } }`, nil)
	})
}

func TestAuthErrors(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		other, err := auth.Mint([]byte("another-secret-0123456789abcdefgh"), "alice", "", time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		expired, err := auth.Mint(srv.Secret, "alice", "", time.Minute, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, header := range []string{
			"Bearer not-a-token",
			"Bearer " + other,
			"Bearer " + expired,
			"Basic YWxpY2U6c2VjcmV0",
			"Bearer",
		} {
			c := srv.Client("")
			c.Authorization = header
			for _, q := range []string{`{ me { id } }`, `{ __schema { queryType { name } } }`} {
				r := c.Post(q, nil)
				if r.Status != http.StatusUnauthorized {
					t.Errorf("%.20s…: status %d, want 401", header, r.Status)
				}
				limitErr(t, r, "UNAUTHENTICATED")
			}
		}
		var users int64
		if err := srv.Store.DB(t.Context()).Table("users").Count(&users).Error; err != nil || users != 0 {
			t.Errorf("bad tokens made %d users (%v)", users, err)
		}

		anon := srv.Client("")
		r := anon.Post(`{ me { id } }`, nil)
		limitErr(t, r, "UNAUTHENTICATED")
		r = anon.Post(`{ __schema { queryType { name } } }`, nil)
		limitOK(t, r)
	})
}

func TestInternalErrorHidesSQL(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		known := srv.Client("alice")
		callOK(t, known, `{ me { id } }`, nil, nil) // alice is now cached
		if err := srv.Store.Close(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name   string
			client *parleytest.Client
			query  string
		}{
			{"cached user", known, `{ me { id } }`},
			{"new user", srv.Client("zed"), `{ me { id } }`},
			{"mutation", known, `mutation { createChannel(input: {type: PUBLIC}) { id } }`},
		} {
			r := c.client.Post(c.query, nil)
			limitErr(t, r, "INTERNAL")
			for _, e := range r.Errors {
				for _, leak := range []string{"sql", "select", "database", "closed", "insert", "sqlite", "postgres"} {
					if strings.Contains(strings.ToLower(e.Message), leak) {
						t.Errorf("%s: message %q leaks %q", c.name, e.Message, leak)
					}
				}
				if len(e.Extensions) != 1 {
					t.Errorf("%s: extensions %v carry more than the code", c.name, e.Extensions)
				}
			}
		}
	})
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		status := func(path string) int {
			t.Helper()
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return resp.StatusCode
		}
		if s := status("/healthz"); s != http.StatusOK {
			t.Errorf("/healthz = %d", s)
		}
		if s := status("/readyz"); s != http.StatusOK {
			t.Errorf("/readyz = %d", s)
		}
		if err := srv.Store.Close(); err != nil {
			t.Fatal(err)
		}
		if s := status("/readyz"); s != http.StatusServiceUnavailable {
			t.Errorf("/readyz with the database closed = %d, want 503", s)
		}
		if s := status("/healthz"); s != http.StatusOK {
			t.Errorf("/healthz with the database closed = %d, want 200", s)
		}
	})
}
