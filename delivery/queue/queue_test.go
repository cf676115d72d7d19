package queue_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/delivery/queue"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
)

// source gives each message one FCM push per device named in devices.
type source struct {
	devices []string
	mu      sync.Mutex
	pruned  []string
}

func (s *source) MessagePushes(_ context.Context, id string) ([]delivery.Push, error) {
	var out []delivery.Push
	for _, d := range s.devices {
		out = append(out, delivery.Push{Device: delivery.Device{RegistrationID: d, Provider: models.PushFCM, Token: "tok-" + d}, Title: "t", Body: "b", CollapseID: id})
	}
	return out, nil
}

func (s *source) PruneDevices(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruned = append(s.pruned, ids...)
	return nil
}

// provider records what it sends and fails as fail says.
type provider struct {
	mu   sync.Mutex
	sent map[string]int // by collapse id + device
	fail func(p *delivery.Push, n int) error
	got  chan struct{}
}

func (p *provider) Send(_ context.Context, n *delivery.Push) error {
	p.mu.Lock()
	key := n.CollapseID + "/" + n.Device.RegistrationID
	p.sent[key]++
	count := p.sent[key]
	p.mu.Unlock()
	var err error
	if p.fail != nil {
		err = p.fail(n, count)
	}
	p.got <- struct{}{}
	return err
}

func openQueue(t *testing.T, b parleytest.Backend, src delivery.PushSource, prov push.Provider) (*db.Store, *queue.Queue) {
	t.Helper()
	ctx := t.Context()
	store, err := db.Open(ctx, b.NewURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	pool, err := store.QueueDB()
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(queue.Config{
		DB: pool, SQLite: store.Dialect() == db.DialectSQLite,
		Providers:         map[models.PushProvider]push.Provider{models.PushFCM: prov},
		FetchPollInterval: 100 * time.Millisecond, MaxAttempts: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(ctx, src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return store, q
}

func enqueue(t *testing.T, store *db.Store, q *queue.Queue, ids ...string) {
	t.Helper()
	err := store.Write(t.Context(), func(tx *gorm.DB) error {
		sqlTx, err := db.SQLTx(tx)
		if err != nil {
			return err
		}
		return q.EnqueueTx(t.Context(), sqlTx, delivery.Jobs{Pushes: ids})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, ch chan struct{}, n int) {
	t.Helper()
	for range n {
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("a delivery did not come")
		}
	}
}

func TestDeliversOnce(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		prov := &provider{sent: map[string]int{}, got: make(chan struct{}, 100)}
		store, q := openQueue(t, b, &source{devices: []string{"d1", "d2"}}, prov)
		enqueue(t, store, q, "m1", "m2", "m3")
		wait(t, prov.got, 6)
		prov.mu.Lock()
		defer prov.mu.Unlock()
		for k, n := range prov.sent {
			if n != 1 {
				t.Errorf("%s sent %d times", k, n)
			}
		}
	})
}

func TestRetriesOnlyFailedDevices(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		prov := &provider{sent: map[string]int{}, got: make(chan struct{}, 100), fail: func(p *delivery.Push, n int) error {
			switch {
			case p.Device.RegistrationID == "dead":
				return push.ErrInvalidToken
			case p.Device.RegistrationID == "flaky" && n == 1:
				return &delivery.TransientError{Err: context.DeadlineExceeded}
			}
			return nil
		}}
		src := &source{devices: []string{"ok", "dead", "flaky"}}
		store, q := openQueue(t, b, src, prov)
		enqueue(t, store, q, "m1")
		wait(t, prov.got, 4)
		prov.mu.Lock()
		defer prov.mu.Unlock()
		want := map[string]int{"m1/ok": 1, "m1/dead": 1, "m1/flaky": 2}
		for k, n := range want {
			if prov.sent[k] != n {
				t.Errorf("%s sent %d times, want %d", k, prov.sent[k], n)
			}
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		if len(src.pruned) != 1 || src.pruned[0] != "dead" {
			t.Errorf("pruned %v", src.pruned)
		}
	})
}

// TestInsertOnly: a node that only inserts jobs works none; a node that
// works the queue delivers them.
func TestInsertOnly(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		ctx := t.Context()
		store, err := db.Open(ctx, b.NewURL(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
		if _, err := store.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		pool, err := store.QueueDB()
		if err != nil {
			t.Fatal(err)
		}
		src := &source{devices: []string{"d1"}}
		never := &provider{sent: map[string]int{}, got: make(chan struct{}, 10), fail: func(*delivery.Push, int) error {
			t.Error("the insert-only node delivered")
			return nil
		}}
		newQueue := func(p push.Provider, insertOnly bool) *queue.Queue {
			q, err := queue.New(queue.Config{
				DB: pool, SQLite: store.Dialect() == db.DialectSQLite, InsertOnly: insertOnly,
				Providers: map[models.PushProvider]push.Provider{models.PushFCM: p}, FetchPollInterval: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Start(ctx, src); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := q.Stop(context.Background()); err != nil {
					t.Error(err)
				}
			})
			return q
		}
		inserter := newQueue(never, true)
		enqueue(t, store, inserter, "m1")
		worker := &provider{sent: map[string]int{}, got: make(chan struct{}, 10)}
		newQueue(worker, false)
		wait(t, worker.got, 1)
	})
}
