package server_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"github.com/parleychat/parley/parleytest"
)

// countQueries counts the SELECTs the server's store runs.
func countQueries(t *testing.T, srv *parleytest.Server) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	err := srv.Store.DB(t.Context()).Callback().Query().After("gorm:query").
		Register("parleytest:count", func(*gorm.DB) { n.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	return &n
}

// TestListsLoadInBatches: a page's related rows are loaded in batches, so
// the number of queries does not grow with the page size (no N+1).
func TestListsLoadInBatches(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		const query = `query($n: Int) { myChannels(first: $n) { edges { node {
			id createdBy { identity } lastMessage { body author { identity } channel { id } }
			myMembership { role user { identity } } unreadCount } } } }`
		n := countQueries(t, srv)
		queriesFor := func(pageSize int) int64 {
			before := n.Load()
			alice.Do(query, map[string]any{"n": pageSize}, nil)
			return n.Load() - before
		}
		for i := range 20 {
			ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{fmt.Sprintf("u%d", i)}})
			mustSend(t, srv.Client(fmt.Sprintf("u%d", i)), ch, "hello")
		}
		// Six related fields per channel: loading even one of them per row
		// would add 18 queries to the larger page. A loader batch can
		// split when the machine is slow (its requests arrive further
		// apart than the loader waits), which adds a few queries, never
		// one per row.
		small, large := queriesFor(2), queriesFor(20)
		if large >= small+18 {
			t.Fatalf("a page of 2 channels took %d queries, a page of 20 took %d: related rows are loaded per row", small, large)
		}
	})
}
