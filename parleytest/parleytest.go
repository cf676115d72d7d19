// Package parleytest starts real Parley servers for tests and speaks
// GraphQL to them over HTTP, as a client would. Every test runs on SQLite,
// and also on PostgreSQL when TEST_DATABASE_URL is set; each server gets a
// database of its own (a temporary SQLite file, or a PostgreSQL schema
// dropped at cleanup).
package parleytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/delivery/queue"
	"github.com/parleychat/parley/delivery/setup"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/logging"
	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/presence"
	presencememory "github.com/parleychat/parley/presence/memory"
	presenceredis "github.com/parleychat/parley/presence/redis"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/pubsub/memory"
	"github.com/parleychat/parley/pubsub/redis"
	"github.com/parleychat/parley/ratelimit"
	"github.com/parleychat/parley/requestid"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/tracing"
)

// Backend is a database kind a test runs on.
type Backend struct {
	// Name is "sqlite" or "postgres".
	Name string
	// newURL returns the URL of a fresh, empty database.
	newURL func(t testing.TB) string
	// nodes, when not nil, are the broker and presence tracker that the
	// servers started on this backend share (see MultiNode).
	nodes *sharedNodes
}

// sharedNodes is what the in-process nodes of one test share.
type sharedNodes struct {
	broker   pubsub.Broker
	presence presence.Tracker
}

// NewURL returns the URL of a fresh, empty database of this kind, removed
// when the test ends.
func (b Backend) NewURL(t testing.TB) string { return b.newURL(t) }

// Backends lists SQLite, and PostgreSQL when TEST_DATABASE_URL is set.
func Backends() []Backend {
	bs := []Backend{{Name: "sqlite", newURL: func(t testing.TB) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "parley.db")
	}}}
	if base := os.Getenv("TEST_DATABASE_URL"); base != "" {
		bs = append(bs, Backend{Name: "postgres", newURL: func(t testing.TB) string { return postgresSchema(t, base) }})
	}
	return bs
}

// ForEachBackend runs fn as a subtest per backend.
func ForEachBackend(t *testing.T, fn func(t *testing.T, b Backend)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// MultiNode returns the backend for a test of several nodes of one
// deployment: servers that share a database, live events and presence,
// each with a hub, chat service and HTTP handler of its own. Start the
// first with NewServer and the others with Options.DatabaseURL set to the
// first one's.
//
// With TEST_DATABASE_URL and TEST_REDIS_URL both set, it is the PostgreSQL
// backend: each server gets a Redis broker and a Redis presence tracker of
// its own, as separate processes would, and the servers of one test form
// a presence cluster of their own (PresenceCluster). Otherwise it is
// SQLite, so that such tests never skip: the servers open one database
// file, and those that leave Options.Broker and Options.Presence nil
// share one in-process broker and one in-process presence tracker,
// created for t and closed after its servers. The in-process tracker
// counts connections without telling the nodes apart, so it cannot lose a
// node that stops without closing: only Redis presence can (see
// presence.Tracker.Watch).
func MultiNode(t testing.TB) Backend {
	t.Helper()
	if os.Getenv("TEST_REDIS_URL") != "" {
		for _, b := range Backends() {
			if b.Name == "postgres" {
				return b
			}
		}
	}
	b := Backends()[0]
	log := slog.New(logging.NewHandler(newTestWriter(t), logging.Text, slog.LevelWarn, requestid.LogAttrs))
	mem := memory.New(pubsub.Options{Logger: log})
	tracker := presencememory.New()
	t.Cleanup(func() {
		if err := tracker.Close(); err != nil {
			t.Errorf("close presence: %v", err)
		}
		if err := mem.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	b.nodes = &sharedNodes{broker: mem, presence: tracker}
	return b
}

// postgresSchema creates a schema of its own for one test and returns a URL
// whose search_path points at it.
func postgresSchema(t testing.TB, base string) string {
	t.Helper()
	var buf [6]byte
	if _, err := rand.Read(buf[:]); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(buf[:])
	admin, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("connect to TEST_DATABASE_URL: %v", err)
	}
	sqlDB, err := admin.DB()
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := admin.Exec("DROP SCHEMA " + schema + " CASCADE").Error; err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		if err := sqlDB.Close(); err != nil {
			t.Errorf("close admin connection: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Options change a test server.
type Options struct {
	// DatabaseURL reuses a database (for several nodes); empty makes one.
	DatabaseURL  string
	ChatLimits   chat.Limits
	ServerLimits server.Limits
	// DisableIntrospection turns introspection off.
	DisableIntrospection bool
	// WebSocket tunes the WebSocket transport.
	WebSocket server.WebSocketOptions
	// CORSHeaders are the extra request headers CORS allows.
	CORSHeaders []string
	// Realtime receives the WebSocket connection hooks; nil uses the chat
	// service when it implements server.RealtimeHooks (presence).
	Realtime server.RealtimeHooks
	// Broker and Presence share live events and presence with other
	// servers; nil makes ones of this server's own: Redis ones on the
	// postgres backend when TEST_REDIS_URL is set, in-memory ones
	// otherwise, except on a SQLite backend from MultiNode, whose servers
	// share its in-memory ones.
	Broker   pubsub.Broker
	Presence presence.Tracker
	// TypingTimeout overrides the chat service's typing timeout.
	TypingTimeout time.Duration
	// TokenLeeway overrides the clock skew tolerated on tokens, which
	// also delays the end of a connection whose token expired.
	TokenLeeway time.Duration
	// RequestTimeout overrides the server's HTTP request timeout.
	RequestTimeout time.Duration
	// Delivery configures push providers, webhooks and the pre-send hook
	// (see package delivery/deliverytest for fakes of each); nil delivers
	// nothing. Its queue polls every 100 ms and logs its stats every
	// second unless set otherwise.
	Delivery *setup.Config
	// PushAlways pushes to online recipients too (PARLEY_PUSH_WHEN=always).
	PushAlways bool
	// SystemMessages writes system messages (PARLEY_SYSTEM_MESSAGES, on in
	// the server by default); test servers write none unless asked, so
	// that tests of other rules see only the indexes of their messages.
	SystemMessages bool
	// NoAdmin ignores tokens' admin claim (PARLEY_ADMIN=false).
	NoAdmin bool
	// RateLimits, when not nil, are the server's per-user rate limits;
	// tests run without any otherwise.
	RateLimits *ratelimit.Config
	// Tracer, when not nil, traces the server as the parley command does
	// with OTEL_EXPORTER_OTLP_ENDPOINT set: operation spans, database
	// spans and event delivery spans.
	Tracer trace.TracerProvider
	// Media configures attachments; a nil Storage is a directory of the
	// test's own (Server.MediaDir), a nil Signer one on the server's
	// secret.
	Media chat.MediaOptions
	// Clock, when not nil, times the hub's wakes (coalesced channel
	// updates, EXPIRING) and the end of connections whose token expired:
	// a hubtest.Clock lets a test move time instead of waiting.
	Clock hub.Clock
	// ExpiryWarning overrides PARLEY_TOKEN_EXPIRY_WARNING.
	ExpiryWarning time.Duration
}

// Server is a running Parley server over a real HTTP listener.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:port.
	URL string
	// DatabaseURL is the database it uses.
	DatabaseURL string
	// Store is its database, for assertions on stored rows.
	Store *db.Store
	// Broker and Presence are its live-event broker and presence tracker,
	// to share with another server in the same test.
	Broker   pubsub.Broker
	Presence presence.Tracker
	Secret   []byte
	// Queue is its delivery queue, nil without Options.Delivery.
	Queue *queue.Queue
	// Chat is its chat service, for what no client can do, such as
	// running the media sweep.
	Chat *chat.Service
	// MediaDir is the directory of its media storage, unless
	// Options.Media gave one.
	MediaDir string
	// Hub is its realtime engine, for readiness: Hub.Subscriptions
	// counts the subscriptions that receive live events.
	Hub     *hub.Hub
	t       testing.TB
	ts      *httptest.Server
	handler *server.Handler
}

// Shutdown shuts the server down as the parley command does on SIGTERM:
// it stops accepting, closes every WebSocket (1012) and ends every event
// stream, and waits for them until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.ts.Config.Shutdown(ctx); err != nil {
		return err
	}
	return s.handler.Shutdown(ctx)
}

// NewServer starts a server on backend b; it stops when the test ends.
func NewServer(t testing.TB, b Backend, opts Options) *Server {
	t.Helper()
	ctx := context.Background()
	dbURL := opts.DatabaseURL
	if dbURL == "" {
		dbURL = b.NewURL(t)
	}
	store, err := db.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	if _, err := store.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	secret := []byte("parleytest-secret-0123456789abcdef")
	log := slog.New(logging.NewHandler(newTestWriter(t), logging.Text, slog.LevelWarn, requestid.LogAttrs))
	broker, presence := opts.Broker, opts.Presence
	if redisURL := os.Getenv("TEST_REDIS_URL"); b.Name == "postgres" && redisURL != "" {
		if broker == nil {
			broker = redisBroker(t, redisURL, log)
		}
		if presence == nil {
			presence = redisPresence(t, redisURL)
		}
	}
	if b.nodes != nil {
		if broker == nil {
			broker = b.nodes.broker
		}
		if presence == nil {
			presence = b.nodes.presence
		}
	}
	if broker == nil {
		mem := memory.New(pubsub.Options{Logger: log})
		t.Cleanup(func() { _ = mem.Close() })
		broker = mem
	}
	if presence == nil {
		presence = presencememory.New()
	}
	var verifierOpts []auth.VerifierOption
	if opts.TokenLeeway > 0 {
		verifierOpts = append(verifierOpts, auth.WithLeeway(opts.TokenLeeway))
	}
	if opts.NoAdmin {
		verifierOpts = append(verifierOpts, auth.WithoutAdmin())
	}
	verifier := auth.NewVerifier(secret, verifierOpts...)
	hubOpts := hub.Options{Decode: chat.DecodeEvent, Sequence: chat.SequenceOf, Logger: log, Clock: opts.Clock}
	if opts.Tracer != nil {
		hubOpts.Observe = tracing.DeliverHook(opts.Tracer, chat.TraceParentOf)
		store.ObserveQueries(tracing.QueryObserver(opts.Tracer, store.Dialect()))
	}
	h, err := hub.New(broker, hubOpts)
	if err != nil {
		t.Fatalf("hub: %v", err)
	}
	var rates *ratelimit.Limits
	if opts.RateLimits != nil {
		rates = ratelimit.New(*opts.RateLimits)
	}
	mediaOpts, mediaDir := opts.Media, ""
	if mediaOpts.Storage == nil {
		mediaDir = filepath.Join(t.TempDir(), "media")
		mediaOpts.Storage = media.NewDir(mediaDir)
	}
	if mediaOpts.Signer == nil {
		mediaOpts.Signer = media.NewSigner(secret)
	}
	chatOpts := chat.Options{
		Limits: opts.ChatLimits, Logger: log, Broker: broker, Hub: h, Presence: presence, TypingTimeout: opts.TypingTimeout,
		Verifier: verifier, PushAlways: opts.PushAlways, RateLimits: rates, Media: mediaOpts, ExpiryWarning: opts.ExpiryWarning,
		SystemMessages: opts.SystemMessages,
	}
	q := openDelivery(t, opts.Delivery, store, log, &chatOpts)
	svc := chat.New(store, chatOpts)
	if q != nil {
		if err := q.Start(ctx, svc); err != nil {
			t.Fatalf("start delivery queue: %v", err)
		}
	}
	hooks := opts.Realtime
	if h, ok := any(svc).(server.RealtimeHooks); ok && hooks == nil {
		hooks = h
	}
	handler := server.NewHandler(server.Config{
		Chat: svc, Hub: h, Verifier: verifier, Logger: log,
		Limits: opts.ServerLimits, DisableIntrospection: opts.DisableIntrospection,
		WebSocket: opts.WebSocket, CORSHeaders: opts.CORSHeaders, Realtime: hooks, RequestTimeout: opts.RequestTimeout,
		RateLimits: rates, Tracer: opts.Tracer,
	})
	ts := httptest.NewUnstartedServer(handler)
	ts.Config.RegisterOnShutdown(handler.BeginShutdown)
	ts.Start()
	t.Cleanup(func() {
		handler.BeginShutdown()
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := handler.Shutdown(ctx); err != nil {
			t.Errorf("close websockets: %v", err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("close hub: %v", err)
		}
		if q != nil {
			if err := q.Stop(ctx); err != nil {
				t.Errorf("stop delivery queue: %v", err)
			}
		}
		checkUnreadCounters(t, store)
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &Server{URL: ts.URL, DatabaseURL: dbURL, Store: store, Broker: broker, Presence: presence, Secret: secret, Queue: q, Chat: svc, MediaDir: mediaDir, Hub: h, t: t, ts: ts, handler: handler}
}

// openDelivery builds the delivery cfg configures on store, as the parley
// command does, and sets it in opts; nil without cfg.
func openDelivery(t testing.TB, cfg *setup.Config, store *db.Store, log *slog.Logger, opts *chat.Options) *queue.Queue {
	t.Helper()
	if cfg == nil {
		return nil
	}
	c := *cfg
	c.Logger = log
	if c.FetchPollInterval == 0 {
		c.FetchPollInterval = 100 * time.Millisecond
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = time.Second
	}
	parts, err := setup.New(c)
	if err != nil {
		t.Fatalf("delivery: %v", err)
	}
	if parts.PreSend != nil {
		opts.PreSend = parts.PreSend
	}
	pool, err := store.QueueDB()
	if err != nil {
		t.Fatalf("queue pool: %v", err)
	}
	var listener *pgxpool.Pool
	if store.Dialect() == db.DialectPostgres {
		if listener, err = store.ListenerPool(context.Background()); err != nil {
			t.Fatalf("listener pool: %v", err)
		}
		t.Cleanup(listener.Close)
	}
	q, err := parts.Queue(pool, store.Dialect() == db.DialectSQLite, listener)
	if err != nil {
		t.Fatalf("delivery queue: %v", err)
	}
	opts.Delivery = q
	return q
}

// AdminToken mints a valid admin token for identity.
func (s *Server) AdminToken(identity string) string {
	tok, err := auth.MintAdmin(s.Secret, identity, "", time.Hour, time.Now())
	if err != nil {
		s.t.Fatalf("mint admin token: %v", err)
	}
	return tok
}

// AdminClient returns a client authenticated with an admin token.
func (s *Server) AdminClient(identity string) *Client {
	return &Client{s: s, Authorization: "Bearer " + s.AdminToken(identity)}
}

// redisBroker returns a Redis broker for one server (one node), closed
// when the test ends.
func redisBroker(t testing.TB, url string, log *slog.Logger) pubsub.Broker {
	t.Helper()
	broker, err := redis.NewFromURL(context.Background(), url, pubsub.Options{Logger: log})
	if err != nil {
		t.Fatalf("redis broker: %v", err)
	}
	t.Cleanup(func() {
		if err := broker.Close(); err != nil {
			t.Errorf("close broker: %v", err)
		}
	})
	return broker
}

// redisPresence returns a Redis presence tracker for one server (one
// node), closed when the test ends. The servers of one test form a
// cluster of their own (see PresenceCluster).
func redisPresence(t testing.TB, url string) presence.Tracker {
	t.Helper()
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	tracker, err := presenceredis.NewFromURL(context.Background(), url, "test-"+hex.EncodeToString(id[:]), presenceredis.Options{Cluster: PresenceCluster(t)})
	if err != nil {
		t.Fatalf("redis presence: %v", err)
	}
	t.Cleanup(func() {
		if err := tracker.Close(); err != nil {
			t.Errorf("close presence: %v", err)
		}
	})
	return tracker
}

// PresenceCluster is the Redis presence cluster of the servers that a test
// starts: one per test, so that tests sharing a Redis server at the same
// time never take over each other's stopped nodes.
func PresenceCluster(t testing.TB) string { return "test:" + testRun + ":" + t.Name() }

// testRun tells this test binary's presence clusters from those of the
// other packages' tests, which go test runs at the same time on the same
// Redis, sometimes under the same test names.
var testRun = func() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}()

// testWriter sends server logs to the test's log until the test's last
// cleanup; later lines (from goroutines that outlive the test) are dropped,
// since logging after a test completes panics.
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTestWriter(t testing.TB) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// Token mints a valid token for identity.
func (s *Server) Token(identity string) string {
	tok, err := auth.Mint(s.Secret, identity, "", time.Hour, time.Now())
	if err != nil {
		s.t.Fatalf("mint token: %v", err)
	}
	return tok
}

// Client returns a client authenticated as identity; "" is anonymous.
func (s *Server) Client(identity string) *Client {
	c := &Client{s: s, Header: http.Header{}}
	if identity != "" {
		c.Authorization = "Bearer " + s.Token(identity)
	}
	return c
}

// Client speaks GraphQL over HTTP POST to one server.
type Client struct {
	s *Server
	// Authorization is sent as the Authorization header when not empty.
	Authorization string
	// Header holds more headers sent with every request, such as
	// traceparent.
	Header http.Header
}

// Error is one GraphQL error of a response.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is extensions.code.
func (e Error) Code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// Response is a decoded GraphQL response.
type Response struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []Error         `json:"errors"`
}

// Code is the code of the first error, or "" when there is none.
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].Code()
}

// Post sends one operation and decodes the response.
func (c *Client) Post(query string, vars map[string]any) *Response {
	c.s.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		c.s.t.Fatalf("encode request: %v", err)
	}
	return c.PostRaw(body)
}

// PostRaw sends a raw request body and decodes the response.
func (c *Client) PostRaw(body []byte) *Response {
	c.s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.s.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		c.s.t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.send(req)
}

// Get sends a query over GET.
func (c *Client) Get(query string, vars map[string]any) *Response {
	c.s.t.Helper()
	q := url.Values{"query": {query}}
	if vars != nil {
		b, err := json.Marshal(vars)
		if err != nil {
			c.s.t.Fatalf("encode variables: %v", err)
		}
		q.Set("variables", string(b))
	}
	req, err := http.NewRequest(http.MethodGet, c.s.URL+"/graphql?"+q.Encode(), nil)
	if err != nil {
		c.s.t.Fatalf("new request: %v", err)
	}
	return c.send(req)
}

func (c *Client) send(req *http.Request) *Response {
	c.s.t.Helper()
	if c.Authorization != "" {
		req.Header.Set("Authorization", c.Authorization)
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.s.t.Fatalf("%s /graphql: %v", req.Method, err)
	}
	defer resp.Body.Close()
	var r Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		c.s.t.Fatalf("decode response (status %d): %v", resp.StatusCode, err)
	}
	r.Status = resp.StatusCode
	return &r
}

// Do sends an operation that must succeed and decodes its data into out
// (when not nil).
func (c *Client) Do(query string, vars map[string]any, out any) {
	c.s.t.Helper()
	r := c.Post(query, vars)
	if len(r.Errors) > 0 {
		c.s.t.Fatalf("%s\nunexpected errors: %+v", firstLine(query), r.Errors)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			c.s.t.Fatalf("decode data %s: %v", r.Data, err)
		}
	}
}

// Fails sends an operation that must fail with code, and returns the error
// message.
func (c *Client) Fails(code, query string, vars map[string]any) string {
	c.s.t.Helper()
	r := c.Post(query, vars)
	if len(r.Errors) == 0 {
		c.s.t.Fatalf("%s\nwant error %s, got data %s", firstLine(query), code, r.Data)
	}
	if r.Code() != code {
		c.s.t.Fatalf("%s\nwant error %s, got %+v", firstLine(query), code, r.Errors)
	}
	return r.Errors[0].Message
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// unreadByScanSQL counts each membership's unread messages and mentions
// from the messages themselves, as chat defines them: from the first
// index the member has not read (the one after their read horizon, or
// their history start), the messages not deleted, not SYSTEM and not
// their own, and the mentions of them.
const unreadByScanSQL = `SELECT m.id AS member_id,
	c.counted_messages - m.read_ordinal - m.skipped_unread AS counted,
	(SELECT COUNT(*) FROM messages g WHERE g.channel_id = m.channel_id AND g.idx >= ` + db.ReadFromSQL + `
		AND g.deleted_at IS NULL AND g.type <> 'SYSTEM' AND (g.author_id IS NULL OR g.author_id <> m.user_id)) AS scanned,
	m.mentions_unread AS counted_mentions,
	(SELECT COUNT(*) FROM message_mentions x WHERE x.user_id = m.user_id AND x.channel_id = m.channel_id
		AND x.idx >= ` + db.ReadFromSQL + `) AS scanned_mentions
FROM members m JOIN channels c ON c.id = m.channel_id`

// checkUnreadCounters fails t when a membership's unread counters (see
// chat/unread.go) disagree with its messages: every test that runs a
// server checks them when it ends, so that whatever a test did to the
// messages and horizons, the counters had to follow. A test that closed
// the database checks nothing.
func checkUnreadCounters(t testing.TB, store *db.Store) {
	ctx := context.Background()
	if store.Ping(ctx) != nil {
		return // the test closed the database
	}
	var rows []struct {
		MemberID                         string
		Counted, Scanned                 int
		CountedMentions, ScannedMentions int
	}
	if err := store.DB(ctx).Raw(unreadByScanSQL).Scan(&rows).Error; err != nil {
		t.Errorf("check unread counters: %v", err)
		return
	}
	for _, r := range rows {
		if r.Counted != r.Scanned || r.CountedMentions != r.ScannedMentions {
			t.Errorf("membership %s: counters say %d unread messages and %d mentions, the messages %d and %d",
				r.MemberID, r.Counted, r.CountedMentions, r.Scanned, r.ScannedMentions)
		}
	}
}
