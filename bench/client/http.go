// Package client speaks to Parley the way real clients do: GraphQL
// operations over HTTP POST, and subscriptions over WebSocket with the
// graphql-transport-ws protocol. It is lean on purpose: it allocates little
// per message, so that the load generator measures the server rather than
// itself.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds one HTTP request of an HTTP client made by
// NewHTTPClient.
const DefaultTimeout = 30 * time.Second

// NewHTTPClient returns an http.Client meant to be shared by every
// goroutine of a run: it keeps up to maxIdlePerHost idle connections per
// host (so that concurrent senders reuse connections instead of opening
// and closing one per request) and times requests out after
// DefaultTimeout.
func NewHTTPClient(maxIdlePerHost int) *http.Client {
	maxIdlePerHost = max(maxIdlePerHost, 2)
	tr := &http.Transport{
		Proxy:               nil, // a load generator talks to its target directly
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxIdlePerHost * 4,
		MaxIdleConnsPerHost: maxIdlePerHost,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: DefaultTimeout}
}

// GraphQL sends operations to one GraphQL endpoint over HTTP POST. It is
// safe for concurrent use.
type GraphQL struct {
	endpoint string
	hc       *http.Client
}

// NewGraphQL returns a client for endpoint (a full URL such as
// http://127.0.0.1:8080/graphql) using hc; nil hc uses a client from
// NewHTTPClient(64).
func NewGraphQL(endpoint string, hc *http.Client) *GraphQL {
	if hc == nil {
		hc = NewHTTPClient(64)
	}
	return &GraphQL{endpoint: endpoint, hc: hc}
}

// Endpoint returns the URL operations are posted to.
func (c *GraphQL) Endpoint() string { return c.endpoint }

// Error is one GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// Code returns extensions.code, or "".
func (e Error) Code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// Errors is a non-empty list of GraphQL errors returned by an operation.
type Errors []Error

// Error describes the first error and how many more there are.
func (e Errors) Error() string {
	if len(e) == 0 {
		return "graphql: no errors"
	}
	msg := e[0].Message
	if c := e[0].Code(); c != "" {
		msg = c + ": " + msg
	}
	if len(e) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(e)-1)
	}
	return "graphql: " + msg
}

// Code returns the code of the first error.
func (e Errors) Code() string {
	if len(e) == 0 {
		return ""
	}
	return e[0].Code()
}

// HTTPError is a response that is not a GraphQL response: a status other
// than 200 whose body holds no GraphQL errors.
type HTTPError struct {
	Status int
	Body   string
}

// Error gives the status and the start of the body.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("graphql: HTTP %d: %s", e.Status, e.Body)
}

type request struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables,omitempty"`
}

// Response is a GraphQL response as it came: its HTTP status, size,
// data and errors.
type Response struct {
	Status int
	// Bytes is the size of the body.
	Bytes  int
	Data   json.RawMessage `json:"data"`
	Errors Errors          `json:"errors"`
	body   []byte
}

// Send posts one operation as the bearer of token ("" sends no
// Authorization header) and returns the response, whatever its status. An
// error means that no GraphQL response came: the request failed, or the
// body is not a GraphQL response (an *HTTPError when the status is not
// 200).
func (c *GraphQL) Send(ctx context.Context, token, query string, vars map[string]any) (*Response, error) {
	body, err := json.Marshal(request{Query: query, Variables: vars})
	if err != nil {
		return nil, fmt.Errorf("graphql: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	cerr := resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("graphql: read response: %w", err)
	}
	if cerr != nil {
		return nil, fmt.Errorf("graphql: close response: %w", cerr)
	}
	r := &Response{Status: resp.StatusCode, Bytes: len(raw), body: raw}
	if err := json.Unmarshal(raw, r); err != nil {
		if resp.StatusCode != http.StatusOK {
			return nil, &HTTPError{Status: resp.StatusCode, Body: truncate(string(raw), 200)}
		}
		return nil, fmt.Errorf("graphql: decode response: %w", err)
	}
	return r, nil
}

// Do posts one operation as the bearer of token ("" sends no
// Authorization header) and decodes its data into out (unless nil). A
// response with errors returns them as Errors, even when it has data too.
func (c *GraphQL) Do(ctx context.Context, token, query string, vars map[string]any, out any) error {
	r, err := c.Send(ctx, token, query, vars)
	if err != nil {
		return err
	}
	if len(r.Errors) > 0 {
		return r.Errors
	}
	if r.Status != http.StatusOK {
		return &HTTPError{Status: r.Status, Body: truncate(string(r.body), 200)}
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			return fmt.Errorf("graphql: decode data: %w", err)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// IsRateLimited reports whether err says the server rate-limits the
// caller: a RATE_LIMITED GraphQL error, or a WebSocket closed with 4429.
func IsRateLimited(err error) bool {
	if IsCode(err, "RATE_LIMITED") {
		return true
	}
	var de *DialError
	return errors.As(err, &de) && de.Code == 4429
}

// IsCode reports whether err is GraphQL Errors whose first code is code.
func IsCode(err error, code string) bool {
	var e Errors
	return errors.As(err, &e) && e.Code() == code
}

// GraphQLURL turns a base URL (http://host:port, with or without a path)
// into the GraphQL endpoint: a URL without a path gets /graphql. ws and
// wss schemes become http and https.
func GraphQLURL(base string) (string, error) {
	u, err := parseBase(base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	return u.String(), nil
}

// WebSocketURL turns a base URL into the WebSocket endpoint: http and
// https become ws and wss, and a URL without a path gets /graphql.
func WebSocketURL(base string) (string, error) {
	u, err := parseBase(base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	return u.String(), nil
}

func parseBase(base string) (*url.URL, error) {
	base = strings.TrimSpace(base)
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("URL %q: %w", base, err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("URL %q: scheme %q is not http, https, ws or wss", base, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("URL %q names no host", base)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/graphql"
	}
	return u, nil
}

// IsLoopback reports whether rawURL's host is this machine: localhost, a
// loopback address, or a name that resolves only to loopback addresses.
func IsLoopback(ctx context.Context, rawURL string) (bool, error) {
	u, err := parseBase(rawURL)
	if err != nil {
		return false, err
	}
	return HostIsLoopback(ctx, u.Hostname())
}

// HostIsLoopback reports whether host (a name or an address, without a
// port) is this machine.
func HostIsLoopback(ctx context.Context, host string) (bool, error) {
	if host == "" {
		return false, errors.New("empty host")
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false, nil
		}
	}
	return len(addrs) > 0, nil
}
