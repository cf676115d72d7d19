package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
)

// presentError turns errors into what a client sees:
//   - an *apperr.Error keeps its message and puts its code in extensions.code;
//   - an *apperr.InternalError, or any error that is not a *gqlerror.Error,
//     is logged with its details and shown as INTERNAL, with no text from
//     the cause: SQL and stack traces never reach a client;
//   - what gqlgen and gqlparser report about the request itself (parse and
//     validation errors, limits, bad arguments, introspection disabled)
//     passes as it is.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		path := graphql.GetPath(ctx)
		var locations []gqlerror.Location
		gerr, isGQL := errors.AsType[*gqlerror.Error](err)
		if isGQL {
			path, locations = gerr.Path, gerr.Locations
		}
		if ae, ok := errors.AsType[*apperr.Error](err); ok {
			out := &gqlerror.Error{Message: ae.Message, Path: path, Locations: locations, Err: ae}
			out.Extensions = map[string]any{"code": string(ae.Code)}
			return out
		}
		if _, hidden := errors.AsType[*apperr.InternalError](err); isGQL && !hidden {
			return gerr
		}
		log.ErrorContext(ctx, "internal error", "path", path.String(), "err", err)
		out := &gqlerror.Error{Message: "internal error", Path: path, Locations: locations}
		out.Extensions = map[string]any{"code": string(apperr.Internal)}
		return out
	}
}

// recoverPanic logs a resolver panic with its stack; the client sees INTERNAL.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return &apperr.InternalError{Op: "resolve", Err: fmt.Errorf("panic: %v", p)}
	}
}
