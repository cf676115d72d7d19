package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/bench/hostile"
	"github.com/parleychat/parley/graph"
)

// testSchema is Parley's executable schema with its complexity functions.
func testSchema() graphql.ExecutableSchema {
	cfg := graph.Config{}
	setComplexity(&cfg.Complexity, 50)
	return graph.NewExecutableSchema(cfg)
}

// selections counts the selections written in doc: what a linear walk
// visits once.
func selections(doc *ast.QueryDocument) int {
	var count func(ast.SelectionSet) int
	count = func(set ast.SelectionSet) int {
		n := len(set)
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				n += count(s.SelectionSet)
			case *ast.InlineFragment:
				n += count(s.SelectionSet)
			}
		}
		return n
	}
	n := 0
	for _, op := range doc.Operations {
		n += count(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		n += count(f.SelectionSet)
	}
	return n
}

// analyse runs documentLimit's checks on query with no token limit, and
// returns the error and the selections visited.
func analyse(t *testing.T, es graphql.ExecutableSchema, limits Limits, query string, vars map[string]any) (*gqlerror.Error, int, int) {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	visits, gerr := checkShape(doc, es.Schema(), limits)
	if gerr == nil {
		cost, v := operationCost(context.Background(), es, doc, doc.Operations[0], vars, limits.MaxComplexity)
		visits += v
		if cost > limits.MaxComplexity {
			gerr = documentError(apperr.ComplexityLimitExceeded, nil, "complexity %d", cost)
		}
	}
	return gerr, visits, selections(doc)
}

func codeOf(err *gqlerror.Error) apperr.Code {
	if err == nil {
		return ""
	}
	return apperr.CodeOf(err.Err)
}

// TestDocumentWorkIsLinear: the analysis visits each selection a few times
// at most, whatever the document does, and the hostile documents are
// refused with a code. The limits are raised so that each document reaches
// the check it targets.
func TestDocumentWorkIsLinear(t *testing.T) {
	es := testSchema()
	wide := Limits{MaxTokens: 1 << 30, MaxDepth: 1000, MaxAliases: 1 << 20, MaxFields: 1 << 20, MaxFragments: 1 << 20, MaxComplexity: 10_000}
	cases := []struct {
		name  string
		query string
		code  apperr.Code
	}{
		{"doubling 40", hostile.FragmentDoubling(40), apperr.ComplexityLimitExceeded},
		{"doubling 400", hostile.FragmentDoubling(400), apperr.ComplexityLimitExceeded},
		{"conflicts 499", hostile.ConflictingFields(499), apperr.GraphQLValidationFailed},
		{"conflicts 4990", hostile.ConflictingFields(4990), apperr.GraphQLValidationFailed},
		{"cycle 800", hostile.FragmentCycle(800), apperr.GraphQLValidationFailed},
		{"cycle 8000", hostile.FragmentCycle(8000), apperr.GraphQLValidationFailed},
		// Conflicts hidden in inline fragments and fragments.
		{"inline conflicts", "{" + strings.Repeat(` ... on Query { user(identity: "a") { id } } ... on Query { user(identity: "b") { id } }`, 200) + "}", apperr.GraphQLValidationFailed},
		{"fragment conflicts", fragmentConflicts(300), apperr.GraphQLValidationFailed},
		// One fragment spread everywhere, and spreads of many fragments:
		// valid, and no costlier to check.
		{"shared fragment", sharedFragment(300), ""},
		{"same field", hostile.SameField(5000), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err, visits, size := analyse(t, es, wide, c.query, nil)
			if got := codeOf(err); got != c.code {
				t.Errorf("code %q (%v), want %q", got, err, c.code)
			}
			if visits > 6*size+10 {
				t.Errorf("visited %d selections of a document of %d", visits, size)
			}
		})
	}
}

// fragmentConflicts spreads n fragments on Query, each selecting user with
// arguments of its own.
func fragmentConflicts(n int) string {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range n {
		fmt.Fprintf(&sb, " ...U%d", i)
	}
	sb.WriteString(" }")
	for i := range n {
		fmt.Fprintf(&sb, ` fragment U%d on Query { user(identity: "u%d") { id } }`, i, i)
	}
	return sb.String()
}

// sharedFragment selects n aliased users that all spread one fragment
// which itself spreads another.
func sharedFragment(n int) string {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range n {
		fmt.Fprintf(&sb, ` u%d: user(identity: "x") { ...A }`, i)
	}
	sb.WriteString(" } fragment A on User { id identity ...B } fragment B on User { friendlyName createdAt }")
	return sb.String()
}

// TestDocumentChecks covers each refusal of the analysis at its limit and
// one past it.
func TestDocumentChecks(t *testing.T) {
	es := testSchema()
	limits := DefaultLimits
	cycle := func(n int) string { return hostile.FragmentCycle(n) }
	chain := func(n int) string {
		var sb strings.Builder
		sb.WriteString("{ me { ...C0 } }")
		for i := range n - 1 {
			fmt.Fprintf(&sb, " fragment C%d on User { id ...C%d }", i, i+1)
		}
		fmt.Fprintf(&sb, " fragment C%d on User { id }", n-1)
		return sb.String()
	}
	cases := []struct {
		name, query string
		code        apperr.Code
		message     string
	}{
		{"fragments at the limit", chain(100), "", ""},
		{"fragments past the limit", chain(101), apperr.BadUserInput, "document defines 101 fragments; the limit is 100"},
		{"cycle at the fragment limit", cycle(100), apperr.GraphQLValidationFailed, `Cannot spread fragment "C0" within itself via "C1", "C2"`},
		{"self spread", `{ me { ...A } } fragment A on User { id ...A }`, apperr.GraphQLValidationFailed, `Cannot spread fragment "A" within itself.`},
		{"two-cycle", `{ me { ...A } } fragment A on User { ...B } fragment B on User { id ...A }`, apperr.GraphQLValidationFailed, `Cannot spread fragment "A" within itself via "B".`},
		{"unknown fragment", `{ me { ...Nope } }`, apperr.GraphQLValidationFailed, `Unknown fragment "Nope".`},
		{"unknown fragment in a fragment", `{ me { ...A } } fragment A on User { ...Nope }`, apperr.GraphQLValidationFailed, `Unknown fragment "Nope".`},
		{"different fields", `{ me { x: id x: identity } }`, apperr.GraphQLValidationFailed, `Fields "x" conflict because "id" and "identity" are different fields.`},
		{"different arguments", `{ user(identity: "a") { id } user(identity: "b") { id } }`, apperr.GraphQLValidationFailed, `Fields "user" conflict because they have differing arguments.`},
		{"same arguments in another order", `{ messages(channelId: "c", first: 1) { pageInfo { hasNextPage } } messages(first: 1, channelId: "c") { pageInfo { hasPreviousPage } } }`, "", ""},
		{"same object arguments in another order", `query { myChannels(orderBy: {field: LAST_MESSAGE, direction: ASC}) { pageInfo { hasNextPage } } myChannels(orderBy: {direction: ASC, field: LAST_MESSAGE}) { pageInfo { hasNextPage } } }`, "", ""},
		{"fields on different types", `{ me { ... on User { x: id } ... on Channel { x: uniqueName } } }`, "", ""},
		{"conflict through a fragment", `{ me { x: id ...A } } fragment A on User { x: identity }`, apperr.GraphQLValidationFailed, `Fields "x" conflict`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err, _, _ := analyse(t, es, limits, c.query, nil)
			if got := codeOf(err); got != c.code {
				t.Fatalf("code %q (%v), want %q", got, err, c.code)
			}
			if err != nil && !strings.Contains(err.Message, c.message) {
				t.Errorf("message %q, want %q", err.Message, c.message)
			}
		})
	}
}

// TestDocumentCostMatchesGqlgen: on valid documents, the cost computed
// before validation equals what gqlgen's complexity package computes after
// it, with coerced variables.
func TestDocumentCostMatchesGqlgen(t *testing.T) {
	es := testSchema()
	docs := []struct {
		query string
		vars  string
	}{
		{`{ me { id identity } }`, `{}`},
		{`{ __typename me { __typename } }`, `{}`},
		{`query($c: ID!) { messages(channelId: $c, last: 100) { edges { node { id body author { identity } } } } }`, `{"c": "x"}`},
		{`query($c: ID!, $n: Int = 7) { messages(channelId: $c, first: $n) { edges { cursor node { id } } pageInfo { hasNextPage } } }`, `{"c": "x"}`},
		{`query($c: ID!, $n: Int = 7) { messages(channelId: $c, first: $n) { edges { cursor node { id } } } }`, `{"c": "x", "n": 3}`},
		{`query($n: Int) { myChannels(first: $n) { edges { node { ...C } } } publicChannels { edges { node { ...C } } } } fragment C on Channel { id lastMessage { ...M } createdBy { identity } } fragment M on Message { id body channel { id } }`, `{"n": 20}`},
		{`{ members(channelId: "c", first: 20) { edges { node { ... on Member { id user { ... { identity } } } } } } }`, `{}`},
		{`{ __schema { types { name } } __type(name: "User") { name fields { name type { name } } } }`, `{}`},
		{`mutation($in: SendMessageInput!) { sendMessage(input: $in) { id index channel { lastMessage { id } } } }`, `{"in": {"channelId": "c", "body": "x"}}`},
	}
	for _, d := range docs {
		doc, err := parser.ParseQuery(&ast.Source{Input: d.query})
		if err != nil {
			t.Fatalf("%s: %v", d.query, err)
		}
		if errs := validator.Validate(es.Schema(), doc); len(errs) > 0 {
			t.Fatalf("%s: %v", d.query, errs)
		}
		dec := json.NewDecoder(strings.NewReader(d.vars))
		dec.UseNumber()
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		op := doc.Operations[0]
		coerced, gerr := validator.VariableValues(es.Schema(), op, raw)
		if gerr != nil {
			t.Fatalf("%s: %v", d.query, gerr)
		}
		want := complexity.Calculate(context.Background(), es, op, coerced)
		// A fresh parse: ours runs before validation.
		fresh, _ := parser.ParseQuery(&ast.Source{Input: d.query})
		got, _ := operationCost(context.Background(), es, fresh, fresh.Operations[0], raw, 1<<40)
		if got != want {
			t.Errorf("%s: cost %d, gqlgen computes %d", d.query, got, want)
		}
	}
}

// TestDocumentLimitStopsEndedRequests: a request whose client went away,
// or whose timeout passed, is not parsed, validated or run.
func TestDocumentLimitStopsEndedRequests(t *testing.T) {
	l := &documentLimit{limits: DefaultLimits, es: testSchema(), docs: graphql.NoCache[*ast.QueryDocument]{}}
	p := &graphql.RawParams{Query: `{ me { id } }`}
	if err := l.MutateOperationParameters(context.Background(), p); err != nil {
		t.Fatalf("a live request: %v", err)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	timedOut, cancel := context.WithTimeoutCause(context.Background(), 0, &timeoutError{after: time.Second})
	defer cancel()
	for ctx, want := range map[context.Context]apperr.Code{gone: apperr.Internal, timedOut: apperr.Timeout} {
		if got := codeOf(l.MutateOperationParameters(ctx, p)); got != want {
			t.Errorf("before parsing: %q, want %q", got, want)
		}
		if got := codeOf(l.MutateOperationContext(ctx, nil)); got != want {
			t.Errorf("before running: %q, want %q", got, want)
		}
	}
}
