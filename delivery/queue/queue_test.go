package queue_test

import (
	"context"
	"database/sql"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"gorm.io/gorm"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/delivery/queue"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
)

// source gives each message one FCM push per device named in devices,
// and records the calls of MessagePushes.
type source struct {
	devices []string
	mu      sync.Mutex
	pruned  []string
	loads   [][]string
}

func (s *source) MessagePushes(_ context.Context, ids []string) (map[string][]delivery.Push, error) {
	s.mu.Lock()
	s.loads = append(s.loads, ids)
	s.mu.Unlock()
	out := map[string][]delivery.Push{}
	for _, id := range ids {
		for _, d := range s.devices {
			out[id] = append(out[id], delivery.Push{Device: delivery.Device{RegistrationID: d, Provider: models.PushFCM, Token: "tok-" + d}, Title: "t", Body: "b", CollapseID: id})
		}
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
	store, q := newQueue(t, b, prov)
	start(t, q, src)
	return store, q
}

// start starts q's workers until the test ends.
func start(t *testing.T, q *queue.Queue, src delivery.PushSource) {
	t.Helper()
	if err := q.Start(t.Context(), src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

// newQueue opens a fresh database and a queue on it that pushes through
// prov, not started: it only inserts jobs.
func newQueue(t *testing.T, b parleytest.Backend, prov push.Provider) (*db.Store, *queue.Queue) {
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

// TestDeliversOnce: the pushes of one write's messages are one job row,
// whose worker loads the messages at once and sends every push once.
func TestDeliversOnce(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		prov := &provider{sent: map[string]int{}, got: make(chan struct{}, 100)}
		src := &source{devices: []string{"d1", "d2"}}
		store, q := openQueue(t, b, src, prov)
		enqueue(t, store, q, "m1", "m2", "m3")
		var rows int64
		if err := store.DB(t.Context()).Table("river_job").Where("kind = ?", "parley.push.batch").Count(&rows).Error; err != nil || rows != 1 {
			t.Errorf("river_job holds %d push jobs (%v); want 1 for the write", rows, err)
		}
		wait(t, prov.got, 6)
		prov.mu.Lock()
		defer prov.mu.Unlock()
		if len(prov.sent) != 6 {
			t.Errorf("sent %v; want each of 3 messages to each of 2 devices", prov.sent)
		}
		for k, n := range prov.sent {
			if n != 1 {
				t.Errorf("%s sent %d times", k, n)
			}
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		if len(src.loads) != 1 || len(src.loads[0]) != 3 {
			t.Errorf("MessagePushes called with %v; want the 3 messages at once", src.loads)
		}
	})
}

// TestRetriesOnlyFailedDevices: of a job's pushes, only those that failed
// transiently are retried, by one job for all its messages; a dead device
// is pruned once however many messages it had.
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
		enqueue(t, store, q, "m1", "m2")
		wait(t, prov.got, 8)
		prov.mu.Lock()
		defer prov.mu.Unlock()
		want := map[string]int{"m1/ok": 1, "m1/dead": 1, "m1/flaky": 2, "m2/ok": 1, "m2/dead": 1, "m2/flaky": 2}
		for k, n := range want {
			if prov.sent[k] != n {
				t.Errorf("%s sent %d times, want %d", k, prov.sent[k], n)
			}
		}
		if st, err := q.Stats(t.Context()); err != nil || st.Retried != 1 {
			t.Errorf("stats %+v (%v); want one retry job", st, err)
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

// oldPushArgs is a push job as binaries before send batches shared one
// wrote it: one message, and on a retry the devices left.
type oldPushArgs struct {
	MessageID string   `json:"messageId"`
	Try       int      `json:"try"`
	Devices   []string `json:"devices,omitempty"`
}

func (oldPushArgs) Kind() string { return "parley.push" }

// riverDriver is a River driver on store's queue pool, for a River client
// of the test's own that plays a node of an older binary.
func riverDriver(t *testing.T, store *db.Store) riverdriver.Driver[*sql.Tx] {
	t.Helper()
	pool, err := store.QueueDB()
	if err != nil {
		t.Fatal(err)
	}
	if store.Dialect() == db.DialectSQLite {
		return riversqlite.New(pool)
	}
	return riverdatabasesql.New(pool)
}

// TestOldShapeJobs: push jobs queued by an older binary, one per message,
// are still worked: to every device on a first try, to the devices left on
// a retry.
func TestOldShapeJobs(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		prov := &provider{sent: map[string]int{}, got: make(chan struct{}, 100)}
		store, _ := openQueue(t, b, &source{devices: []string{"d1", "d2"}}, prov)
		driver := riverDriver(t, store)
		old, err := river.NewClient(driver, &river.Config{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = old.InsertMany(t.Context(), []river.InsertManyParams{
			{Args: oldPushArgs{MessageID: "m1", Try: 1}},
			{Args: oldPushArgs{MessageID: "m2", Try: 2, Devices: []string{"d2"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		wait(t, prov.got, 3)
		prov.mu.Lock()
		defer prov.mu.Unlock()
		want := map[string]int{"m1/d1": 1, "m1/d2": 1, "m2/d2": 1}
		if !maps.Equal(prov.sent, want) {
			t.Errorf("sent %v, want %v", prov.sent, want)
		}
	})
}

// TestOldNodeLeavesBatchJobs: a node of an older binary, which knows only
// the one-message push job, fails a send batch's push job as an unknown
// kind instead of completing it without a push; River retries it, and a
// node of this binary delivers it.
func TestOldNodeLeavesBatchJobs(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		prov := &provider{sent: map[string]int{}, got: make(chan struct{}, 100)}
		store, q := newQueue(t, b, prov)
		enqueue(t, store, q, "m1")
		driver := riverDriver(t, store)
		workers := river.NewWorkers()
		river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[oldPushArgs]) error { return nil }))
		old, err := river.NewClient(driver, &river.Config{
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
			Workers:           workers,
			FetchPollInterval: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		events, stopEvents := old.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
		defer stopEvents()
		if err := old.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-events:
			if ev.Kind != river.EventKindJobFailed || ev.Job.Kind != "parley.push.batch" {
				t.Fatalf("the old node's first event: %s of a %s job; want a failed parley.push.batch", ev.Kind, ev.Job.Kind)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the old node did not take the batch job")
		}
		if err := old.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		start(t, q, &source{devices: []string{"d1", "d2"}})
		wait(t, prov.got, 2)
		prov.mu.Lock()
		defer prov.mu.Unlock()
		if want := map[string]int{"m1/d1": 1, "m1/d2": 1}; !maps.Equal(prov.sent, want) {
			t.Errorf("sent %v, want %v", prov.sent, want)
		}
	})
}
