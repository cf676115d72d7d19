package server

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
)

// textCheck refuses, before it runs, an operation with a string argument
// that is not valid UTF-8 or holds a NUL character (U+0000): PostgreSQL
// stores neither and SQLite would, so both refuse it alike, with
// BAD_USER_INPUT naming the argument, and nothing is written. Every string
// counts, nested ones too: in input objects, lists and JSON values (their
// keys included), whether written in the document or passed as variables;
// ID values are strings too. It looks at every argument of every field of
// the operation, through its fragments, once. It is safe for concurrent
// use.
type textCheck struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = textCheck{}

// ExtensionName names the extension in gqlgen's stats.
func (textCheck) ExtensionName() string { return "TextCheck" }

// Validate accepts any schema.
func (textCheck) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext checks the arguments of the validated operation,
// with its coerced variables.
func (textCheck) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	w := textWalker{vars: rc.Variables, doc: rc.Doc, seen: map[string]bool{}}
	return w.set(rc.Operation.SelectionSet)
}

type textWalker struct {
	vars map[string]any
	doc  *ast.QueryDocument
	seen map[string]bool // fragments already checked
}

func (w *textWalker) set(set ast.SelectionSet) *gqlerror.Error {
	for _, sel := range set {
		var err *gqlerror.Error
		switch s := sel.(type) {
		case *ast.Field:
			err = w.field(s)
		case *ast.InlineFragment:
			err = w.set(s.SelectionSet)
		case *ast.FragmentSpread:
			if w.seen[s.Name] {
				continue
			}
			w.seen[s.Name] = true
			if f := w.doc.Fragments.ForName(s.Name); f != nil {
				err = w.set(f.SelectionSet)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *textWalker) field(f *ast.Field) *gqlerror.Error {
	for _, a := range f.Arguments {
		v, err := a.Value.Value(w.vars)
		if err != nil {
			continue // validation has refused such a value
		}
		if path, why := badText(v); why != "" {
			name := a.Name + path
			ae := apperr.New(apperr.BadUserInput, "argument %s of %s %s", name, f.Name, why)
			gerr := &gqlerror.Error{Message: ae.Message, Err: ae}
			if a.Position != nil {
				gerr.Locations = []gqlerror.Location{{Line: a.Position.Line, Column: a.Position.Column}}
			}
			return gerr
		}
	}
	return w.set(f.SelectionSet)
}

// badText finds the first string in v that is not valid UTF-8 or holds
// NUL, and returns where it is below v (".key", "[2]"; a key itself is
// named by its path) and what is wrong; why is "" when v is clean.
func badText(v any) (path, why string) {
	switch x := v.(type) {
	case string:
		return "", textProblem(x)
	case []any:
		for i, e := range x {
			if p, why := badText(e); why != "" {
				return fmt.Sprintf("[%d]%s", i, p), why
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // the same answer every time
		for _, k := range keys {
			if why := textProblem(k); why != "" {
				return "." + strings.ToValidUTF8(strings.ReplaceAll(k, "\x00", `\u0000`), "\uFFFD"), "has a key that " + why
			}
			if p, why := badText(x[k]); why != "" {
				return "." + k + p, why
			}
		}
	}
	return "", ""
}

// textProblem says what is wrong with s, or "".
func textProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "holds a NUL character (U+0000)"
	}
	return ""
}
