// Package logging builds Parley's slog handler: text or JSON lines, each
// record completed with attributes that functions read from the record's
// context, such as the request id (package requestid) and, once tracing
// exists, the trace id. Those functions are the hook: a new per-request
// attribute is one more ContextAttrs passed to NewHandler.
//
// Records logged without a context (Info rather than InfoContext) get no
// such attributes. Handlers are safe for concurrent use, as slog's are.
package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
)

// Format is how records are written.
type Format string

// The formats.
const (
	// Text is slog's key=value lines.
	Text Format = "text"
	// JSON is one JSON object per line, for log collectors.
	JSON Format = "json"
)

// ParseFormat parses text or json, in any case.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case Text, JSON:
		return f, nil
	}
	return "", errors.New("want text or json")
}

// ContextAttrs returns the attributes that a record logged with ctx gets,
// such as request_id; nil when ctx has none. It must be cheap and safe for
// concurrent use: it runs for every record.
type ContextAttrs func(ctx context.Context) []slog.Attr

// NewHandler returns a handler that writes records at level or above to w
// in format, each with the attributes that attrs find in its context. The
// attributes go where the record's own go: inside the groups of WithGroup,
// if any.
func NewHandler(w io.Writer, format Format, level slog.Leveler, attrs ...ContextAttrs) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == JSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	if len(attrs) == 0 {
		return h
	}
	return &contextHandler{Handler: h, attrs: attrs}
}

// contextHandler adds the attributes of ContextAttrs to each record.
type contextHandler struct {
	slog.Handler
	attrs []ContextAttrs
}

// Handle adds the context's attributes to r and passes it on.
func (h *contextHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, fn := range h.attrs {
		r.AddAttrs(fn(ctx)...)
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the context's attributes on the new handler.
func (h *contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &contextHandler{Handler: h.Handler.WithAttrs(attrs), attrs: h.attrs}
}

// WithGroup keeps the context's attributes on the new handler.
func (h *contextHandler) WithGroup(name string) slog.Handler {
	return &contextHandler{Handler: h.Handler.WithGroup(name), attrs: h.attrs}
}
