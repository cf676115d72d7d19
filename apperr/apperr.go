// Package apperr defines errors that a client can act on: each carries a
// stable code that the GraphQL layer puts in extensions.code. Any other error
// is internal and is never shown to a client.
package apperr

import (
	"errors"
	"fmt"
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

	// BadRequest refuses an HTTP request that is not a GraphQL request:
	// a body that is not JSON, parameters of the wrong shape, a batch.
	BadRequest Code = "BAD_REQUEST"

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
}

// Error returns the client-safe message.
func (e *Error) Error() string { return e.Message }

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
