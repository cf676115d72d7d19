package server

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/graph"
	"github.com/parleychat/parley/graph/model"
)

// shapeLimit rejects documents that are too deep or have too many fields or
// aliases. It runs before gqlgen validates the document, whose
// overlapping-fields rule is quadratic in the number of same-named fields:
// such a document must be refused before that work. Verdicts are cached per
// query text.
type shapeLimit struct {
	limits Limits

	mu       sync.Mutex
	verdicts map[string]*gqlerror.Error
}

// shapeCacheCap bounds the verdict cache; it is cleared when full.
const shapeCacheCap = 1000

func newShapeLimit(limits Limits) *shapeLimit {
	return &shapeLimit{limits: limits, verdicts: map[string]*gqlerror.Error{}}
}

// ExtensionName names the extension in gqlgen's stats.
func (*shapeLimit) ExtensionName() string { return "ShapeLimit" }

// Validate accepts any schema.
func (*shapeLimit) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters checks the raw query before it is validated.
func (l *shapeLimit) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		return nil
	}
	l.mu.Lock()
	verdict, ok := l.verdicts[p.Query]
	l.mu.Unlock()
	if ok {
		return verdict
	}
	verdict = l.check(p.Query)
	l.mu.Lock()
	if len(l.verdicts) >= shapeCacheCap {
		clear(l.verdicts)
	}
	l.verdicts[p.Query] = verdict
	l.mu.Unlock()
	return verdict
}

func (l *shapeLimit) check(query string) *gqlerror.Error {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, l.limits.MaxTokens)
	if err != nil {
		// Parse errors are reported by gqlgen's own parse, with its codes.
		return nil
	}
	w := shapeWalker{fragments: map[string]*ast.FragmentDefinition{}, depths: map[string]int{}}
	var c selectionCount
	for _, f := range doc.Fragments {
		w.fragments[f.Name] = f
		c.add(f.SelectionSet)
	}
	depth := 0
	for _, op := range doc.Operations {
		c.add(op.SelectionSet)
		depth = max(depth, w.depth(op.SelectionSet))
	}
	if c.fields > l.limits.MaxFields {
		return limitError("document selects %d fields; the limit is %d", c.fields, l.limits.MaxFields)
	}
	if c.aliases > l.limits.MaxAliases {
		return limitError("document uses %d aliases; the limit is %d", c.aliases, l.limits.MaxAliases)
	}
	if depth > l.limits.MaxDepth {
		return limitError("document is %d levels deep; the limit is %d", depth, l.limits.MaxDepth)
	}
	return nil
}

func limitError(format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": string(apperr.BadUserInput)}
	return err
}

// selectionCount counts the fields (and fragment spreads) and aliases
// written in a document.
type selectionCount struct{ fields, aliases int }

func (c *selectionCount) add(set ast.SelectionSet) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			c.fields++
			if s.Alias != "" && s.Alias != s.Name {
				c.aliases++
			}
			c.add(s.SelectionSet)
		case *ast.InlineFragment:
			c.add(s.SelectionSet)
		case *ast.FragmentSpread:
			c.fields++
		}
	}
}

// shapeWalker measures depth through fragment spreads, memoising each
// fragment; a fragment cycle counts as depth 0 here and is rejected by
// validation afterwards.
type shapeWalker struct {
	fragments map[string]*ast.FragmentDefinition
	depths    map[string]int
}

func (w *shapeWalker) depth(set ast.SelectionSet) int {
	d := 0
	for _, sel := range set {
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

func (w *shapeWalker) fragmentDepth(name string) int {
	if d, ok := w.depths[name]; ok {
		return d
	}
	f, ok := w.fragments[name]
	if !ok {
		return 0
	}
	w.depths[name] = 0
	d := w.depth(f.SelectionSet)
	w.depths[name] = d
	return d
}

// setComplexity makes list fields cost their selection times their page
// size (defaultPage when the client gives none).
func setComplexity(c *graph.ComplexityRoot, defaultPage int) {
	size := func(first, last *int) int {
		switch {
		case first != nil:
			return max(*first, 1)
		case last != nil:
			return max(*last, 1)
		}
		return defaultPage
	}
	c.Query.Messages = func(child int, _ string, first *int, _ *string, last *int, _ *string) int {
		return 1 + child*size(first, last)
	}
	c.Query.Members = func(child int, _ string, first *int, _ *string) int {
		return 1 + child*size(first, nil)
	}
	c.Query.MyChannels = func(child int, first *int, _ *string, _ *model.ChannelOrder) int {
		return 1 + child*size(first, nil)
	}
	c.Query.PublicChannels = func(child int, first *int, _ *string) int {
		return 1 + child*size(first, nil)
	}
}
