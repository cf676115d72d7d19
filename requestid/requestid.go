// Package requestid gives every HTTP request an id that its log lines carry
// and its response echoes in the X-Request-Id header, so that a client's
// report, a proxy's access log and the server's log lines can be matched.
//
// An incoming X-Request-Id is kept when it is sane (see Valid), so that an
// id set by a proxy or a client flows through; otherwise a new one is
// generated. The id travels in the request's context as data (FromContext);
// LogAttrs turns it into a log attribute for package logging.
//
// Everything here is safe for concurrent use.
package requestid

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
)

// Header is the request and response header that carries the id.
const Header = "X-Request-Id"

// MaxLen is the longest incoming id kept.
const MaxLen = 128

// LogKey is the log attribute that holds the id.
const LogKey = "request_id"

// contextKey is the context key of the id.
type contextKey struct{}

// Middleware gives each request an id: the request's own X-Request-Id when
// Valid, else a new UUID (version 7, so ids sort by time). It sets the id as
// the response's X-Request-Id before calling next, and puts it in the
// request's context.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(Header)
		if !Valid(id) {
			id = New()
		}
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}

// New returns a new id: a UUID of version 7.
func New() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does, and then
		// NewString panics as uuid.New does.
		return uuid.NewString()
	}
	return id.String()
}

// Valid reports whether an incoming id is kept: 1 to MaxLen characters among
// ASCII letters, digits and - _ . : / + = @, which covers UUIDs, ULIDs,
// hexadecimal and base64 ids and the ids of common proxies and load
// balancers, and keeps log lines and headers free of anything else.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '/', c == '+', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the id ctx carries, or "" when it carries none.
func FromContext(ctx context.Context) string {
	id, _ := ctx.Value(contextKey{}).(string)
	return id
}

// LogAttrs returns the id of ctx as the request_id log attribute, or nothing
// when ctx carries none. It is a logging.ContextAttrs.
func LogAttrs(ctx context.Context) []slog.Attr {
	if id := FromContext(ctx); id != "" {
		return []slog.Attr{slog.String(LogKey, id)}
	}
	return nil
}
