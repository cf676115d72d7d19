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

// presentError turns errors into what a client sees. An *apperr.Error keeps
// its message and puts its code in extensions.code; errors that gqlgen or
// gqlparser made about the request (parse, validation, limits) pass as they
// are; everything else is logged with its details and shown as INTERNAL with
// no text from the cause: SQL and stack traces never reach a client.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var ae *apperr.Error
		if errors.As(err, &ae) {
			gerr := gqlerror.WrapPath(graphql.GetPath(ctx), ae)
			if prior, ok := errors.AsType[*gqlerror.Error](err); ok {
				gerr.Locations = prior.Locations
			}
			gerr.Extensions = map[string]any{"code": string(ae.Code)}
			return gerr
		}
		if gerr, ok := errors.AsType[*gqlerror.Error](err); ok && gerr.Unwrap() == nil {
			return gerr
		}
		log.ErrorContext(ctx, "internal error", "path", graphql.GetPath(ctx).String(), "err", err)
		gerr := gqlerror.ErrorPathf(graphql.GetPath(ctx), "internal error")
		gerr.Extensions = map[string]any{"code": string(apperr.Internal)}
		return gerr
	}
}

// recoverPanic logs a resolver panic with its stack; the client sees INTERNAL.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("panic in resolver")
	}
}
