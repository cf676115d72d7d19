package server

import (
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
)

// conflictBudget times Limits.MaxFields is how many fields the conflict
// check may look at beyond the other checks' visits; past it, the check
// stops and leaves the rest to validation (which Limits.MaxFields bounds).
const conflictBudget = 8

// conflictCheck finds what gqlparser's OverlappingFieldsCanBeMerged rule
// finds first, without its pairwise comparisons: within one selection set,
// through its inline fragments and fragment spreads, two fields of one
// response name and one parent type that differ in name or arguments. It
// keeps the first field of each response name and compares each later one
// with it, and collects each fragment's fields once. It reports a subset of
// what validation reports (never a conflict validation would allow), so that
// a document of hundreds of conflicting fields is refused at the first.
type conflictCheck struct {
	*shape
	memo   map[string]*fieldSet
	budget int
}

// fieldKey is a response name under a parent type.
type fieldKey struct{ parent, response string }

// fieldSet is the fields of a selection set, the first of each key.
type fieldSet struct {
	first map[fieldKey]*ast.Field
	order []fieldKey
}

func newFieldSet() *fieldSet { return &fieldSet{first: map[fieldKey]*ast.Field{}} }

// document checks every selection set of doc.
func (c *conflictCheck) document(doc *ast.QueryDocument) *gqlerror.Error {
	for _, op := range doc.Operations {
		root := c.rootType(op.Operation)
		fs := newFieldSet()
		if err := c.collect(fs, op.SelectionSet, root); err != nil {
			return err
		}
		if err := c.nested(op.SelectionSet, root); err != nil {
			return err
		}
	}
	for _, f := range doc.Fragments {
		if _, err := c.fragmentFields(f.Name); err != nil {
			return err
		}
		if err := c.nested(f.SelectionSet, f.TypeCondition); err != nil {
			return err
		}
	}
	return nil
}

func (c *conflictCheck) rootType(op ast.Operation) string {
	var def *ast.Definition
	switch op {
	case ast.Query:
		def = c.schema.Query
	case ast.Mutation:
		def = c.schema.Mutation
	case ast.Subscription:
		def = c.schema.Subscription
	}
	if def == nil {
		return ""
	}
	return def.Name
}

// nested checks the selection sets of set's fields, and of the fields of
// its inline fragments; those of its fragment spreads are checked with
// their fragment.
func (c *conflictCheck) nested(set ast.SelectionSet, parent string) *gqlerror.Error {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if len(s.SelectionSet) == 0 {
				continue
			}
			typ := c.fieldType(parent, s.Name)
			fs := newFieldSet()
			if err := c.collect(fs, s.SelectionSet, typ); err != nil {
				return err
			}
			if err := c.nested(s.SelectionSet, typ); err != nil {
				return err
			}
		case *ast.InlineFragment:
			if err := c.nested(s.SelectionSet, condition(s.TypeCondition, parent)); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldType names the type of parent's field name, or is "" when either
// is unknown (validation reports it).
func (c *conflictCheck) fieldType(parent, name string) string {
	def := c.schema.Types[parent]
	if def == nil {
		return ""
	}
	f := def.Fields.ForName(name)
	if f == nil {
		return ""
	}
	return f.Type.Name()
}

func condition(typeCondition, parent string) string {
	if typeCondition != "" {
		return typeCondition
	}
	return parent
}

// collect adds the fields of set, whose type is parent, to fs.
func (c *conflictCheck) collect(fs *fieldSet, set ast.SelectionSet, parent string) *gqlerror.Error {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if err := c.add(fs, fieldKey{parent, responseName(s)}, s); err != nil {
				return err
			}
		case *ast.InlineFragment:
			if err := c.collect(fs, s.SelectionSet, condition(s.TypeCondition, parent)); err != nil {
				return err
			}
		case *ast.FragmentSpread:
			frag, err := c.fragmentFields(s.Name)
			if err != nil || frag == nil {
				return err
			}
			for _, k := range frag.order {
				if err := c.add(fs, k, frag.first[k]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fragmentFields collects a fragment's fields once.
func (c *conflictCheck) fragmentFields(name string) (*fieldSet, *gqlerror.Error) {
	if fs, ok := c.memo[name]; ok {
		return fs, nil
	}
	f := c.fragments[name]
	if f == nil {
		return nil, nil
	}
	fs := newFieldSet()
	c.memo[name] = fs
	return fs, c.collect(fs, f.SelectionSet, f.TypeCondition)
}

// add adds f under k, or compares it with the field already there. Past
// the budget it does nothing.
func (c *conflictCheck) add(fs *fieldSet, k fieldKey, f *ast.Field) *gqlerror.Error {
	if c.visits >= c.budget {
		return nil
	}
	c.visits++
	prev, ok := fs.first[k]
	if !ok {
		fs.first[k] = f
		fs.order = append(fs.order, k)
		return nil
	}
	var why string
	switch {
	case prev.Name != f.Name:
		why = `"` + prev.Name + `" and "` + f.Name + `" are different fields`
	case !sameArguments(prev.Arguments, f.Arguments):
		why = "they have differing arguments"
	default:
		return nil
	}
	return documentError(apperr.GraphQLValidationFailed, f.Position,
		"Fields %q conflict because %s. Use different aliases on the fields to fetch both if this was intentional.", k.response, why)
}

func responseName(f *ast.Field) string {
	if f.Alias != "" {
		return f.Alias
	}
	return f.Name
}

// sameArguments compares argument lists as gqlparser's
// OverlappingFieldsCanBeMerged does: in any order, values equal with input
// object fields in any order.
func sameArguments(a, b ast.ArgumentList) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y *ast.Argument) bool { return x.Name == y.Name && sameValue(x.Value, y.Value) }) {
			return false
		}
	}
	return true
}

func sameValue(a, b *ast.Value) bool {
	if a.Kind != b.Kind || a.Raw != b.Raw || len(a.Children) != len(b.Children) {
		return false
	}
	ca, cb := a.Children, b.Children
	if a.Kind == ast.ObjectValue {
		byName := func(x, y *ast.ChildValue) int { return strings.Compare(x.Name, y.Name) }
		ca, cb = slices.SortedStableFunc(slices.Values(ca), byName), slices.SortedStableFunc(slices.Values(cb), byName)
	}
	for i := range ca {
		if ca[i].Name != cb[i].Name || !sameValue(ca[i].Value, cb[i].Value) {
			return false
		}
	}
	return true
}
