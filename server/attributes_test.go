package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/parleytest"
)

// TestAttributesPatch: attributesPatch merges an RFC 7396 merge patch into a
// channel's and a user's attributes; attributes still replaces them whole;
// both at once, or a result over the limit, is BAD_USER_INPUT and changes
// nothing.
func TestAttributesPatch(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{ChatLimits: chat.Limits{MaxAttributesBytes: 64}})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "attributes": map[string]any{"a": 1, "nested": map[string]any{"x": 1, "y": 2}}})

		const updateChannel = `mutation($c: ID!, $in: UpdateChannelInput!) { updateChannel(id: $c, input: $in) { attributes } }`
		const updateMe = `mutation($in: UpdateMeInput!) { updateMe(input: $in) { attributes } }`
		channelAttrs := func(in map[string]any) string {
			var out struct {
				UpdateChannel struct{ Attributes json.RawMessage }
			}
			alice.Do(updateChannel, map[string]any{"c": ch, "in": in}, &out)
			return string(out.UpdateChannel.Attributes)
		}
		meAttrs := func(in map[string]any) string {
			var out struct {
				UpdateMe struct{ Attributes json.RawMessage }
			}
			alice.Do(updateMe, map[string]any{"in": in}, &out)
			return string(out.UpdateMe.Attributes)
		}
		meAttrs(map[string]any{"attributes": map[string]any{"a": 1, "nested": map[string]any{"x": 1, "y": 2}}})
		for _, step := range []struct {
			in   map[string]any
			want string
		}{
			{map[string]any{"attributesPatch": map[string]any{"b": "two", "nested": map[string]any{"x": nil, "z": 3}}}, `{"a":1,"b":"two","nested":{"y":2,"z":3}}`},
			{map[string]any{"friendlyName": "renamed"}, `{"a":1,"b":"two","nested":{"y":2,"z":3}}`},
			{map[string]any{"attributesPatch": map[string]any{"a": nil, "nested": "flat"}}, `{"b":"two","nested":"flat"}`},
			{map[string]any{"attributes": map[string]any{"whole": true}}, `{"whole":true}`},
			{map[string]any{"attributesPatch": nil}, `null`},
			{map[string]any{"attributesPatch": map[string]any{"fresh": map[string]any{"k": nil}}}, `{"fresh":{}}`},
		} {
			if got := channelAttrs(step.in); !sameJSON(got, step.want) {
				t.Fatalf("channel after %v: %s, want %s", step.in, got, step.want)
			}
			if got := meAttrs(step.in); !sameJSON(got, step.want) {
				t.Fatalf("user after %v: %s, want %s", step.in, got, step.want)
			}
		}

		// Refused, and nothing changes.
		for _, in := range []map[string]any{
			{"attributes": map[string]any{"a": 1}, "attributesPatch": map[string]any{"b": 1}},
			{"friendlyName": "never", "attributesPatch": map[string]any{"big": strings.Repeat("x", 64)}},
		} {
			alice.Fails("BAD_USER_INPUT", updateChannel, map[string]any{"c": ch, "in": in})
			alice.Fails("BAD_USER_INPUT", updateMe, map[string]any{"in": in})
		}
		var state struct {
			Channel struct {
				FriendlyName string
				Attributes   json.RawMessage
			}
			Me struct{ Attributes json.RawMessage }
		}
		alice.Do(`query($c: ID!) { channel(id: $c) { friendlyName attributes } me { attributes } }`, map[string]any{"c": ch}, &state)
		if state.Channel.FriendlyName != "renamed" || !sameJSON(string(state.Channel.Attributes), `{"fresh":{}}`) || !sameJSON(string(state.Me.Attributes), `{"fresh":{}}`) {
			t.Fatalf("a refused update changed something: %+v", state)
		}
		// At the limit, once merged: 64 bytes encoded.
		fill := strings.Repeat("x", 64-len(`{"fresh":{},"k":""}`))
		if got := channelAttrs(map[string]any{"attributesPatch": map[string]any{"k": fill}}); len(got) != 64 {
			t.Fatalf("at the limit: %d bytes %s", len(got), got)
		}

		// Concurrent patches of different keys all apply.
		const writers = 8
		channelAttrs(map[string]any{"attributes": nil})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				r := alice.Post(updateChannel, map[string]any{"c": ch, "in": map[string]any{"attributesPatch": map[string]any{fmt.Sprintf("k%d", i): i}}})
				if len(r.Errors) > 0 {
					t.Errorf("patch %d: %+v", i, r.Errors)
				}
			})
		}
		wg.Wait()
		alice.Do(`query($c: ID!) { channel(id: $c) { friendlyName attributes } me { attributes } }`, map[string]any{"c": ch}, &state)
		var merged map[string]int
		if err := json.Unmarshal(state.Channel.Attributes, &merged); err != nil || len(merged) != writers {
			t.Fatalf("after %d concurrent patches: %s (%v)", writers, state.Channel.Attributes, err)
		}
	})
}

// sameJSON reports whether two encoded JSON values are equal as values.
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
