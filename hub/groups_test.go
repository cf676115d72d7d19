package hub

import (
	"fmt"
	"slices"
	"testing"
)

// Deliveries keep their key's group and the keys their order of first
// appearance, whether the keys are searched in turn or, past
// maxListedKeys, indexed, and however they interleave.
func TestDeliveryGroups(t *testing.T) {
	for _, keys := range []int{1, 3, maxListedKeys, maxListedKeys + 1, 3 * maxListedKeys} {
		t.Run(fmt.Sprint(keys), func(t *testing.T) {
			var g deliveryGroups
			want := make([][]*Subscription, keys)
			// Runs of one key, then every key in turn, then backwards.
			var order []int
			for k := range keys {
				order = append(order, k, k)
			}
			for k := range keys {
				order = append(order, k)
			}
			for k := keys - 1; k >= 0; k-- {
				order = append(order, k)
			}
			for _, k := range order {
				s := &Subscription{}
				g.add(fmt.Sprintf("key-%d", k), delivery{s: s}, 4)
				want[k] = append(want[k], s)
			}
			if len(g.lists) != keys {
				t.Fatalf("%d groups, want %d", len(g.lists), keys)
			}
			for k, list := range g.lists {
				if g.keys[k] != fmt.Sprintf("key-%d", k) {
					t.Fatalf("group %d has key %q", k, g.keys[k])
				}
				var got []*Subscription
				for _, d := range list {
					got = append(got, d.s)
				}
				if !slices.Equal(got, want[k]) {
					t.Fatalf("group %d holds %d deliveries, want %d in order", k, len(got), len(want[k]))
				}
			}
			if indexed := g.index != nil; indexed != (keys > maxListedKeys) {
				t.Fatalf("%d keys: indexed %v", keys, indexed)
			}
		})
	}
}
