package pubsub_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/parleychat/parley/pubsub"
)

func TestDecode(t *testing.T) {
	calls := 0
	atoi := func(data []byte) (int, error) {
		calls++
		return strconv.Atoi(string(data))
	}

	m := pubsub.NewMessage("t", []byte("42"))
	for range 3 {
		if v, err := pubsub.Decode(m, atoi); v != 42 || err != nil {
			t.Fatalf("Decode = %v, %v; want 42", v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("decode ran %d times for copies of one message; want 1", calls)
	}

	// Another result type decodes afresh rather than failing.
	text, err := pubsub.Decode(m, func(data []byte) (string, error) { return string(data), nil })
	if text != "42" || err != nil {
		t.Fatalf("Decode as string = %q, %v; want 42", text, err)
	}

	// The first error is shared too.
	bad := pubsub.NewMessage("t", []byte("x"))
	for range 2 {
		if _, err := pubsub.Decode(bad, atoi); !errors.Is(err, strconv.ErrSyntax) {
			t.Fatalf("Decode(x) error = %v; want a syntax error", err)
		}
	}
	if calls != 2 {
		t.Fatalf("decode ran %d times in all; want 2", calls)
	}

	// A message not made by NewMessage decodes on every call.
	plain := pubsub.Message{Topic: "t", Data: []byte("7")}
	for range 2 {
		if v, err := pubsub.Decode(plain, atoi); v != 7 || err != nil {
			t.Fatalf("Decode(plain) = %v, %v; want 7", v, err)
		}
	}
	if calls != 4 {
		t.Fatalf("decode ran %d times in all; want 4", calls)
	}
}
