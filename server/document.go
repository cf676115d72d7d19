package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/parleychat/parley/apperr"
)

// documentLimit bounds the work a document can cause before gqlgen
// validates it, in time linear in the document's size: gqlparser's
// validation is quadratic in same-named fields and in fragment cycles, and
// a cost walk that expands fragment spreads is exponential in fragments
// that spread each other twice. It refuses, in this order:
//
//   - more fragment definitions than Limits.MaxFragments (BAD_USER_INPUT);
//   - more fields (spreads included) than Limits.MaxFields, more aliases
//     than Limits.MaxAliases (BAD_USER_INPUT);
//   - spreads of unknown fragments and fragment cycles
//     (GRAPHQL_VALIDATION_FAILED);
//   - selections deeper than Limits.MaxDepth (BAD_USER_INPUT);
//   - two fields of one response name that differ in name or arguments
//     (GRAPHQL_VALIDATION_FAILED), which validation would compare pairwise;
//   - an operation that costs more than Limits.MaxComplexity
//     (COMPLEXITY_LIMIT_EXCEEDED), each fragment's cost computed once.
//
// A document that does not parse is refused here too
// (GRAPHQL_PARSE_FAILED), so that it is not parsed twice. A document in
// gqlgen's document cache has passed these checks and
// validation before: only its cost, which depends on the variables, is
// computed again. It is safe for concurrent use.
type documentLimit struct {
	limits Limits
	es     graphql.ExecutableSchema
	docs   graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
} = (*documentLimit)(nil)

// ExtensionName names the extension in gqlgen's stats.
func (*documentLimit) ExtensionName() string { return "DocumentLimit" }

// Validate accepts any schema.
func (*documentLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters checks the raw query before gqlgen parses and
// validates it.
func (l *documentLimit) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if ae := stopped(ctx); ae != nil {
		return &gqlerror.Error{Message: ae.Message, Err: ae}
	}
	if p.Query == "" {
		return nil
	}
	doc, cached := l.docs.Get(ctx, p.Query)
	if !cached {
		parsed, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, l.limits.MaxTokens)
		if err != nil {
			// Refused here, the document is not parsed a second time.
			var pos *ast.Position
			if gerr, ok := errors.AsType[*gqlerror.Error](err); ok && len(gerr.Locations) > 0 {
				pos = &ast.Position{Line: gerr.Locations[0].Line, Column: gerr.Locations[0].Column}
			}
			return documentError(apperr.GraphQLParseFailed, pos, "%s", parseMessage(err))
		}
		if _, err := checkShape(parsed, l.es.Schema(), l.limits); err != nil {
			return err
		}
		doc = parsed
	}
	op := doc.Operations.ForName(p.OperationName)
	if op == nil {
		return nil // gqlgen reports the missing operation
	}
	if cost, _ := operationCost(ctx, l.es, doc, op, p.Variables, l.limits.MaxComplexity); cost > l.limits.MaxComplexity {
		return documentError(apperr.ComplexityLimitExceeded, nil,
			"operation has complexity %d, which exceeds the limit of %d", cost, l.limits.MaxComplexity)
	}
	return nil
}

// parseMessage is the parser's message without its location prefix.
func parseMessage(err error) string {
	if gerr, ok := errors.AsType[*gqlerror.Error](err); ok {
		return gerr.Message
	}
	return err.Error()
}

// MutateOperationContext stops, between validation and execution, an
// operation whose request has ended (the client went away, or the
// request's timeout passed).
func (l *documentLimit) MutateOperationContext(ctx context.Context, _ *graphql.OperationContext) *gqlerror.Error {
	if ae := stopped(ctx); ae != nil {
		return &gqlerror.Error{Message: ae.Message, Err: ae}
	}
	return nil
}

// documentError is a refusal of the document, carried by an *apperr.Error
// for the error presenter, at pos when not nil.
func documentError(code apperr.Code, pos *ast.Position, format string, args ...any) *gqlerror.Error {
	ae := apperr.New(code, format, args...)
	err := &gqlerror.Error{Message: ae.Message, Err: ae}
	if pos != nil {
		err.Locations = []gqlerror.Location{{Line: pos.Line, Column: pos.Column}}
	}
	return err
}

func limitError(format string, args ...any) *gqlerror.Error {
	return documentError(apperr.BadUserInput, nil, format, args...)
}

// shape checks a parsed document's structure. visits counts the
// selections it looks at, which tests hold to a small multiple of the
// document's size.
type shape struct {
	limits    Limits
	schema    *ast.Schema
	fragments map[string]*ast.FragmentDefinition
	// spreads are the fragment spreads of each fragment's body, nested
	// ones included.
	spreads map[string][]*ast.FragmentSpread
	visits  int
}

// checkShape runs the structural checks of documentLimit on doc, all but
// the cost, and returns how many selections it visited.
func checkShape(doc *ast.QueryDocument, schema *ast.Schema, limits Limits) (int, *gqlerror.Error) {
	if n := len(doc.Fragments); n > limits.MaxFragments {
		return 0, limitError("document defines %d fragments; the limit is %d", n, limits.MaxFragments)
	}
	s := &shape{
		limits:    limits,
		schema:    schema,
		fragments: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
		spreads:   make(map[string][]*ast.FragmentSpread, len(doc.Fragments)),
	}
	var c selectionCount
	var spreads []*ast.FragmentSpread
	for _, op := range doc.Operations {
		s.count(&c, op.SelectionSet, &spreads)
	}
	for _, f := range doc.Fragments {
		if _, dup := s.fragments[f.Name]; dup {
			continue // validation reports the duplicate
		}
		s.fragments[f.Name] = f
		var own []*ast.FragmentSpread
		s.count(&c, f.SelectionSet, &own)
		s.spreads[f.Name] = own
		spreads = append(spreads, own...)
	}
	if c.fields > limits.MaxFields {
		return s.visits, limitError("document selects %d fields; the limit is %d", c.fields, limits.MaxFields)
	}
	if c.aliases > limits.MaxAliases {
		return s.visits, limitError("document uses %d aliases; the limit is %d", c.aliases, limits.MaxAliases)
	}
	for _, sp := range spreads {
		if s.fragments[sp.Name] == nil {
			return s.visits, documentError(apperr.GraphQLValidationFailed, sp.Position, "Unknown fragment %q.", sp.Name)
		}
	}
	if err := s.cycles(doc.Fragments); err != nil {
		return s.visits, err
	}
	d := depthWalker{shape: s, depths: map[string]int{}}
	for _, op := range doc.Operations {
		if depth := d.depth(op.SelectionSet); depth > limits.MaxDepth {
			return s.visits, limitError("document is %d levels deep; the limit is %d", depth, limits.MaxDepth)
		}
	}
	for _, f := range doc.Fragments {
		if depth := d.fragmentDepth(f.Name); depth > limits.MaxDepth {
			return s.visits, limitError("document is %d levels deep; the limit is %d", depth, limits.MaxDepth)
		}
	}
	cc := conflictCheck{shape: s, memo: map[string]*fieldSet{}, budget: s.visits + conflictBudget*limits.MaxFields}
	return s.visits, cc.document(doc)
}

// selectionCount counts the fields (and fragment spreads) and aliases
// written in a document.
type selectionCount struct{ fields, aliases int }

// count adds the fields and aliases of set to c, and its fragment spreads
// to spreads.
func (s *shape) count(c *selectionCount, set ast.SelectionSet, spreads *[]*ast.FragmentSpread) {
	for _, sel := range set {
		s.visits++
		switch x := sel.(type) {
		case *ast.Field:
			c.fields++
			if x.Alias != "" && x.Alias != x.Name {
				c.aliases++
			}
			s.count(c, x.SelectionSet, spreads)
		case *ast.InlineFragment:
			s.count(c, x.SelectionSet, spreads)
		case *ast.FragmentSpread:
			c.fields++
			*spreads = append(*spreads, x)
		}
	}
}

// cycles reports the first fragment that spreads itself, directly or
// through others, as gqlparser's NoFragmentCycles rule words it. Every
// fragment and spread is looked at once.
func (s *shape) cycles(fragments ast.FragmentDefinitionList) *gqlerror.Error {
	const (
		unseen = iota
		onPath
		done
	)
	state := make(map[string]int, len(fragments))
	var path []*ast.FragmentSpread
	var visit func(name string) *gqlerror.Error
	visit = func(name string) *gqlerror.Error {
		state[name] = onPath
		for _, sp := range s.spreads[name] {
			s.visits++
			switch state[sp.Name] {
			case done:
				continue
			case onPath:
				return cycleError(path, sp)
			}
			path = append(path, sp)
			if err := visit(sp.Name); err != nil {
				return err
			}
			path = path[:len(path)-1]
		}
		state[name] = done
		return nil
	}
	for _, f := range fragments {
		if state[f.Name] == unseen {
			path = path[:0]
			if err := visit(f.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// cycleNames is how many fragments a cycle error names at most.
const cycleNames = 10

// cycleError reports back, a spread of a fragment on path (the spreads
// followed so far), in gqlparser's words: the fragments between that
// fragment's spread and back, the first cycleNames of them.
func cycleError(path []*ast.FragmentSpread, back *ast.FragmentSpread) *gqlerror.Error {
	start := 0
	for i, sp := range path {
		if sp.Name == back.Name {
			start = i + 1
		}
	}
	var via strings.Builder
	for i, sp := range path[start:] {
		if i == cycleNames {
			fmt.Fprintf(&via, " and %d more", len(path)-start-i)
			break
		}
		if i == 0 {
			via.WriteString(" via ")
		} else {
			via.WriteString(", ")
		}
		fmt.Fprintf(&via, "%q", sp.Name)
	}
	return documentError(apperr.GraphQLValidationFailed, back.Position, "Cannot spread fragment %q within itself%s.", back.Name, via.String())
}

// depthWalker measures depth through fragment spreads, memoising each
// fragment. The document has no fragment cycle.
type depthWalker struct {
	*shape
	depths map[string]int
}

func (w *depthWalker) depth(set ast.SelectionSet) int {
	d := 0
	for _, sel := range set {
		w.visits++
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				continue
			}
			if len(s.SelectionSet) > 0 {
				d = max(d, 1+w.depth(s.SelectionSet))
			} else {
				d = max(d, 1)
			}
		case *ast.InlineFragment:
			d = max(d, w.depth(s.SelectionSet))
		case *ast.FragmentSpread:
			d = max(d, w.fragmentDepth(s.Name))
		}
	}
	return d
}

func (w *depthWalker) fragmentDepth(name string) int {
	if d, ok := w.depths[name]; ok {
		return d
	}
	f, ok := w.fragments[name]
	if !ok {
		return 0
	}
	d := w.depth(f.SelectionSet)
	w.depths[name] = d
	return d
}
