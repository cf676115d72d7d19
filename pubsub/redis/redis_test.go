package redis

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/internal/redistest"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/pubsubtest"
)

// The tests talk to the Redis server at TEST_REDIS_URL and are skipped when
// it is unset. Other packages' tests may use the same server at the same
// time: every topic here is unique.

// newBroker returns a Broker on client logging to logger, closed in
// t.Cleanup.
func newBroker(t *testing.T, client *goredis.Client, logger *slog.Logger) *Broker {
	t.Helper()
	b, err := New(t.Context(), client, pubsub.Options{Buffer: pubsubtest.MinBuffer, Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Broker Close: %v", err)
		}
	})
	return b
}

// quietLogger discards the brokers' logs.
var quietLogger = slog.New(slog.DiscardHandler)

func TestBroker(t *testing.T) {
	url := redistest.URL(t)
	pubsubtest.Run(t, func(t *testing.T) pubsub.Broker {
		b, err := NewFromURL(t.Context(), url, pubsub.Options{Buffer: pubsubtest.MinBuffer, Logger: quietLogger})
		if err != nil {
			t.Fatalf("NewFromURL: %v", err)
		}
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return b
	})
}

func TestNewFromURLErrors(t *testing.T) {
	if _, err := NewFromURL(t.Context(), "http://not-redis", pubsub.Options{}); err == nil {
		t.Fatal("NewFromURL accepted an http URL")
	}
	// Nothing listens on port 1.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := NewFromURL(ctx, "redis://127.0.0.1:1/0", pubsub.Options{}); err == nil {
		t.Fatal("NewFromURL succeeded without a server")
	}
}

// numSub returns the number of Redis subscribers of topic's channel.
func numSub(t *testing.T, admin *goredis.Client, topic string) int64 {
	t.Helper()
	channel := channelPrefix + topic
	counts, err := admin.PubSubNumSub(t.Context(), channel).Result()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB: %v", err)
	}
	return counts[channel]
}

// pubSubConns returns the CLIENT LIST entries of b's pub/sub connection as
// field maps.
func pubSubConns(t *testing.T, admin *goredis.Client, b *Broker) []map[string]string {
	t.Helper()
	list, err := admin.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var conns []map[string]string
	for line := range strings.Lines(list) {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == b.name {
			conns = append(conns, fields)
		}
	}
	return conns
}

func TestReferenceCounting(t *testing.T) {
	client := redistest.NewClient(t, redistest.URL(t))
	admin := redistest.NewClient(t, redistest.URL(t))
	b := newBroker(t, client, quietLogger)
	topic, other := pubsubtest.Unique("refs"), pubsubtest.Unique("other")

	s1, err := b.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if n := numSub(t, admin, topic); n != 1 {
		t.Fatalf("NUMSUB after Subscribe = %d, want 1", n)
	}
	s2, err := b.Subscribe(t.Context(), other)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := s2.Add(t.Context(), topic); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if n := numSub(t, admin, topic); n != 1 {
		t.Fatalf("NUMSUB with two local subscribers = %d, want 1", n)
	}
	conns := pubSubConns(t, admin, b)
	if len(conns) != 1 || conns[0]["sub"] != "2" {
		t.Fatalf("pub/sub connections = %v, want one subscribed to 2 channels", conns)
	}

	s1.Close()
	if n := numSub(t, admin, topic); n != 1 {
		t.Fatalf("NUMSUB with one local subscriber left = %d, want 1", n)
	}
	if err := client.Publish(t.Context(), channelPrefix+topic, "x").Err(); err != nil {
		t.Fatalf("PUBLISH: %v", err)
	}
	pubsubtest.ExpectMessage(t, s2, topic, "x")

	if err := s2.Remove(t.Context(), topic); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	redistest.Eventually(t, 2*time.Second, "NUMSUB 0 after the last local subscriber left", func() bool {
		return numSub(t, admin, topic) == 0
	})
	if n := numSub(t, admin, other); n != 1 {
		t.Fatalf("NUMSUB of the other topic = %d, want 1", n)
	}
	s2.Close()
	redistest.Eventually(t, 2*time.Second, "NUMSUB 0 after Close", func() bool {
		return numSub(t, admin, other) == 0
	})
}

func TestTwoNodes(t *testing.T) {
	client := redistest.NewClient(t, redistest.URL(t))
	a := newBroker(t, client, quietLogger)
	b := newBroker(t, client, quietLogger)
	topic := pubsubtest.Unique("nodes")
	onA, err := a.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatalf("Subscribe on A: %v", err)
	}
	defer onA.Close()
	if err := b.Publish(t.Context(), topic, []byte("from B")); err != nil {
		t.Fatalf("Publish on B: %v", err)
	}
	pubsubtest.ExpectMessage(t, onA, topic, "from B")

	onB, err := b.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatalf("Subscribe on B: %v", err)
	}
	defer onB.Close()
	if err := a.Publish(t.Context(), topic, []byte("from A")); err != nil {
		t.Fatalf("Publish on A: %v", err)
	}
	pubsubtest.ExpectMessage(t, onA, topic, "from A")
	pubsubtest.ExpectMessage(t, onB, topic, "from A")
}

// recorder is a slog.Handler that keeps the records it handles.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }

func (r *recorder) WithGroup(string) slog.Handler { return r }

// logged reports whether a record at level whose message contains msg was
// handled.
func (r *recorder) logged(level slog.Level, msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if rec.Level == level && strings.Contains(rec.Message, msg) {
			return true
		}
	}
	return false
}

// expectRecovery publishes on topic through publisher every 100ms until
// sub receives one of those messages, for at most 10s.
func expectRecovery(t *testing.T, publisher *goredis.Client, sub pubsub.Subscription, topic string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		// Publishing may fail while the server is down.
		if err := publisher.Publish(t.Context(), channelPrefix+topic, i).Err(); err != nil {
			t.Logf("Publish while recovering: %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		m, ok := sub.Next(ctx)
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case ok && m.Topic != topic:
			t.Fatalf("got a message on %q, want %q", m.Topic, topic)
		case ok:
			return
		case !timedOut:
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		if time.Now().After(deadline) {
			t.Fatal("no message within 10s of the outage")
		}
	}
}

func TestConnectionKilled(t *testing.T) {
	client := redistest.NewClient(t, redistest.URL(t))
	admin := redistest.NewClient(t, redistest.URL(t))
	logs := &recorder{}
	b := newBroker(t, client, slog.New(logs))
	topic := pubsubtest.Unique("killed")
	sub, err := b.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()

	conns := pubSubConns(t, admin, b)
	if len(conns) != 1 {
		t.Fatalf("found %d connections named %s, want 1", len(conns), b.name)
	}
	id, err := strconv.ParseInt(conns[0]["id"], 10, 64)
	if err != nil {
		t.Fatalf("client id %q: %v", conns[0]["id"], err)
	}
	if err := admin.ClientKillByFilter(t.Context(), "ID", strconv.FormatInt(id, 10)).Err(); err != nil {
		t.Fatalf("CLIENT KILL: %v", err)
	}

	expectRecovery(t, admin, sub, topic)
	if n := numSub(t, admin, topic); n != 1 {
		t.Fatalf("NUMSUB after reconnecting = %d, want 1", n)
	}
	conns = pubSubConns(t, admin, b)
	if len(conns) != 1 || conns[0]["id"] == strconv.FormatInt(id, 10) {
		t.Fatalf("connections after the kill = %v, want one new one", conns)
	}
	if !logs.logged(slog.LevelWarn, "connection lost") {
		t.Error("the outage was not logged at warn level")
	}
	if !logs.logged(slog.LevelInfo, "connection restored") {
		t.Error("the recovery was not logged at info level")
	}
	if n := b.Reconnects(); n != 1 {
		t.Errorf("Reconnects = %d, want 1", n)
	}

	// New subscriptions work on the new connection.
	later := pubsubtest.Unique("later")
	sub2, err := b.Subscribe(t.Context(), later)
	if err != nil {
		t.Fatalf("Subscribe after reconnecting: %v", err)
	}
	defer sub2.Close()
	if err := b.Publish(t.Context(), later, []byte("hi")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	pubsubtest.ExpectMessage(t, sub2, later, "hi")
}

// proxy forwards TCP connections to a server until blackhole is called,
// which makes the connections open at that moment drop everything in both
// directions without closing, like connections whose peer vanished. Later
// connections work.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []*proxiedConn
}

// proxiedConn is one connection through a proxy.
type proxiedConn struct {
	client, server net.Conn
	dead           atomic.Bool
}

// startProxy starts a proxy to target, stopped in t.Cleanup.
func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Errorf("close proxy listener: %v", err)
		}
		p.mu.Lock()
		for _, c := range p.conns {
			c.close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// accept serves connections until the listener is closed.
func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			// The client sees its connection closed.
			_ = client.Close()
			continue
		}
		c := &proxiedConn{client: client, server: server}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Go(func() { c.pipe(client, server) })
		p.wg.Go(func() { c.pipe(server, client) })
	}
}

// blackhole makes the open connections drop everything.
func (p *proxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.dead.Store(true)
	}
}

// pipe copies src to dst, dropping the data once c is dead, and closes c
// when src ends.
func (c *proxiedConn) pipe(src, dst net.Conn) {
	defer c.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.dead.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close closes both sides of c; closing a side twice is harmless here.
func (c *proxiedConn) close() {
	_ = c.client.Close()
	_ = c.server.Close()
}

// TestSilentConnection checks the health check: a pub/sub connection that
// stops answering without being closed is replaced.
func TestSilentConnection(t *testing.T) {
	url := redistest.URL(t)
	admin := redistest.NewClient(t, url)
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	px := startProxy(t, opts.Addr)
	opts.Addr = px.ln.Addr().String()
	client := goredis.NewClient(opts)
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("client Close: %v", err)
		}
	})
	savedPing, savedDead := pingInterval, deadAfter
	pingInterval, deadAfter = 100*time.Millisecond, 500*time.Millisecond
	logs := &recorder{}
	b := newBroker(t, client, slog.New(logs))
	pingInterval, deadAfter = savedPing, savedDead

	topic := pubsubtest.Unique("silent")
	sub, err := b.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()
	px.blackhole()
	start := time.Now()
	expectRecovery(t, admin, sub, topic)
	t.Logf("recovered after %v", time.Since(start))
	if !logs.logged(slog.LevelWarn, "connection lost") {
		t.Error("the outage was not logged at warn level")
	}
	if !logs.logged(slog.LevelInfo, "connection restored") {
		t.Error("the recovery was not logged at info level")
	}
	redistest.Eventually(t, 2*time.Second, "one Redis subscriber", func() bool {
		return numSub(t, admin, topic) == 1
	})
}

// TestServerRestart restarts a redis-server of its own (it keeps nothing
// on disk): subscriptions resume.
func TestServerRestart(t *testing.T) {
	redistest.URL(t)
	srv := redistest.StartServer(t)
	client := redistest.NewClient(t, srv.URL)
	logs := &recorder{}
	b := newBroker(t, client, slog.New(logs))
	topic := pubsubtest.Unique("restart")
	sub, err := b.Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()

	srv.Kill()
	redistest.Eventually(t, 5*time.Second, "outage noticed", func() bool {
		return logs.logged(slog.LevelWarn, "connection lost")
	})
	srv.Restart()

	expectRecovery(t, client, sub, topic)
	if !logs.logged(slog.LevelInfo, "connection restored") {
		t.Error("the recovery was not logged at info level")
	}
	// Close before the server stops.
	if err := b.Close(); err != nil {
		t.Errorf("Broker Close: %v", err)
	}
}

// TestPubSubOptions checks that the pub/sub client gets the timeouts of the
// client it is derived from, whatever their setting.
func TestPubSubOptions(t *testing.T) {
	for _, set := range []time.Duration{0, -1, -2, 1500 * time.Millisecond} {
		base := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", ReadTimeout: set, WriteTimeout: set})
		derived := goredis.NewClient(pubSubOptions(base.Options(), "name"))
		b, d := base.Options(), derived.Options()
		if d.ReadTimeout != b.ReadTimeout || d.WriteTimeout != b.WriteTimeout || d.ClientName != "name" {
			t.Errorf("timeout %v: derived read %v write %v name %q, want read %v write %v name %q",
				set, d.ReadTimeout, d.WriteTimeout, d.ClientName, b.ReadTimeout, b.WriteTimeout, "name")
		}
		if err := errors.Join(base.Close(), derived.Close()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}

// TestTrace: Options.Trace hears each publish, with the publisher's
// context, and its end.
func TestTrace(t *testing.T) {
	url := redistest.URL(t)
	type key struct{}
	var (
		mu    sync.Mutex
		calls []string
	)
	trace := func(ctx context.Context, op string) func(error) {
		if ctx.Value(key{}) == nil {
			return func(error) {}
		}
		return func(err error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, op+" "+strconv.FormatBool(err == nil))
		}
	}
	b, err := NewFromURL(t.Context(), url, pubsub.Options{Logger: quietLogger, Trace: trace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := b.Publish(context.WithValue(t.Context(), key{}, true), "trace-"+strconv.FormatInt(time.Now().UnixNano(), 36), []byte("x")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != "publish true" {
		t.Errorf("traced calls %q; want one successful publish", calls)
	}
}
