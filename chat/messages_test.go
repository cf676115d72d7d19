package chat_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
)

// newService opens a fresh database of backend b and returns a Service on it
// without a broker, with the Store for assertions on stored rows.
func newService(tb testing.TB, b parleytest.Backend) (*chat.Service, *db.Store) {
	tb.Helper()
	ctx := context.Background()
	store, err := db.Open(ctx, b.NewURL(tb), nil)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := store.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	if _, err := store.MigrateUp(ctx); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return chat.New(store, chat.Options{}), store
}

// as returns a context authenticated as identity.
func as(identity string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{Identity: identity})
}

// mustCreateChannel creates a channel owned by owner with members.
func mustCreateChannel(tb testing.TB, svc *chat.Service, owner string, typ models.ChannelType, members ...string) *models.Channel {
	tb.Helper()
	ch, err := svc.CreateChannel(as(owner), chat.NewChannel{Type: typ, Members: members})
	if err != nil {
		tb.Fatalf("create %s channel: %v", typ, err)
	}
	return ch
}

// TestSendMessage checks what SendMessage returns and stores: the index, the
// Author and Channel snapshots with the counters as this send left them, the
// author's read horizon, and the answers to non-members.
func TestSendMessage(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		svc, store := newService(t, b)
		priv := mustCreateChannel(t, svc, "alice", models.ChannelPrivate, "bob")
		pub := mustCreateChannel(t, svc, "alice", models.ChannelPublic)

		for i := range 3 {
			msg, err := svc.SendMessage(as("bob"), chat.NewMessage{ChannelID: priv.ID, Body: fmt.Sprint("hello ", i)})
			if err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			if msg.Index != i {
				t.Errorf("send %d: index %d", i, msg.Index)
			}
			if msg.Author == nil || msg.Author.Identity != "bob" {
				t.Errorf("send %d: author snapshot %+v; want bob", i, msg.Author)
			}
			ch := msg.Channel
			if ch == nil || ch.ID != priv.ID {
				t.Fatalf("send %d: channel snapshot %+v; want channel %s", i, ch, priv.ID)
			}
			if ch.NextMessageIndex != i+1 || ch.MessagesCount != i+1 || ch.MembersCount != 2 ||
				ch.LastMessageID == nil || *ch.LastMessageID != msg.ID || ch.LastActivityUs != msg.CreatedAt.UnixMicro() {
				t.Errorf("send %d: channel snapshot counters %+v", i, ch)
			}
			var stored models.Channel
			if err := store.DB(t.Context()).Take(&stored, "id = ?", priv.ID).Error; err != nil {
				t.Fatalf("read channel: %v", err)
			}
			if stored.NextMessageIndex != ch.NextMessageIndex || stored.MessagesCount != ch.MessagesCount ||
				stored.LastMessageID == nil || *stored.LastMessageID != msg.ID || stored.LastActivityUs != ch.LastActivityUs {
				t.Errorf("send %d: stored channel %+v differs from snapshot %+v", i, stored, ch)
			}
			var me models.Member
			if err := store.DB(t.Context()).Take(&me, "channel_id = ? AND user_id = ?", priv.ID, msg.Author.ID).Error; err != nil {
				t.Fatalf("read membership: %v", err)
			}
			if me.LastReadIndex == nil || *me.LastReadIndex != i || me.LastReadAt == nil || !me.LastReadAt.Equal(msg.CreatedAt) {
				t.Errorf("send %d: author's read horizon %v at %v; want %d at %v", i, me.LastReadIndex, me.LastReadAt, i, msg.CreatedAt)
			}
		}

		for _, tc := range []struct {
			who, channel string
			want         apperr.Code
		}{
			{"carol", priv.ID, apperr.NotFound},
			{"carol", pub.ID, apperr.Forbidden},
			{"carol", "no-such-channel", apperr.NotFound},
			{"alice", "no-such-channel", apperr.NotFound},
		} {
			msg, err := svc.SendMessage(as(tc.who), chat.NewMessage{ChannelID: tc.channel, Body: "intruding"})
			if got := apperr.CodeOf(err); got != tc.want {
				t.Errorf("%s sends to %s: message %+v, error %v (%s); want %s", tc.who, tc.channel, msg, err, got, tc.want)
			}
		}
		var n int64
		if err := store.DB(t.Context()).Model(&models.Message{}).Count(&n).Error; err != nil {
			t.Fatalf("count messages: %v", err)
		}
		if n != 3 {
			t.Errorf("%d messages stored; want 3", n)
		}
	})
}

// TestSendMessageConcurrentSnapshots has several members send at once: each
// returned Channel snapshot must hold the counters of its own send, so the
// index and the counters come from one atomic step.
func TestSendMessageConcurrentSnapshots(t *testing.T) {
	t.Parallel()
	const senders, perSender = 8, 10
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		svc, _ := newService(t, b)
		identities := make([]string, senders)
		for i := range identities {
			identities[i] = fmt.Sprintf("sender-%d", i)
		}
		ch := mustCreateChannel(t, svc, "owner", models.ChannelPrivate, identities...)
		var (
			mu   sync.Mutex
			seen = map[int]bool{}
			wg   sync.WaitGroup
		)
		for _, id := range identities {
			wg.Go(func() {
				for range perSender {
					msg, err := svc.SendMessage(as(id), chat.NewMessage{ChannelID: ch.ID, Body: "hi"})
					if err != nil {
						t.Errorf("%s: %v", id, err)
						return
					}
					snap := msg.Channel
					if snap.NextMessageIndex != msg.Index+1 || snap.MessagesCount != msg.Index+1 || *snap.LastMessageID != msg.ID {
						t.Errorf("message %d: snapshot has next index %d, %d messages, last message %v; want %d, %d, %s",
							msg.Index, snap.NextMessageIndex, snap.MessagesCount, snap.LastMessageID, msg.Index+1, msg.Index+1, msg.ID)
					}
					mu.Lock()
					seen[msg.Index] = true
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for i := range senders * perSender {
			if !seen[i] {
				t.Fatalf("index %d never returned; got %v", i, seen)
			}
		}
	})
}

// TestSendMessageConcurrentMixed has members and non-members send to
// several channels at once, so that sends share transactions: every
// member's send must succeed with a gapless index in its channel, and every
// non-member's must fail with its own rule error and write nothing.
func TestSendMessageConcurrentMixed(t *testing.T) {
	t.Parallel()
	const channels, perSender = 3, 15
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		svc, store := newService(t, b)
		var ids []string
		for range channels {
			ids = append(ids, mustCreateChannel(t, svc, "owner", models.ChannelPrivate, "ann", "ben").ID)
		}
		var (
			mu      sync.Mutex
			indexes = map[string][]int{}
			wg      sync.WaitGroup
		)
		for _, who := range []string{"ann", "ben", "mallory"} {
			for _, id := range ids {
				wg.Go(func() {
					for range perSender {
						msg, err := svc.SendMessage(as(who), chat.NewMessage{ChannelID: id, Body: "hi"})
						if who == "mallory" {
							if code := apperr.CodeOf(err); code != apperr.NotFound {
								t.Errorf("mallory's send: message %+v, error %v; want NOT_FOUND", msg, err)
							}
							continue
						}
						if err != nil {
							t.Errorf("%s's send: %v", who, err)
							return
						}
						mu.Lock()
						indexes[id] = append(indexes[id], msg.Index)
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		for _, id := range ids {
			got := indexes[id]
			slices.Sort(got)
			for i, idx := range got {
				if idx != i {
					t.Fatalf("channel %s: indexes %v; want 0..%d", id, got, 2*perSender-1)
				}
			}
			var stored int64
			if err := store.DB(t.Context()).Model(&models.Message{}).Where("channel_id = ?", id).Count(&stored).Error; err != nil {
				t.Fatalf("count messages: %v", err)
			}
			if len(got) != 2*perSender || stored != 2*perSender {
				t.Fatalf("channel %s: %d sends acknowledged, %d stored; want %d", id, len(got), stored, 2*perSender)
			}
			// Each sender's read horizon is at their own last message.
			for _, who := range []string{"ann", "ben"} {
				var last struct{ Idx int }
				err := store.DB(t.Context()).Model(&models.Message{}).Select("MAX(messages.idx) AS idx").
					Joins("JOIN users ON users.id = messages.author_id").
					Where("messages.channel_id = ? AND users.identity = ?", id, who).Scan(&last).Error
				if err != nil {
					t.Fatalf("last message of %s: %v", who, err)
				}
				var m models.Member
				err = store.DB(t.Context()).Joins("JOIN users ON users.id = members.user_id").
					Where("members.channel_id = ? AND users.identity = ?", id, who).Take(&m).Error
				if err != nil {
					t.Fatalf("membership of %s: %v", who, err)
				}
				if m.LastReadIndex == nil || *m.LastReadIndex != last.Idx {
					t.Fatalf("channel %s: %s read up to %v, sent up to %d", id, who, m.LastReadIndex, last.Idx)
				}
			}
		}
	})
}

// BenchmarkSendMessage has 8 goroutines per GOMAXPROCS send into one
// channel as 16 different members: the write scenario of the load tool
// without HTTP and GraphQL.
func BenchmarkSendMessage(b *testing.B) {
	for _, backend := range parleytest.Backends() {
		b.Run(backend.Name, func(b *testing.B) {
			svc, _ := newService(b, backend)
			const senders = 16
			identities := make([]string, senders)
			for i := range identities {
				identities[i] = fmt.Sprintf("sender-%d", i)
			}
			ch := mustCreateChannel(b, svc, "owner", models.ChannelPublic, identities...)
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := as(identities[next.Add(1)%senders])
				for pb.Next() {
					if _, err := svc.SendMessage(ctx, chat.NewMessage{ChannelID: ch.ID, Body: "benchmark"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
