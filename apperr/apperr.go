// Package apperr defines errors that a client can act on: each carries a
// stable code that the GraphQL layer puts in extensions.code. Any other error
// is internal and is never shown to a client. Extensions is the one
// definition of what a client sees of an Error: the GraphQL error presenter
// and WriteHTTP, for requests refused before they are GraphQL operations,
// both use it.
package apperr

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Code is a machine-readable error class, stable across releases.
type Code string

// The codes a client can act on, plus Internal for everything else.
const (
	Unauthenticated Code = "UNAUTHENTICATED"
	Forbidden       Code = "FORBIDDEN"
	NotFound        Code = "NOT_FOUND"
	BadUserInput    Code = "BAD_USER_INPUT"
	Conflict        Code = "CONFLICT"
	RateLimited     Code = "RATE_LIMITED"
	Internal        Code = "INTERNAL"

	// Rejected refuses a message that the application's pre-send hook
	// rejected (or could not check, when it fails closed); the message
	// says why.
	Rejected Code = "REJECTED"

	// BadRequest refuses an HTTP request that is not a GraphQL request:
	// a body that is not JSON, parameters of the wrong shape, a batch.
	BadRequest Code = "BAD_REQUEST"
	// UnsupportedMediaType refuses a request body of a content type other
	// than JSON (HTTP 415).
	UnsupportedMediaType Code = "UNSUPPORTED_MEDIA_TYPE"
	// MethodNotAllowed refuses an HTTP method the path does not serve, and
	// mutations over GET (HTTP 405).
	MethodNotAllowed Code = "METHOD_NOT_ALLOWED"
	// Timeout ends an operation that ran longer than the server allows.
	Timeout Code = "TIMEOUT"

	// GraphQLParseFailed refuses a document that does not parse, or is
	// over the token limit; gqlgen's own parser uses the same code.
	GraphQLParseFailed Code = "GRAPHQL_PARSE_FAILED"
	// GraphQLValidationFailed refuses a document that breaks a GraphQL
	// validation rule; gqlgen's own validation uses the same code.
	GraphQLValidationFailed Code = "GRAPHQL_VALIDATION_FAILED"
	// ComplexityLimitExceeded refuses an operation whose cost is over the
	// server's limit.
	ComplexityLimitExceeded Code = "COMPLEXITY_LIMIT_EXCEEDED"
)

// Error is an error whose message is safe to show to the client.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when positive, is how long the client should wait before
	// trying again (RATE_LIMITED).
	RetryAfter time.Duration
}

// Error returns the client-safe message.
func (e *Error) Error() string { return e.Message }

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up; 0 when
// RetryAfter is not positive.
func (e *Error) RetryAfterSeconds() int64 {
	if e.RetryAfter <= 0 {
		return 0
	}
	return int64(math.Ceil(e.RetryAfter.Seconds()))
}

// Extensions are the GraphQL error extensions that carry e to a client:
// "code", and "retryAfter" in seconds when RetryAfter is positive.
func (e *Error) Extensions() map[string]any {
	ext := map[string]any{"code": string(e.Code)}
	if s := e.RetryAfterSeconds(); s > 0 {
		ext["retryAfter"] = s
	}
	return ext
}

// httpBody is the GraphQL-shaped body WriteHTTP writes.
type httpBody struct {
	Errors []httpError `json:"errors"`
}

type httpError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// WriteHTTP answers an HTTP request refused before it became a GraphQL
// operation (a bad token, an unreadable body, a wrong method) with status
// and a GraphQL-shaped JSON body holding e, so that GraphQL clients show
// the message. A positive RetryAfter also sets the Retry-After header. It
// never echoes the request.
func WriteHTTP(w http.ResponseWriter, status int, e *Error) {
	body, err := json.Marshal(httpBody{Errors: []httpError{{Message: e.Message, Extensions: e.Extensions()}}})
	if err != nil {
		// Strings and integers always encode; this is not reached.
		http.Error(w, string(e.Code), status)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if s := e.RetryAfterSeconds(); s > 0 {
		h.Set("Retry-After", strconv.FormatInt(s, 10))
	}
	w.WriteHeader(status)
	// A failed write means the client has gone; there is no one left to tell.
	_, _ = w.Write(body)
}

// New returns an Error with the given code and a fmt.Sprintf message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, "" for a nil
// error and Internal for any other error.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// InternalError is a failure the client cannot act on. Its text, which may
// hold SQL or other details, is for the server's log only: clients see
// INTERNAL and nothing more.
type InternalError struct {
	// Op says what was being done, e.g. "send message".
	Op  string
	Err error
}

// Error returns the details, for the log.
func (e *InternalError) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *InternalError) Unwrap() error { return e.Err }

// Wrap marks err as internal, naming what was being done. A nil err stays
// nil and an *Error passes through unchanged: it is already fit for clients.
func Wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &InternalError{Op: op, Err: err}
}
