package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/ratelimit"
)

// mutationLimit refuses, whole and before it runs, a mutation operation
// that its caller's mutation rate cannot take: each root field costs one.
// The refusal is RATE_LIMITED with retryAfter (HTTP 429 with Retry-After
// over plain HTTP). Anonymous callers are not counted: every mutation
// refuses them anyway. It is safe for concurrent use.
type mutationLimit struct {
	limits  *ratelimit.Limits
	present graphql.ErrorPresenterFunc
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = mutationLimit{}

// ExtensionName names the extension in gqlgen's stats.
func (mutationLimit) ExtensionName() string { return "MutationRateLimit" }

// Validate accepts any schema.
func (mutationLimit) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation counts a mutation's root fields against its caller's
// rate.
func (l mutationLimit) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Mutation {
		return next(ctx)
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return next(ctx)
	}
	fields := 0
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Mutation"}) {
		if f.Name != "__typename" {
			fields++
		}
	}
	if err := l.limits.Mutation(p, fields); err != nil {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{l.present(ctx, err)}})
	}
	return next(ctx)
}
