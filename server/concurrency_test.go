package server_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

// TestConcurrentSendIndexes has 50 clients send at once into one channel:
// every send succeeds (no "database is locked" on SQLite) and the indexes
// are exactly 0..N-1, with no gap and no duplicate, in the responses and in
// the stored history.
func TestConcurrentSendIndexes(t *testing.T) {
	t.Parallel()
	const senders, perSender = 50, 8
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		owner := srv.Client("owner")
		identities := make([]string, senders)
		for i := range identities {
			identities[i] = fmt.Sprintf("sender-%02d", i)
		}
		ch := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE", "members": identities})
		other := mustCreateChannel(t, owner, map[string]any{"type": "PRIVATE", "members": identities})

		var (
			mu      sync.Mutex
			indexes = map[string][]int{}
			wg      sync.WaitGroup
		)
		for _, id := range identities {
			c := srv.Client(id)
			wg.Go(func() {
				for i := range perSender {
					target := ch
					if i%4 == 3 {
						target = other
					}
					r := c.Post(sendMessage, map[string]any{"c": target, "b": fmt.Sprintf("%s #%d", id, i)})
					if len(r.Errors) > 0 {
						t.Errorf("%s send %d: %+v", id, i, r.Errors)
						return
					}
					var out struct{ SendMessage messageData }
					decode(t, r, &out)
					mu.Lock()
					indexes[target] = append(indexes[target], out.SendMessage.Index)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		for _, c := range []string{ch, other} {
			got := indexes[c]
			slices.Sort(got)
			for i, idx := range got {
				if idx != i {
					t.Fatalf("channel %s: sorted indexes %v: position %d holds %d", c, got, i, idx)
				}
			}
			stored := allIndexes(t, owner, c)
			if !slices.Equal(stored, got) {
				t.Fatalf("stored indexes %v differ from sent %v", stored, got)
			}
			var view struct{ Channel channelData }
			owner.Do(`query($id: ID!) { channel(id: $id) { messagesCount lastMessageIndex } }`, map[string]any{"id": c}, &view)
			if view.Channel.MessagesCount != len(got) || *view.Channel.LastMessageIndex != len(got)-1 {
				t.Fatalf("channel counters %+v after %d messages", view.Channel, len(got))
			}
		}
	})
}

// allIndexes pages through a channel's whole history, oldest first.
func allIndexes(t *testing.T, c *parleytest.Client, channelID string) []int {
	t.Helper()
	var out []int
	vars := map[string]any{"c": channelID, "first": 100}
	for {
		var page messagesData
		c.Do(messagesQuery, vars, &page)
		out = append(out, page.indexes()...)
		if !page.Messages.PageInfo.HasNextPage {
			return out
		}
		vars["after"] = *page.Messages.PageInfo.EndCursor
	}
}
