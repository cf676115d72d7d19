package parley_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/parleychat/parley"

// TestImportRules holds the package edges of ../shared/ARCHITECTURE.md.
// Two kinds of rule, both by import-path prefix:
//   - what a package must never reach, directly or through others (go
//     list -deps): the rules in chat know nothing of GraphQL or the
//     transports, the hub, the brokers and presence know nothing of chat,
//     models import nothing of ours: data goes resolver → chat → store →
//     broker → hub → transport with no step back up;
//   - which packages may import a library directly: go-redis only in the
//     Redis broker and presence, GORM only in chat, db and models, goose
//     (migrations) only in db, River (the job queue) only in
//     delivery/queue, each push protocol's library only in its provider,
//     the store only in chat and the wiring (and the test and load
//     helpers), the Prometheus client only in metrics, the OpenTelemetry
//     SDK and exporter only in tracing (others use its API).
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if !slices.Contains(pkgs[mod+"/chat"].Imports, "gorm.io/gorm") {
		t.Fatalf("go list shows chat without its GORM import: %v", pkgs[mod+"/chat"].Imports)
	}
	for _, want := range []string{"/hub", "/presence", "/presence/memory", "/presence/redis", "/pubsub", "/pubsub/memory", "/pubsub/redis"} {
		if _, ok := pkgs[mod+want]; !ok {
			t.Fatalf("go list does not show %s%s", mod, want)
		}
	}
	never := []struct {
		pkg      string
		prefixes []string
	}{
		{"/chat", []string{mod + "/graph", mod + "/resolvers", mod + "/server", "github.com/99designs/gqlgen",
			mod + "/delivery/", "github.com/riverqueue/", "github.com/sideshow/apns2", "golang.org/x/oauth2"}},
		{"/models", []string{mod + "/"}},
		{"/mergepatch", []string{mod + "/"}},
		{"/internal/aiosync", []string{mod + "/"}},
		// The hub moves topics and bytes to subscriptions: it knows
		// neither the rules nor GraphQL nor the transports.
		{"/hub", []string{mod + "/chat", mod + "/models", mod + "/db", mod + "/graph", mod + "/resolvers", mod + "/server", mod + "/presence", "github.com/99designs/gqlgen", "github.com/redis/go-redis/", "gorm.io/"}},
		{"/apperr", []string{mod + "/"}},
		{"/config", []string{mod + "/"}},
		{"/logging", []string{mod + "/"}},
		{"/requestid", []string{mod + "/"}},
		{"/pubsub", []string{mod + "/chat", mod + "/models", mod + "/presence", "github.com/redis/go-redis/"}},
		{"/pubsub/memory", []string{mod + "/chat", mod + "/models", mod + "/presence", "github.com/redis/go-redis/"}},
		{"/pubsub/redis", []string{mod + "/chat", mod + "/models", mod + "/presence"}},
		{"/presence", []string{mod + "/", "github.com/redis/go-redis/"}},
		{"/presence/memory", []string{mod + "/chat", mod + "/models", mod + "/pubsub", "github.com/redis/go-redis/"}},
		{"/presence/redis", []string{mod + "/chat", mod + "/models", mod + "/pubsub"}},
		{"/auth", []string{mod + "/chat", mod + "/db", "gorm.io/"}},
		{"/db", []string{mod + "/chat", mod + "/graph", mod + "/server"}},
		{"/graph", []string{mod + "/resolvers", mod + "/server"}},
		{"/resolvers", []string{mod + "/server"}},
		{"/delivery", []string{mod + "/chat", mod + "/db", mod + "/auth", mod + "/pubsub", mod + "/presence", "github.com/riverqueue/"}},
		{"/delivery/queue", []string{mod + "/chat", mod + "/db", mod + "/graph", mod + "/server"}},
		{"/delivery/push/fcm", []string{mod + "/chat", mod + "/db", "github.com/riverqueue/"}},
		{"/delivery/push/apns", []string{mod + "/chat", mod + "/db", "github.com/riverqueue/"}},
		{"/delivery/webhook", []string{mod + "/chat", mod + "/db", "github.com/riverqueue/"}},
		{"/delivery/setup", []string{mod + "/chat", mod + "/db", mod + "/graph", mod + "/server"}},
		// The rate limits count per key: they know who is calling, not
		// what is called.
		{"/ratelimit", []string{mod + "/chat", mod + "/db", mod + "/graph", mod + "/resolvers", mod + "/server", mod + "/hub", "github.com/99designs/gqlgen", "gorm.io/", "github.com/redis/go-redis/"}},
	}
	for _, rule := range never {
		p, ok := pkgs[mod+rule.pkg]
		if !ok {
			t.Errorf("rule for %s%s: no such package", mod, rule.pkg)
			continue
		}
		for _, dep := range p.Deps {
			for _, prefix := range rule.prefixes {
				if strings.HasPrefix(dep, prefix) && dep != p.ImportPath {
					t.Errorf("%s depends on %s", p.ImportPath, dep)
				}
			}
		}
	}
	onlyIn := []struct {
		prefix string
		who    []string
	}{
		{"github.com/redis/go-redis/", []string{"/pubsub/redis", "/presence/redis", "/internal/redistest", "/internal/redistrace"}},
		{"gorm.io/", []string{"/chat", "/db", "/models", "/parleytest"}},
		{"github.com/pressly/goose/", []string{"/db"}},
		{"github.com/riverqueue/", []string{"/delivery/queue"}},
		{"github.com/sideshow/apns2", []string{"/delivery/push/apns"}},
		{"golang.org/x/oauth2", []string{"/delivery/push/fcm"}},
		{"golang.org/x/time/rate", []string{"/ratelimit"}},
		{"github.com/prometheus/", []string{"/metrics"}},
		{"go.opentelemetry.io/otel/sdk", []string{"/tracing"}},
		{"go.opentelemetry.io/otel/exporters/", []string{"/tracing"}},
		{mod + "/db", []string{"/chat", "/cmd/parley", "/parleytest", "/bench/scenario"}},
	}
	for _, rule := range onlyIn {
		for path, p := range pkgs {
			allowed := slices.ContainsFunc(rule.who, func(w string) bool { return path == mod+w })
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, rule.prefix) && !allowed {
					t.Errorf("%s imports %s; only %v may import %s*", path, imp, rule.who, rule.prefix)
				}
			}
		}
	}
}

// pkg is what go list says of one package of the module.
type pkg struct {
	ImportPath string
	Imports    []string // direct imports, tests excluded
	Deps       []string // everything it reaches, tests excluded
}

// listPackages returns every package of the module by import path.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...").Output()
	if err != nil {
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
}

// TestRequestLogsCarryContext: the packages that serve requests log with
// the *Context methods of slog, so that every line of a request carries
// what logging reads from its context (the request id). A line logged
// outside any request says so with a "// no request" comment.
func TestRequestLogsCarryContext(t *testing.T) {
	noContext := regexp.MustCompile(`\blog\.(Debug|Info|Warn|Error)\(`)
	for _, dir := range []string{"server", "resolvers"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i, line := range strings.Split(string(src), "\n") {
				if noContext.MatchString(line) && !strings.Contains(line, "// no request") {
					t.Errorf("%s:%d logs without a context: %s", f, i+1, strings.TrimSpace(line))
				}
			}
		}
	}
}
