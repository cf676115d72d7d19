package server

import (
	"context"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/parleychat/parley/graph"
)

// DocumentWork runs the document limit's analysis on query with limits
// (zero fields take DefaultLimits) and returns the selections it visited
// and the selections written in the document; ok is false when query does
// not parse within the token limit (the analysis then stops at once).
func DocumentWork(query string, vars map[string]any, limits Limits) (visits, written int, ok bool) {
	limits = withDefaults(limits)
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, limits.MaxTokens)
	if err != nil {
		return 0, 0, false
	}
	cfg := graph.Config{}
	setComplexity(&cfg.Complexity, 50)
	es := graph.NewExecutableSchema(cfg)
	visits, gerr := checkShape(doc, es.Schema(), limits)
	if gerr == nil {
		for _, op := range doc.Operations {
			_, v := operationCost(context.Background(), es, doc, op, vars, limits.MaxComplexity)
			visits += v
		}
	}
	return visits, selections(doc), true
}
