// Package playground serves a GraphiQL page for Parley's GraphQL endpoint
// that works without internet access.
//
// Unlike gqlgen's playground, which loads its scripts and styles from a CDN,
// every asset of this page (React 18, GraphiQL 3 and a small page script) is
// embedded in the binary; assets/VERSIONS.txt says which versions and how to
// refresh them. The page needs nothing but the server that serves it: no
// external URL appears in it, and its Content-Security-Policy forbids
// loading anything from elsewhere.
package playground

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/parleychat/parley/apperr"
)

// assetPrefix is the path, relative to the mount point of the handler, under
// which the embedded assets are served.
const assetPrefix = "/playground/assets/"

// tokenPlaceholder is the Authorization header shown in the headers editor
// until the user pastes a real token.
const tokenPlaceholder = "Bearer <paste a token from: parley token --identity alice>"

//go:embed assets
var embedded embed.FS

// assetFS is the assets directory as the root of a file system.
var assetFS = func() fs.FS {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		panic("playground: " + err.Error())
	}
	return sub
}()

// versions maps each served asset to a short hash of its content, appended
// to its URL so that it can be cached for a long time and still be reloaded
// once the binary ships a different file.
var versions = sync.OnceValue(func() map[string]string {
	v := make(map[string]string)
	err := fs.WalkDir(assetFS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assetFS, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		v[name] = hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		panic("playground: " + err.Error())
	}
	return v
})

// page is the HTML of the playground. Asset URLs are relative, so the page
// works under any mount path that ends in a slash.
var page = template.Must(template.New("playground").Funcs(template.FuncMap{"asset": assetURL}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{asset "graphiql.min.css"}}">
<style>html,body,#graphiql{height:100%;margin:0;overflow:hidden}</style>
</head>
<body>
<div id="graphiql" data-endpoint="{{.Endpoint}}" data-default-headers="{{.DefaultHeaders}}">Loading {{.Title}}…</div>
<script src="{{asset "react.production.min.js"}}"></script>
<script src="{{asset "react-dom.production.min.js"}}"></script>
<script src="{{asset "graphiql.min.js"}}"></script>
<script src="{{asset "parley-playground.js"}}"></script>
</body>
</html>
`))

// assetURL returns the relative URL of the embedded asset name, versioned by
// its content hash. It panics on a name that is not embedded, which the
// tests catch.
func assetURL(name string) string {
	v, ok := versions()[name]
	if !ok {
		panic("playground: no embedded asset " + name)
	}
	return "." + assetPrefix + name + "?v=" + v
}

// pageData fills the page template.
type pageData struct {
	Title          string
	Endpoint       string
	DefaultHeaders string
}

// Handler returns an http.Handler serving a GraphiQL playground titled
// title that sends its queries to endpoint (for Parley, "/graphql") and its
// subscriptions over a WebSocket to the same path on the page's host
// (ws:// or wss:// after the page's scheme).
//
// Requests are matched on the path the handler sees: "/" is the page and
// "/playground/assets/..." the embedded assets; anything else is 404. Mount
// it at the root of a server, or under a prefix with http.StripPrefix as
// long as the page is reached with a trailing slash. Only GET and HEAD are
// allowed.
//
// The headers editor is open and shows an Authorization header with a
// placeholder for a token from `parley token`; as long as it is left
// unchanged the page does not send it. Assets are served with a one-year
// immutable Cache-Control, the page with no-cache and a strict
// Content-Security-Policy. The handler is safe for concurrent use.
func Handler(title, endpoint string) http.Handler {
	var headers strings.Builder
	enc := json.NewEncoder(&headers)
	enc.SetEscapeHTML(false) // html/template escapes the attribute
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]string{"Authorization": tokenPlaceholder}); err != nil {
		panic("playground: " + err.Error())
	}
	data := pageData{
		Title:          title,
		Endpoint:       endpoint,
		DefaultHeaders: strings.TrimSpace(headers.String()),
	}
	h := &handler{
		data:       data,
		connectSrc: connectSources(endpoint),
		files:      http.FileServerFS(assetFS),
	}
	return h
}

// handler is the http.Handler returned by Handler.
type handler struct {
	data       pageData
	connectSrc string
	files      http.Handler
}

// ServeHTTP serves the page or an asset.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apperr.WriteHTTP(w, http.StatusMethodNotAllowed, apperr.New(apperr.MethodNotAllowed, "%s takes GET and HEAD", r.URL.Path))
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "":
		h.servePage(w, r)
	case strings.HasPrefix(p, assetPrefix):
		h.serveAsset(w, r, strings.TrimPrefix(p, assetPrefix))
	default:
		notFound(w)
	}
}

// notFound answers a path that serves nothing with a GraphQL-shaped
// NOT_FOUND, as every refusal of the server is.
func notFound(w http.ResponseWriter) {
	apperr.WriteHTTP(w, http.StatusNotFound, apperr.New(apperr.NotFound, "not found"))
}

// servePage writes the HTML page.
func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		// GraphiQL and CodeMirror set inline styles; the page has a
		// small <style> element of its own.
		"style-src 'self' 'unsafe-inline'",
		// graphiql.min.css embeds its fonts and icons as data: URLs.
		"font-src 'self' data:",
		"img-src 'self' data:",
		"connect-src " + h.connectSrc + wsSources(r),
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; "))
	if r.Method == http.MethodHead {
		return
	}
	// An error here is a failed write to a client that has gone.
	_ = page.Execute(w, h.data)
}

// serveAsset serves the embedded asset name with long cache headers.
func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	if name == "" || strings.HasSuffix(name, "/") || !fs.ValidPath(name) {
		notFound(w) // no directory listings
		return
	}
	if _, ok := versions()[name]; !ok {
		notFound(w)
		return
	}
	hdr := w.Header()
	switch path.Ext(name) {
	case ".js":
		hdr.Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		hdr.Set("Content-Type", "text/css; charset=utf-8")
	default:
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
	}
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("X-Content-Type-Options", "nosniff")
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + name
	r2.URL.RawPath = ""
	h.files.ServeHTTP(w, r2)
}

// connectSources returns the CSP connect-src sources allowing the page to
// reach endpoint: its own origin, plus endpoint's origin (HTTP and WebSocket)
// when endpoint is an absolute URL on another host.
func connectSources(endpoint string) string {
	src := "'self'"
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || !hostRE.MatchString(u.Host) {
		return src
	}
	switch u.Scheme {
	case "http":
		src += " http://" + u.Host + " ws://" + u.Host
	case "https":
		src += " https://" + u.Host + " wss://" + u.Host
	}
	return src
}

// wsSources returns the WebSocket origins of the page's own host, which
// older browsers do not include in 'self', with a leading space; it is
// empty if the Host header is not a plain host[:port].
func wsSources(r *http.Request) string {
	if !hostRE.MatchString(r.Host) {
		return ""
	}
	return " ws://" + r.Host + " wss://" + r.Host
}

// hostRE matches a host name or IP literal with an optional port, and
// nothing that could break out of a CSP header.
var hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)
