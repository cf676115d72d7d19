package chat

import (
	"encoding/base64"
	"encoding/json"

	"github.com/parleychat/parley/apperr"
)

// PageArgs are Relay connection arguments.
type PageArgs struct {
	First  *int
	After  *string
	Last   *int
	Before *string
}

// Page is one page of a connection: items with their cursors, in order.
type Page[T any] struct {
	Items       []T
	Cursors     []string
	HasNext     bool
	HasPrevious bool
}

// cursor is the decoded form of an opaque cursor: a sort key and a tie-break id.
type cursor struct {
	Kind string `json:"k"`
	S    string `json:"s,omitempty"`
	N    int64  `json:"n,omitempty"`
	ID   string `json:"id,omitempty"`
}

func encodeCursor(c cursor) string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a struct of strings and ints always marshals
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor decodes an opaque cursor of the given kind; BAD_USER_INPUT when
// it is not one.
func decodeCursor(s *string, kind string) (*cursor, error) {
	if s == nil {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Kind != kind {
		return nil, apperr.New(apperr.BadUserInput, "invalid cursor %q", *s)
	}
	return &c, nil
}

// pageSize resolves first/last to (size, backward). Both at once, negatives and
// sizes over the limit are BAD_USER_INPUT. Without either, it returns the
// default size in the direction given by defaultBackward.
func (s *Service) pageSize(a PageArgs, defaultBackward bool) (int, bool, error) {
	if a.First != nil && a.Last != nil {
		return 0, false, apperr.New(apperr.BadUserInput, "pass first or last, not both")
	}
	n, backward := s.limits.DefaultPageSize, defaultBackward
	switch {
	case a.First != nil:
		n, backward = *a.First, false
	case a.Last != nil:
		n, backward = *a.Last, true
	}
	if n < 0 {
		return 0, false, apperr.New(apperr.BadUserInput, "page size must not be negative")
	}
	if n > s.limits.MaxPageSize {
		return 0, false, apperr.New(apperr.BadUserInput, "page size %d is over the limit of %d", n, s.limits.MaxPageSize)
	}
	return n, backward, nil
}
