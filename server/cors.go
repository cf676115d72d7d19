package server

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/parleychat/parley/requestid"
)

// CORSAllowedHeaders are the request headers that pages from the allowed
// origins may always send: those of a GraphQL request, X-Request-Id, the
// token of a single-connection event stream (StreamTokenHeader), and
// those Apollo Client sends with client awareness and operation names on.
var CORSAllowedHeaders = []string{
	"Authorization", "Content-Type", "Accept", requestid.Header, StreamTokenHeader,
	"apollographql-client-name", "apollographql-client-version", "x-apollo-operation-name",
}

// corsPolicy returns middleware that lets browser pages from the allowed
// origins (the same patterns that may open WebSockets:
// WebSocketOptions.AllowedOrigins) call the handler over HTTP, as Apollo
// Client and urql front ends served from another origin do, sending
// CORSAllowedHeaders and extra. Credentials travel in the Authorization
// header, never in cookies, so no Allow-Credentials is sent. Preflight
// requests are answered here. Pages may read X-Request-Id.
func corsPolicy(patterns, extra []string) func(http.Handler) http.Handler {
	allowHeaders := strings.Join(append(slices.Clone(CORSAllowedHeaders), extra...), ", ")
	return func(next http.Handler) http.Handler {
		return cors(patterns, corsRules{headers: allowHeaders, methods: allowedMethods, expose: requestid.Header}, next)
	}
}

// mediaCORS is corsPolicy for the media endpoints: pages from the allowed
// origins may PUT uploads and GET attachments (with Range), and read the
// headers of a partial answer.
func mediaCORS(patterns []string) func(http.Handler) http.Handler {
	rules := corsRules{
		headers: "Content-Type, Range, " + requestid.Header, methods: "GET, HEAD, PUT, OPTIONS",
		expose: requestid.Header + ", Content-Range, Content-Disposition, Accept-Ranges",
	}
	return func(next http.Handler) http.Handler { return cors(patterns, rules, next) }
}

// corsRules are the values of the Access-Control-Allow-Headers,
// -Allow-Methods and -Expose-Headers answers.
type corsRules struct{ headers, methods, expose string }

// cors is the CORS middleware of corsPolicy and mediaCORS.
func cors(patterns []string, rules corsRules, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !originAllowed(patterns, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", rules.expose)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", rules.methods)
			h.Set("Access-Control-Allow-Headers", rules.headers)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed matches an Origin header against host patterns the way
// coder/websocket does for WebSockets: a pattern with "://" is matched
// against scheme://host, any other against the host alone (path.Match
// syntax, case-insensitive).
func originAllowed(patterns []string, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}
