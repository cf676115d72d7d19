package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
)

// presentError turns errors into what a client sees; it is the one place
// that builds a GraphQL error's extensions:
//   - an *apperr.Error keeps its message and puts its code in
//     extensions.code;
//   - an *apperr.InternalError, or any error that is not a *gqlerror.Error,
//     is logged with its details and shown as INTERNAL, with no text from
//     the cause: SQL and stack traces never reach a client;
//   - what gqlgen and gqlparser report about the request itself (parse and
//     validation errors with their codes) passes as it is; such an error
//     without a code gets BAD_USER_INPUT when it is about a field (an
//     argument that does not decode), BAD_REQUEST otherwise.
//
// Presenting an error it presented before gives the same error.
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		path := graphql.GetPath(ctx)
		var locations []gqlerror.Location
		gerr, isGQL := errors.AsType[*gqlerror.Error](err)
		if isGQL {
			path, locations = gerr.Path, gerr.Locations
		}
		if ae, ok := errors.AsType[*apperr.Error](err); ok {
			return &gqlerror.Error{Message: ae.Message, Path: path, Locations: locations, Err: ae, Extensions: ae.Extensions()}
		}
		if _, hidden := errors.AsType[*apperr.InternalError](err); isGQL && !hidden {
			if errorCode(gerr) != "" {
				return gerr
			}
			code := apperr.BadRequest
			if len(gerr.Path) > 0 {
				code = apperr.BadUserInput
			}
			coded := *gerr
			coded.Extensions = (&apperr.Error{Code: code}).Extensions()
			return &coded
		}
		if ae := stopped(ctx); ae != nil {
			// Whatever failed, it failed because the request was stopped.
			log.DebugContext(ctx, "operation stopped", "path", path.String(), "err", err)
			return &gqlerror.Error{Message: ae.Message, Path: path, Locations: locations, Err: ae, Extensions: ae.Extensions()}
		}
		log.ErrorContext(ctx, "internal error", "path", path.String(), "err", err)
		return &gqlerror.Error{Message: "internal error", Path: path, Locations: locations, Extensions: (&apperr.Error{Code: apperr.Internal}).Extensions()}
	}
}

// timeoutError ends a request that ran longer than its timeout.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("request timeout after %v", e.after) }

// stopped says why ctx ended, as a client sees it: TIMEOUT when the
// request's timeout passed; INTERNAL when the client went away (or ended
// the operation), since no one reads the answer. It is nil while ctx is
// live.
func stopped(ctx context.Context) *apperr.Error {
	if ctx.Err() == nil {
		return nil
	}
	if te, ok := errors.AsType[*timeoutError](context.Cause(ctx)); ok {
		return apperr.New(apperr.Timeout, "the request took longer than %v and was stopped", te.after)
	}
	return apperr.New(apperr.Internal, "the request was cancelled")
}

// errorCode is a presented error's extensions.code, or "".
func errorCode(e *gqlerror.Error) string {
	code, _ := e.Extensions["code"].(string)
	return code
}

// recoverPanic logs a resolver panic with its stack; the client sees INTERNAL.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return &apperr.InternalError{Op: "resolve", Err: fmt.Errorf("panic: %v", p)}
	}
}

// maxErrors is how many errors an answer carries; when there are more, one
// last error says how many were left out.
const maxErrors = 20

// presentedTransport gives its transport an executor whose refusals of an
// operation (parse, validation, limits) come presented and capped to
// maxErrors: gqlgen's transports choose the HTTP status and the WebSocket
// message from their codes, and its WebSocket transport sends some of them
// without presenting them at all.
type presentedTransport struct {
	graphql.Transport
	present graphql.ErrorPresenterFunc
}

// Do serves the request with the presenting executor.
func (t presentedTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.Transport.Do(w, r, presentingExecutor{GraphExecutor: exec, present: t.present})
}

type presentingExecutor struct {
	graphql.GraphExecutor
	present graphql.ErrorPresenterFunc
}

// CreateOperationContext presents the errors of a refused operation.
func (e presentingExecutor) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	oc, errs := e.GraphExecutor.CreateOperationContext(ctx, params)
	if len(errs) == 0 {
		return oc, errs
	}
	return oc, presentList(ctx, e.present, errs)
}

// presentList presents errs; when there are more than maxErrors+1, the
// first maxErrors and one that says how many more there are, with the code
// of the first of them.
func presentList(ctx context.Context, present graphql.ErrorPresenterFunc, errs gqlerror.List) gqlerror.List {
	shown := len(errs)
	if shown > maxErrors+1 {
		shown = maxErrors
	}
	out := make(gqlerror.List, 0, shown+1)
	for _, err := range errs[:shown] {
		out = append(out, present(ctx, err))
	}
	if rest := len(errs) - shown; rest > 0 {
		code := apperr.Code(errorCode(present(ctx, errs[maxErrors])))
		out = append(out, present(ctx, apperr.New(code, "%d more errors not shown", rest)))
	}
	return out
}

// capErrors caps the errors of every response, execution errors included,
// to maxErrors and one that says how many more there were.
func capErrors(present graphql.ErrorPresenterFunc) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		resp := next(ctx)
		if resp != nil && len(resp.Errors) > maxErrors+1 {
			resp.Errors = presentList(ctx, present, resp.Errors)
		}
		return resp
	}
}
