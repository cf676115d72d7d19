package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/config"
)

var update = flag.Bool("update", false, "rewrite the configuration table of docs/configuration.md from the settings table")

// tableStart and tableEnd mark the generated configuration table in
// docs/configuration.md.
const (
	tableStart = "<!-- settings: generated from cmd/parley/settings.go by `go test ./cmd/parley -run TestREADMESettings -update` -->\n"
	tableEnd   = "<!-- end of settings -->\n"
)

// TestREADMESettings: the configuration table of docs/configuration.md (the
// README's reference on settings) is the one generated from the settings
// table.
func TestREADMESettings(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "configuration.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := strings.Cut(string(readme), tableStart)
	_, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok || !ok2 {
		t.Fatalf("docs/configuration.md lacks the markers %q and %q", tableStart, tableEnd)
	}
	want := before + tableStart + config.MarkdownTable(settings(&settingsConfig{})) + tableEnd + after
	if want == string(readme) {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/configuration.md's settings table is stale: run go test ./cmd/parley -run TestREADMESettings -update")
}

// TestHelp: every command's --help exits 0 and lists its flags; serve's
// lists every setting with its variable and default.
func TestHelp(t *testing.T) {
	table := settings(&settingsConfig{})
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"parley serve --help", "parley migrate up|down|status", "parley version"}},
		{[]string{"-h"}, []string{"parley serve --help"}},
		{[]string{"help"}, []string{"parley serve --help"}},
		{[]string{"serve", "--help"}, nil},
		{[]string{"token", "--help"}, []string{"--identity", "--ttl", "--channel", "--database-url", "--jwt-secret", "PARLEY_JWT_SECRET"}},
		{[]string{"token", "-h"}, []string{"--identity"}},
		{[]string{"migrate", "--help"}, []string{"parley migrate down", "--to", "--database-url"}},
		{[]string{"migrate", "status", "--help"}, []string{"parley migrate down", "--database-url"}},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), tc.args, envOf(nil), &out, io.Discard); err != nil {
			t.Errorf("parley %s: %v", strings.Join(tc.args, " "), err)
			continue
		}
		want := tc.want
		if tc.args[0] == "serve" {
			for _, s := range table {
				want = append(want, "--"+s.Flag()+"  ("+s.Env+"; ")
				if s.Default != "" {
					want = append(want, "("+s.Env+"; default "+s.Default+")")
				}
			}
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("parley %s lacks %q:\n%s", strings.Join(tc.args, " "), w, out.String())
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, envOf(nil), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "parley ") || !strings.HasPrefix(lines[1], "commit ") ||
			lines[2] != runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Errorf("parley %s:\n%s", args[0], out.String())
		}
	}
}

// TestInvalidSettings: every invalid value is reported at once, naming its
// variable or flag, before the database, Redis or the listener is opened,
// and values that may hold secrets are not repeated.
func TestInvalidSettings(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"DATABASE_URL":           "sqlite://" + filepath.Join(dir, "p.db"),
		"REDIS_URL":              "redis://:hunter2@127.0.0.1:1/db",
		"PARLEY_ADDR":            "8080",
		"PARLEY_PPROF_ADDR":      "localhost:http-nope",
		"PARLEY_JWT_SECRET":      "hunter2",
		"PARLEY_MAX_PAGE_SIZE":   "-1",
		"PARLEY_TYPING_TIMEOUT":  "soon",
		"PARLEY_INTROSPECTION":   "maybe",
		"PARLEY_ALLOWED_ORIGINS": "app.example.com, [bad",
		"PARLEY_CORS_HEADERS":    "X-Ok,Bad Header",
	}
	err := run(context.Background(), []string{"serve", "--log-level", "loud", "--max-query-depth", "99999999999999999999"}, envOf(env), io.Discard, io.Discard)
	if err == nil {
		t.Fatal("serve started")
	}
	msg := err.Error()
	for _, want := range []string{
		`invalid PARLEY_ADDR="8080": want host:port`,
		`invalid PARLEY_PPROF_ADDR="localhost:http-nope": unknown port`,
		"invalid PARLEY_JWT_SECRET: it is 7 bytes",
		`invalid PARLEY_MAX_PAGE_SIZE="-1": want a positive integer`,
		`invalid PARLEY_TYPING_TIMEOUT="soon": want a positive duration`,
		`invalid PARLEY_INTROSPECTION="maybe": want true or false`,
		`invalid PARLEY_ALLOWED_ORIGINS="app.example.com, [bad": "[bad": want a host pattern`,
		`invalid --log-level="loud": want debug, info, warn or error`,
		`invalid REDIS_URL: redis url: redis: invalid database number`,
		`invalid PARLEY_CORS_HEADERS="X-Ok,Bad Header": "Bad Header": want a header name`,
		`invalid --max-query-depth="99999999999999999999": want a positive integer`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error repeats a secret:\n%s", msg)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Errorf("the database was opened: %v %v", entries, err)
	}
	err = run(context.Background(), []string{"serve"}, envOf(map[string]string{"DATABASE_URL": "postgres://u:hunter2@[::1"}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "invalid DATABASE_URL: parse postgres URL") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad DATABASE_URL: %v", err)
	}
	err = run(context.Background(), []string{"serve", "--no-such-flag"}, envOf(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("unknown flag: %v", err)
	}
}

// TestFlagWinsOverEnvironment: a flag of parley serve overrides its
// variable.
func TestFlagWinsOverEnvironment(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":            "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET":       strings.Repeat("s", 32),
		"PARLEY_MAX_QUERY_FIELDS": "1",
	}
	token := mintToken(t, env, "--identity", "alice")
	base, _, _ := startServe(t, env, "--max-query-fields", "4", "--introspection=false")
	if _, code := post(t, base, token, `{ me { id identity friendlyName } }`); code != "" {
		t.Errorf("4 fields with --max-query-fields 4: %s", code)
	}
	if _, code := post(t, base, token, `{ me { id identity friendlyName createdAt } }`); code != "BAD_USER_INPUT" {
		t.Errorf("5 fields with --max-query-fields 4: %q", code)
	}
	if _, code := post(t, base, token, `{ __schema { queryType { name } } }`); code == "" {
		t.Errorf("introspection answered with --introspection false")
	}
}

// TestCORSHeadersSetting: PARLEY_CORS_HEADERS (or --cors-headers) adds to
// the headers a preflight allows.
func TestCORSHeadersSetting(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET":   strings.Repeat("s", 32),
		"PARLEY_CORS_HEADERS": "X-From-Env",
	}
	base, _, _ := startServe(t, env, "--cors-headers", "X-Client-Build, X-Tenant")
	req, err := http.NewRequest(http.MethodOptions, base+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	allowed := resp.Header.Get("Access-Control-Allow-Headers")
	if !strings.HasSuffix(allowed, ", x-apollo-operation-name, X-Client-Build, X-Tenant") || strings.Contains(allowed, "X-From-Env") {
		t.Errorf("preflight allows %q", allowed)
	}
}

// TestJSONLogsCarryRequestID: PARLEY_LOG_FORMAT=json writes JSON lines, and
// a request's lines carry its request_id, the one its response echoes.
func TestJSONLogsCarryRequestID(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":      "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET": strings.Repeat("s", 32),
		"PARLEY_LOG_FORMAT": "json",
		"PARLEY_LOG_LEVEL":  "debug",
	}
	base, logs, _ := startServe(t, env)
	ids := map[string]string{}
	for _, incoming := range []string{"client-id-1", ""} {
		req, err := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if incoming != "" {
			req.Header.Set("X-Request-Id", incoming)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ids[incoming] = resp.Header.Get("X-Request-Id")
	}
	if ids["client-id-1"] != "client-id-1" || ids[""] == "" {
		t.Fatalf("response ids: %v", ids)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) < 2 && time.Now().Before(deadline) {
		// The line is written as the handler returns, which may be after
		// the client has the response.
		time.Sleep(10 * time.Millisecond)
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec map[string]any
			if line == "" {
				continue
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("not a JSON line: %s", line)
			}
			if rec["msg"] == "request" && rec["path"] == "/healthz" {
				id, _ := rec["request_id"].(string)
				seen[id] = true
			}
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("no request line with request_id %q in:\n%s", id, logs)
		}
	}
}

// TestVersionFromBuildArguments: a build without version control
// information (the container image's) reports the -X values it was given.
func TestVersionFromBuildArguments(t *testing.T) {
	defer func(v, c string) { buildVersion, buildCommit = v, c }(buildVersion, buildCommit)
	buildVersion, buildCommit = "v1.2.3", "0123abc"
	got := version()
	if !strings.HasPrefix(got, "parley v1.2.3\ncommit 0123abc\n") {
		t.Errorf("version:\n%s", got)
	}
}
