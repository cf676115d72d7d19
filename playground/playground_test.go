package playground_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/playground"
)

// assetRE finds the src and href attributes of the page's script and link
// elements.
var assetRE = regexp.MustCompile(`<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"`)

// get fetches url from the test server and returns the response and body.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp, string(body)
}

// pageAssets returns the asset URLs referenced by the page's script and
// link elements, failing the test on any absolute or external one.
func pageAssets(t *testing.T, html string) []string {
	t.Helper()
	var urls []string
	for _, m := range assetRE.FindAllStringSubmatch(html, -1) {
		u := m[1]
		if strings.HasPrefix(u, "data:") {
			continue // the empty favicon
		}
		if strings.Contains(u, "//") || strings.HasPrefix(u, "http:") || strings.HasPrefix(u, "https:") {
			t.Errorf("page references a non-local asset %q", u)
			continue
		}
		if !strings.HasPrefix(u, "./playground/assets/") {
			t.Errorf("asset %q is not under ./playground/assets/", u)
		}
		urls = append(urls, u)
	}
	return urls
}

func TestPageAndAssets(t *testing.T) {
	srv := httptest.NewServer(playground.Handler("Parley <chat>", "/graphql"))
	defer srv.Close()

	resp, html := get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET /: Content-Type %q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"http://", "https://", "//cdn", "unpkg", "jsdelivr"} {
		if strings.Contains(html, bad) {
			t.Errorf("page contains %q:\n%s", bad, html)
		}
	}
	for _, want := range []string{
		"<title>Parley &lt;chat&gt;</title>",
		`data-endpoint="/graphql"`,
		"Bearer &lt;paste a token from: parley token --identity alice&gt;",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q:\n%s", want, html)
		}
	}

	assets := pageAssets(t, html)
	want := map[string]string{
		"react.production.min.js":     "text/javascript; charset=utf-8",
		"react-dom.production.min.js": "text/javascript; charset=utf-8",
		"graphiql.min.js":             "text/javascript; charset=utf-8",
		"graphiql.min.css":            "text/css; charset=utf-8",
		"parley-playground.js":        "text/javascript; charset=utf-8",
	}
	if len(assets) != len(want) {
		t.Errorf("page references %d assets, want %d: %q", len(assets), len(want), assets)
	}
	for _, a := range assets {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "./playground/assets/"), "?")
		wantType, ok := want[name]
		if !ok {
			t.Errorf("unexpected asset %q", a)
			continue
		}
		resp, body := get(t, srv.URL+strings.TrimPrefix(a, "."))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", a, resp.StatusCode)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != wantType {
			t.Errorf("GET %s: Content-Type %q, want %q", a, ct, wantType)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("GET %s: Cache-Control %q", a, cc)
		}
		if len(body) < 1000 {
			t.Errorf("GET %s: only %d bytes", a, len(body))
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	srv := httptest.NewServer(playground.Handler("Parley", "/graphql"))
	defer srv.Close()

	for _, p := range []string{
		"/nope",
		"/playground/assets/",
		"/playground/assets/missing.js",
		"/playground/assets/../playground.go",
		"/playground/assets/%2e%2e/playground.go",
	} {
		resp, _ := get(t, srv.URL+p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}
	resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", resp.StatusCode)
	}
}

func TestStripPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/pg/", http.StripPrefix("/pg", playground.Handler("Parley", "/graphql")))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	_, html := get(t, srv.URL+"/pg/")
	assets := pageAssets(t, html)
	if len(assets) == 0 {
		t.Fatal("no assets in page")
	}
	for _, a := range assets {
		resp, _ := get(t, srv.URL+"/pg/"+strings.TrimPrefix(a, "./"))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /pg/%s: status %d", a, resp.StatusCode)
		}
	}
}

// fakeGraphQL answers the playground's introspection query with a small
// schema and anything else with {"data":null}, recording what it was sent.
type fakeGraphQL struct {
	introspection []byte

	mu            sync.Mutex
	introspected  int
	authorization []string
}

func (f *fakeGraphQL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query string `json:"query"`
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !strings.Contains(req.Query, "__schema") {
		io.WriteString(w, `{"data":null}`)
		return
	}
	f.mu.Lock()
	f.introspected++
	f.authorization = append(f.authorization, r.Header.Values("Authorization")...)
	f.mu.Unlock()
	w.Write(f.introspection)
}

// chromium returns the path of a Chromium binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Skip("chromium not installed (apt-get install chromium); skipping browser test")
	return ""
}

func TestBrowserRendersGraphiQL(t *testing.T) {
	bin := chromium(t)
	introspection, err := os.ReadFile("testdata/introspection.json")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeGraphQL{introspection: introspection}
	mux := http.NewServeMux()
	mux.Handle("/graphql", fake)
	mux.Handle("/", playground.Handler("Parley", "/graphql"))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--disable-dev-shm-usage", "--no-first-run",
		"--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-default-apps", "--disable-extensions",
		"--user-data-dir="+t.TempDir(),
		"--enable-logging=stderr", "--v=0",
		"--virtual-time-budget=10000",
		"--dump-dom", srv.URL+"/")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	dom := string(out)
	t.Logf("chromium ran for %v, dumped %d bytes of DOM", time.Since(start).Round(time.Millisecond), len(dom))
	if err != nil {
		t.Fatalf("chromium: %v\nstderr:\n%s", err, stderr.String())
	}

	for _, want := range []string{
		"graphiql-container",
		"graphiql-editors",
		// The headers editor is open and shows the token placeholder.
		"Bearer &lt;paste a token from: parley token --identity alice&gt;",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("dumped DOM lacks %q", want)
		}
	}
	// Console messages appear in Chromium's log; a CSP violation would mean
	// part of the page was blocked.
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "Uncaught") {
			t.Errorf("browser console: %s", line)
		}
	}

	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.introspected == 0 {
		t.Errorf("GraphiQL never sent its introspection query to /graphql")
	}
	if len(fake.authorization) != 0 {
		t.Errorf("placeholder Authorization header was sent: %q", fake.authorization)
	}
	if t.Failed() {
		t.Logf("chromium stderr:\n%s", stderr.String())
	}
}
