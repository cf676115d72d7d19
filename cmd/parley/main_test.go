package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/db"
)

// lockedBuffer is a bytes.Buffer safe for the server's concurrent logging.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// startServe runs `parley serve` with flags until the test ends and returns its base
// URL, its logs and a stop function that signals it and returns run's error.
func startServe(t *testing.T, env map[string]string, flags ...string) (string, *lockedBuffer, func() error) {
	t.Helper()
	env["PARLEY_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, flags...), envOf(env), io.Discard, logs) }()
	stop := sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { _ = stop() })
	// The address, from a text or a JSON line.
	addr := regexp.MustCompile(`msg="parley serving" addr=(\S+)|"msg":"parley serving","addr":"([^"]+)"`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := addr.FindStringSubmatch(logs.String()); m != nil {
			return "http://" + m[1] + m[2], logs, stop
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("server did not start:\n%s", logs)
	return "", nil, nil
}

func mintToken(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if err := run(context.Background(), append([]string{"token"}, args...), envOf(env), &out, &errs); err != nil {
		t.Fatalf("token: %v\n%s", err, errs.String())
	}
	return strings.TrimSpace(out.String())
}

func me(t *testing.T, base, token string) (string, int) {
	t.Helper()
	status, body := postGraphQL(t, base, token, `{"query":"{ me { identity friendlyName } }"}`)
	var out struct {
		Data struct {
			Me struct{ Identity, FriendlyName string }
		}
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return out.Data.Me.Identity + "/" + out.Data.Me.FriendlyName, status
}

// TestDevelopmentSecret: without PARLEY_JWT_SECRET, the server and `parley
// token` share a secret kept in the database, and it survives a restart.
func TestDevelopmentSecret(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db")}
	token := mintToken(t, env, "--identity", "alice", "--name", "Alice", "--ttl", "1h")
	base, logs, stop := startServe(t, env)
	if who, status := me(t, base, token); who != "alice/Alice" || status != http.StatusOK {
		t.Fatalf("me = %q (%d)", who, status)
	}
	if !strings.Contains(logs.String(), "development secret") {
		t.Fatalf("no warning about the development secret in:\n%s", logs)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	base, _, _ = startServe(t, env)
	if who, _ := me(t, base, token); who != "alice/Alice" {
		t.Fatalf("token not accepted after restart: %q", who)
	}
}

func TestConfiguredSecret(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":      "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET": strings.Repeat("s", 32),
	}
	token := mintToken(t, env, "--identity", "bob")
	base, logs, _ := startServe(t, env)
	if who, _ := me(t, base, token); who != "bob/" {
		t.Fatalf("me = %q", who)
	}
	if strings.Contains(logs.String(), "development secret") {
		t.Fatal("warned about a development secret although PARLEY_JWT_SECRET is set")
	}
	other := mintToken(t, map[string]string{"PARLEY_JWT_SECRET": strings.Repeat("x", 32)}, "--identity", "bob")
	if _, status := me(t, base, other); status != http.StatusUnauthorized {
		t.Fatalf("token signed with another secret: status %d, want 401", status)
	}
}

// TestGracefulShutdown: a request in flight when the signal comes finishes.
func TestGracefulShutdown(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db")}
	base, _, stop := startServe(t, env)
	pr, pw := io.Pipe()
	result := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/graphql", "application/json", pr)
		if err != nil {
			result <- -1
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		result <- resp.StatusCode
	}()
	if _, err := io.WriteString(pw, `{"query":"{ __typename `); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the request is now in flight
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(100 * time.Millisecond)
	if _, err := io.WriteString(pw, `}"}`); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if status := <-result; status != http.StatusOK {
		t.Fatalf("in-flight request got status %d", status)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}

func TestCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"token"}, map[string]string{"PARLEY_JWT_SECRET": strings.Repeat("s", 32)}, "--identity is required"},
		{[]string{"token", "--identity", "a"}, map[string]string{"PARLEY_JWT_SECRET": "short"}, "at least 32"},
		{[]string{"token", "--identity", "a", "--channel", "general=admin"}, map[string]string{"PARLEY_JWT_SECRET": strings.Repeat("s", 32)}, "read or =write"},
		{[]string{"token", "--identity", "a", "--channel", "=read"}, map[string]string{"PARLEY_JWT_SECRET": strings.Repeat("s", 32)}, "read or =write"},
		{[]string{"serve"}, map[string]string{"DATABASE_URL": "mysql://x"}, "mysql"},
		{[]string{"serve"}, map[string]string{"PARLEY_MAX_MESSAGE_BYTES": "-1"}, "PARLEY_MAX_MESSAGE_BYTES"},
		{[]string{"serve"}, map[string]string{"PARLEY_AUTO_MIGRATE": "sometimes"}, "PARLEY_AUTO_MIGRATE"},
		{[]string{"bogus"}, nil, "unknown command"},
	} {
		err := run(context.Background(), tc.args, envOf(tc.env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
}

// TestPprof: PARLEY_PPROF_ADDR serves the profiling endpoints on a listener
// of their own; the public port does not.
func TestPprof(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":      "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_PPROF_ADDR": "127.0.0.1:0",
	}
	base, logs, _ := startServe(t, env)
	m := regexp.MustCompile(`msg="pprof serving" addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no pprof address in:\n%s", logs)
	}
	resp, err := http.Get("http://" + m[1] + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof: %d %v %.200s", resp.StatusCode, err, body)
	}
	resp, err = http.Get(base + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("the public port serves pprof (%v)", err)
	}
}

// runCmd runs a parley command that must succeed and returns its stdout.
func runCmd(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if err := run(context.Background(), args, envOf(env), &out, &errs); err != nil {
		t.Fatalf("parley %s: %v\n%s", strings.Join(args, " "), err, errs.String())
	}
	return out.String()
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestMigrateCommand: `parley migrate status|up|down` on a fresh database.
func TestMigrateCommand(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db")}
	files, err := os.ReadDir(filepath.Join("..", "..", "db", "migrations", "sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	latest := len(files)
	status := runCmd(t, env, "migrate", "status")
	if !regexp.MustCompile(`(?m)^1 +00001_initial_schema\.sql +pending$`).MatchString(status) ||
		!strings.Contains(status, fmt.Sprintf("database at migration 0; this binary's newest is %d", latest)) {
		t.Errorf("status of a fresh database:\n%s", status)
	}
	if out := runCmd(t, env, "migrate", "up"); !regexp.MustCompile(fmt.Sprintf(`^applied 00001_initial_schema\.sql \([0-9.]+(ms|s)\)\n(applied .*\n)*database at migration %d;`, latest)).MatchString(out) {
		t.Errorf("migrate up:\n%s", out)
	}
	if out := runCmd(t, env, "migrate", "up"); out != fmt.Sprintf("database at migration %d; this binary's newest is %d\n", latest, latest) {
		t.Errorf("migrate up again:\n%s", out)
	}
	if status := runCmd(t, env, "migrate", "status"); !regexp.MustCompile(`(?m)^1 +00001_initial_schema\.sql +\d{4}-\d\d-\d\dT`).MatchString(status) {
		t.Errorf("status after up:\n%s", status)
	}
	// Down goes one migration at a time, but not past the first.
	for i := latest; i > 1; i-- {
		if out := runCmd(t, env, "migrate", "down"); !strings.HasPrefix(out, "rolled back "+files[i-1].Name()) {
			t.Errorf("migrate down from %d:\n%s", i, out)
		}
	}
	err = run(context.Background(), []string{"migrate", "down"}, envOf(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--to 0") {
		t.Errorf("migrate down of the first migration: error %v; want a pointer to --to 0", err)
	}
	if out := runCmd(t, env, "migrate", "down", "--to", "0"); !strings.HasPrefix(out, "rolled back 00001_initial_schema.sql") {
		t.Errorf("migrate down --to 0:\n%s", out)
	}
	for _, args := range [][]string{{"migrate"}, {"migrate", "sideways"}, {"migrate", "up", "--to", "1"}, {"migrate", "status", "extra"}} {
		if err := run(context.Background(), args, envOf(env), io.Discard, io.Discard); err == nil {
			t.Errorf("parley %s succeeded; want an error", strings.Join(args, " "))
		}
	}
}

// TestServeWithoutAutoMigrate: with PARLEY_AUTO_MIGRATE=false the server
// starts on a database whose schema is behind and reports not ready until
// `parley migrate up` has run.
func TestServeWithoutAutoMigrate(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET":   strings.Repeat("s", 32),
		"PARLEY_AUTO_MIGRATE": "false",
	}
	base, logs, _ := startServe(t, env)
	if status, body := get(t, base+"/readyz"); status != http.StatusServiceUnavailable || body != "database schema behind\n" {
		t.Errorf("/readyz before migrating: %d %q", status, body)
	}
	if !strings.Contains(logs.String(), "database schema is behind") {
		t.Errorf("no warning about the schema in:\n%s", logs)
	}
	runCmd(t, env, "migrate", "up")
	if status, body := get(t, base+"/readyz"); status != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz after migrating: %d %q", status, body)
	}
}

// TestServeRefusesNewerSchema: a database migrated by a newer Parley stops
// the server at start, with or without PARLEY_AUTO_MIGRATE.
func TestServeRefusesNewerSchema(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db"), "PARLEY_JWT_SECRET": strings.Repeat("s", 32)}
	runCmd(t, env, "migrate", "up")
	store, err := db.Open(context.Background(), env["DATABASE_URL"], nil)
	if err != nil {
		t.Fatal(err)
	}
	err = store.DB(context.Background()).Exec("INSERT INTO " + db.MigrationsTable + " (version_id, is_applied) VALUES (999, true)").Error
	if cerr := store.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	for _, auto := range []string{"true", "false"} {
		env["PARLEY_AUTO_MIGRATE"] = auto
		err := run(context.Background(), []string{"serve"}, envOf(env), io.Discard, io.Discard)
		if !errors.Is(err, db.ErrSchemaTooNew) || !strings.Contains(err.Error(), "999") {
			t.Errorf("PARLEY_AUTO_MIGRATE=%s: serve returned %v; want ErrSchemaTooNew naming migration 999", auto, err)
		}
	}
}

// TestServeAdoptsAutoMigrateDatabase: a SQLite database made by a Parley
// that migrated with AutoMigrate (db's legacy fixture) is migrated on start
// and serves its users, channels and messages, signed with its stored
// development secret.
func TestServeAdoptsAutoMigrateDatabase(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "db", "testdata", "legacy", "automigrate.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "legacy.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": "sqlite://" + path}
	base, logs, _ := startServe(t, env)
	if !strings.Contains(logs.String(), `msg="migration applied" version=1`) {
		t.Errorf("no migration logged:\n%s", logs)
	}
	token := mintToken(t, env, "--identity", "alice")
	body := `{"query":"{ channelByUniqueName(uniqueName: \"general\") { friendlyName messagesCount } me { friendlyName } }"}`
	got := postBody(t, base, token, body)
	if want := `{"data":{"channelByUniqueName":{"friendlyName":"General","messagesCount":2},"me":{"friendlyName":"Alice"}}}`; got != want {
		t.Errorf("got %s\nwant %s\nserver log:\n%s", got, want, logs)
	}
}

// TestShutdownWithRealtime: SIGTERM with a WebSocket subscription and an
// SSE stream open closes the socket with 1012 (no complete), ends the
// stream, and serve returns nil within PARLEY_SHUTDOWN_TIMEOUT.
func TestShutdownWithRealtime(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":            "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET":       strings.Repeat("s", 32),
		"PARLEY_SHUTDOWN_TIMEOUT": "5s",
	}
	token := mintToken(t, env, "--identity", "bob")
	base, _, stop := startServe(t, env)
	me(t, base, token) // bob exists

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for _, m := range []string{
		`{"type":"connection_init","payload":{"authorization":"Bearer ` + token + `"}}`,
		`{"id":"1","type":"subscribe","payload":{"query":"subscription { userUpdated(identity: \"bob\") { reasons } }"}}`,
		// Started after the subscription, so answered once it is live.
		`{"id":"ready","type":"subscribe","payload":{"query":"{ __typename }"}}`,
	} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"connection_ack", `"id":"ready","type":"next"`, `"id":"ready","type":"complete"`} {
		if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), want) {
			t.Fatalf("want %s, got %s %v", want, data, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql",
		strings.NewReader(`{"query":"subscription { userUpdated(identity: \"bob\") { reasons } }"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	sse, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	events := bufio.NewReader(sse.Body)
	if line, err := events.ReadString('\n'); err != nil || line != ": live\n" {
		t.Fatalf("event stream: %q %v, want the live comment", line, err)
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("shutdown took %v", took)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != 1012 {
				t.Fatalf("websocket closed with %v, want 1012", err)
			}
			break
		}
		if strings.Contains(string(data), `"complete"`) {
			t.Fatalf("got %s before the close", data)
		}
	}
	body, err := io.ReadAll(events)
	if err != nil {
		t.Fatalf("event stream: %v", err)
	}
	if strings.Contains(string(body), "complete") {
		t.Fatalf("event stream completed: %q; want it ended", body)
	}
}
