package server

import (
	"context"
	"math"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/parleychat/parley/graph"
	"github.com/parleychat/parley/graph/model"
	"github.com/parleychat/parley/models"
)

// operationCost is op's complexity as gqlgen's complexity package computes
// it (one per field, unless the schema's complexity function says
// otherwise; __schema free; an interface field costs its most expensive
// implementation), on a document that need not be validated yet, with the
// raw variables of the request. Each fragment's cost is computed once, so
// the work is linear in the document. Adding up the root selections stops
// at the first that takes the cost past limit; costs saturate instead of
// overflowing. It also returns the selections it visited.
func operationCost(ctx context.Context, es graphql.ExecutableSchema, doc *ast.QueryDocument, op *ast.OperationDefinition, vars map[string]any, limit int) (int, int) {
	schema := es.Schema()
	c := &coster{ctx: ctx, es: es, schema: schema, doc: doc, op: op, vars: vars, memo: map[string]int{}}
	var root *ast.Definition
	switch op.Operation {
	case ast.Query:
		root = schema.Query
	case ast.Mutation:
		root = schema.Mutation
	case ast.Subscription:
		root = schema.Subscription
	}
	total := 0
	for _, sel := range op.SelectionSet {
		total = satAdd(total, c.selection(sel, root))
		if total > limit {
			break
		}
	}
	return total, c.visits
}

type coster struct {
	ctx    context.Context
	es     graphql.ExecutableSchema
	schema *ast.Schema
	doc    *ast.QueryDocument
	op     *ast.OperationDefinition
	vars   map[string]any
	// memo holds each fragment's cost, computed once; the document has no
	// fragment cycle.
	memo   map[string]int
	visits int
}

// typename is the definition gqlparser gives __typename.
var typename = &ast.FieldDefinition{Name: "__typename", Type: ast.NamedType("String", nil)}

func (c *coster) set(set ast.SelectionSet, parent *ast.Definition) int {
	total := 0
	for _, sel := range set {
		total = satAdd(total, c.selection(sel, parent))
	}
	return total
}

func (c *coster) selection(sel ast.Selection, parent *ast.Definition) int {
	c.visits++
	switch s := sel.(type) {
	case *ast.Field:
		return c.field(s, parent)
	case *ast.InlineFragment:
		if s.TypeCondition != "" {
			parent = c.schema.Types[s.TypeCondition]
		}
		return c.set(s.SelectionSet, parent)
	case *ast.FragmentSpread:
		return c.fragment(s.Name)
	}
	return 0
}

func (c *coster) fragment(name string) int {
	if cost, ok := c.memo[name]; ok {
		return cost
	}
	f := c.doc.Fragments.ForName(name)
	if f == nil {
		return 0
	}
	cost := c.set(f.SelectionSet, c.schema.Types[f.TypeCondition])
	c.memo[name] = cost
	return cost
}

func (c *coster) field(f *ast.Field, parent *ast.Definition) int {
	var def *ast.FieldDefinition
	switch {
	case f.Name == "__typename":
		def = typename
	case parent != nil:
		def = parent.Fields.ForName(f.Name)
	}
	if def == nil {
		// Unknown to the schema: validation refuses it; count it plainly.
		return satAdd(1, c.set(f.SelectionSet, nil))
	}
	typ := c.schema.Types[def.Type.Name()]
	if typ != nil && typ.Name == "__Schema" {
		return 0
	}
	child := 0
	if typ == nil || typ.Kind == ast.Object || typ.Kind == ast.Interface || typ.Kind == ast.Union {
		child = c.set(f.SelectionSet, typ)
	}
	args := c.args(def, f)
	if parent != nil && parent.Kind == ast.Interface {
		worst := 0
		for _, impl := range c.schema.GetPossibleTypes(parent) {
			worst = max(worst, c.fieldCost(impl, typ, f.Name, child, args))
		}
		return worst
	}
	return c.fieldCost(parent, typ, f.Name, child, args)
}

// fieldCost is the schema's complexity function of parent.field, or
// else one plus the child cost (one for scalars and enums).
func (c *coster) fieldCost(parent, typ *ast.Definition, field string, child int, args map[string]any) int {
	if parent != nil {
		if cost, ok := c.es.Complexity(c.ctx, parent.Name, field, child, args); ok && cost >= 1 {
			return cost
		}
	}
	if typ != nil && (typ.Kind == ast.Scalar || typ.Kind == ast.Enum) {
		return 1
	}
	return satAdd(1, child)
}

// args are f's argument values as gqlgen's ArgumentMap gives them after
// validation: a variable's value (the request's, else the variable's
// default), else a literal, else the argument's default. Values that do
// not decode are left out; validation refuses them.
func (c *coster) args(def *ast.FieldDefinition, f *ast.Field) map[string]any {
	if len(def.Arguments) == 0 {
		return nil
	}
	out := make(map[string]any, len(def.Arguments))
	for _, ad := range def.Arguments {
		if a := f.Arguments.ForName(ad.Name); a != nil {
			if v, ok := c.value(a.Value); ok {
				out[ad.Name] = v
				continue
			}
		}
		if ad.DefaultValue != nil {
			if v, err := ad.DefaultValue.Value(nil); err == nil {
				out[ad.Name] = v
			}
		}
	}
	return out
}

func (c *coster) value(v *ast.Value) (any, bool) {
	if v.Kind != ast.Variable {
		out, err := v.Value(c.vars)
		return out, err == nil
	}
	if out, ok := c.vars[v.Raw]; ok {
		return out, true
	}
	if vd := c.op.VariableDefinitions.ForName(v.Raw); vd != nil && vd.DefaultValue != nil {
		out, err := vd.DefaultValue.Value(nil)
		return out, err == nil
	}
	return nil, false
}

// satAdd adds costs, saturating at math.MaxInt.
func satAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

// satMul multiplies costs, saturating at math.MaxInt.
func satMul(a, b int) int {
	if a != 0 && b > math.MaxInt/a {
		return math.MaxInt
	}
	return a * b
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
	c.Query.Messages = func(child int, _ string, first *int, _ *string, last *int, _ *string, _ *model.MessageFilter) int {
		return satAdd(1, satMul(child, size(first, last)))
	}
	c.Query.Members = func(child int, _ string, first *int, _ *string, _ *models.MemberStatus) int {
		return satAdd(1, satMul(child, size(first, nil)))
	}
	c.Query.MyChannels = func(child int, first *int, _ *string, _ *model.ChannelOrder, _ *model.ChannelFilter) int {
		return satAdd(1, satMul(child, size(first, nil)))
	}
	// Mutations that return one item per input item.
	c.Mutation.AddMembers = func(child int, _ string, members []*model.AddMemberInput) int {
		return satAdd(1, satMul(child, max(len(members), 1)))
	}
	c.Mutation.SetMemberState = func(child int, channelIDs []string, _ models.JSON) int {
		return satAdd(1, satMul(child, max(len(channelIDs), 1)))
	}
	c.Mutation.UpsertUsers = func(child int, users []*model.UpsertUserInput) int {
		return satAdd(1, satMul(child, max(len(users), 1)))
	}
	c.Query.PublicChannels = func(child int, first *int, _ *string) int {
		return satAdd(1, satMul(child, size(first, nil)))
	}
}
