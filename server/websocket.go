package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/resolvers"
)

// RealtimeHooks learns when authenticated WebSocket connections open and
// close, e.g. to track presence. Both methods get a context carrying the
// connection's auth.Principal. Implementations must be safe for concurrent
// use.
type RealtimeHooks interface {
	// Connected is called once a connection is authenticated, before it is
	// acknowledged. An error is logged; the connection goes on.
	Connected(ctx context.Context) error
	// Disconnected is called once when a connection that Connected was
	// called for closes, whatever Connected returned. Its context is not
	// cancelled, but it no longer belongs to a live connection.
	Disconnected(ctx context.Context)
}

// WebSocketOptions tune the WebSocket transport. Zero fields take
// DefaultWebSocketOptions.
type WebSocketOptions struct {
	// KeepAlive is how often the server sends "ka" on the legacy graphql-ws
	// protocol; negative turns it off.
	KeepAlive time.Duration
	// PingPong is how often the server pings on graphql-transport-ws; a
	// client that sends no pong within twice this is disconnected (this is
	// how half-open sockets are found). Negative turns pings off.
	PingPong time.Duration
	// InitTimeout is how long a client has to send connection_init; the
	// socket is then closed with 1002.
	InitTimeout time.Duration
	// AllowedOrigins are host patterns (path.Match syntax, e.g.
	// "app.example.com", "*.example.com", "https://app.example.com")
	// whose pages may open a WebSocket. The server's own host is always
	// allowed, and so are requests without an Origin header (non-browser
	// clients). Empty allows localhost and 127.0.0.1 on any port besides.
	AllowedOrigins []string
	// MaxSubscriptions caps the concurrent subscriptions of one connection;
	// one more is refused with RATE_LIMITED (a next message with the error,
	// then complete). gqlgen starts a connection's operations concurrently,
	// so of several sent at once past the cap, which ones are refused is not
	// set; queries and mutations sent over the socket are not counted.
	MaxSubscriptions int
}

// DefaultWebSocketOptions are the options used where Config leaves them
// zero.
var DefaultWebSocketOptions = WebSocketOptions{
	KeepAlive:        25 * time.Second,
	PingPong:         25 * time.Second,
	InitTimeout:      10 * time.Second,
	MaxSubscriptions: 100,
}

// localOrigins are allowed when WebSocketOptions.AllowedOrigins is empty:
// development servers on the same machine.
var localOrigins = []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", `\[::1\]`, `\[::1\]:*`}

// CloseForbidden is the close code of a WebSocket connection refused at
// connection_init: no token, or one that is invalid or expired.
const CloseForbidden = 4403

// CloseTokenExpired is the close code of a WebSocket connection ended
// because its token expired; the client reconnects with a fresh token.
const CloseTokenExpired = 4401

// CloseInitTimeout is the close code of a graphql-transport-ws connection
// that sent no connection_init within WebSocketOptions.InitTimeout, as the
// protocol specifies (legacy graphql-ws connections get 1002).
const CloseInitTimeout = 4408

// gqlgenInitTimeout is the reason gqlgen closes with (1002) when the init
// timeout passes; TestWebSocketInitTimeout notices if it changes.
const gqlgenInitTimeout = "connection initialisation timeout"

func (o WebSocketOptions) withDefaults() WebSocketOptions {
	d := DefaultWebSocketOptions
	if o.KeepAlive == 0 {
		o.KeepAlive = d.KeepAlive
	}
	if o.PingPong == 0 {
		o.PingPong = d.PingPong
	}
	if o.InitTimeout <= 0 {
		o.InitTimeout = d.InitTimeout
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = d.MaxSubscriptions
	}
	if len(o.AllowedOrigins) == 0 {
		o.AllowedOrigins = localOrigins
	}
	return o
}

// newWebsocket returns the WebSocket transport: graphql-transport-ws and the
// legacy graphql-ws, authenticated at connection_init (see realtime.init),
// closed when the token expires, with keep-alives and an origin check.
// maxMessage caps one client message, like Limits.MaxBodyBytes a body.
func newWebsocket(cfg Config, log *slog.Logger, opts WebSocketOptions, maxMessage int64, conns *connections) websocketTransport {
	rt := &realtime{verifier: cfg.Verifier, hooks: cfg.Realtime, log: log}
	return websocketTransport{conns: conns, accept: transport.CoderWebsocketImplementation{AcceptOptions: websocket.AcceptOptions{
		OriginPatterns: opts.AllowedOrigins,
	}}, Websocket: transport.Websocket{
		InitFunc:              rt.init,
		InitTimeout:           opts.InitTimeout,
		CloseFunc:             rt.closed,
		ErrorFunc:             rt.failed,
		KeepAlivePingInterval: max(opts.KeepAlive, 0),
		PingPongInterval:      max(opts.PingPong, 0),
		PayloadReadLimit:      &maxMessage,
	}}
}

// websocketTransport is gqlgen's WebSocket transport with two repairs:
//   - the socket is always released when the transport is done with it:
//     gqlgen returns without closing it when a connection_init payload is
//     not a JSON object, which left the socket open with nothing reading it;
//   - a refused upgrade (e.g. a foreign Origin) keeps the status that
//     coder/websocket wrote (403) instead of gqlgen writing a second one.
type websocketTransport struct {
	transport.Websocket
	accept transport.CoderWebsocketImplementation
	conns  *connections
}

var _ graphql.Transport = websocketTransport{}

// Do serves one WebSocket connection until it ends or the server shuts
// down.
func (t websocketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	served := t.conns.serve(r, func(r *http.Request) { t.do(w, r, exec) })
	if !served {
		writeText(w, http.StatusServiceUnavailable, "server is shutting down")
	}
}

func (t websocketTransport) do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	aw := &acceptWriter{ResponseWriter: w}
	var conn transport.WebsocketConn
	expiry := &tokenExpiry{}
	r = r.WithContext(context.WithValue(r.Context(), tokenExpiryKey{}, expiry))
	ws := t.Websocket
	ws.Implementation = acceptFunc(func(_ http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
		c, err := t.accept.Accept(w, r, o)
		if err != nil {
			aw.refused = true
			return nil, err
		}
		conn = codedConn{WebsocketConn: c, expiry: expiry, transportWS: w.Header().Get("Sec-WebSocket-Protocol") == "graphql-transport-ws"}
		return conn, nil
	})
	ws.Do(aw, r, exec)
	if conn != nil {
		// A no-op when gqlgen closed it or its close handshake is under
		// way.
		_ = conn.Close()
	}
}

// tokenExpiry is when a connection's token expires, set by init once the
// connection is authenticated.
type tokenExpiry struct{ unixNano atomic.Int64 }

type tokenExpiryKey struct{}

func (e *tokenExpiry) passed() bool {
	at := e.unixNano.Load()
	return at != 0 && time.Now().UnixNano() >= at
}

// codedConn closes with Parley's close codes where gqlgen's differ:
// CloseTokenExpired instead of a normal closure when the token's expiry is
// what ends the connection, and on graphql-transport-ws CloseInitTimeout
// instead of 1002 when connection_init did not come in time.
type codedConn struct {
	transport.WebsocketConn
	expiry      *tokenExpiry
	transportWS bool // the subprotocol is graphql-transport-ws
}

// The optional interfaces gqlgen looks for on a connection pass through:
// without them it would enforce no read limit and find no half-open socket.
var (
	_ transport.WebsocketReadLimiter   = codedConn{}
	_ transport.WebsocketReadDeadliner = codedConn{}
)

// SetReadLimit caps the size of a message read from the client.
func (c codedConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

// SetReadDeadline bounds the wait for the client's next message.
func (c codedConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// WriteClose closes the connection, with CloseTokenExpired when the token
// has expired and CloseInitTimeout when connection_init did not come.
func (c codedConn) WriteClose(code int, reason string) error {
	switch {
	case code == transport.WebsocketCloseNormalClosure && c.expiry.passed():
		code, reason = CloseTokenExpired, "token expired"
	case code == transport.WebsocketCloseProtocolError && reason == gqlgenInitTimeout && c.transportWS:
		code, reason = CloseInitTimeout, "Connection initialisation timeout"
	}
	return c.WebsocketConn.WriteClose(code, reason)
}

type acceptFunc func(http.ResponseWriter, *http.Request, transport.WebsocketAcceptOptions) (transport.WebsocketConn, error)

func (f acceptFunc) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	return f(w, r, o)
}

// acceptWriter drops what is written after a refused upgrade, whose
// response is already out.
type acceptWriter struct {
	http.ResponseWriter
	refused bool
}

func (w *acceptWriter) WriteHeader(status int) {
	if !w.refused {
		w.ResponseWriter.WriteHeader(status)
	}
}

func (w *acceptWriter) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *acceptWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// realtime holds what the WebSocket callbacks need.
type realtime struct {
	verifier *auth.Verifier
	hooks    RealtimeHooks
	log      *slog.Logger
}

// wsConn is the state of one authenticated WebSocket connection, carried by
// its context.
type wsConn struct {
	principal auth.Principal
	// cancel releases the expiry deadline.
	cancel context.CancelFunc

	mu   sync.Mutex
	subs int // active subscriptions
}

type wsConnKey struct{}

func wsConnFrom(ctx context.Context) *wsConn {
	c, _ := ctx.Value(wsConnKey{}).(*wsConn)
	return c
}

// errTokenExpired is the cause of a connection context ended by the token's
// expiry.
var errTokenExpired = errors.New("token expired")

// init authenticates a connection from its connection_init payload
// (authorization, Authorization or token) or, when the payload holds no
// token, from the Authorization header of the upgrade request, which
// auth.Middleware has already checked. A connection without a valid token is
// closed with CloseForbidden before anything else runs. An accepted
// connection's context carries the principal and ends when the token
// expires, which closes the connection with CloseTokenExpired (legacy
// graphql-ws clients get a connection_error "token expired" first).
func (rt *realtime) init(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	p, err := rt.verifier.FromInitPayload(payload)
	if err != nil && !hasToken(payload) {
		if hp, ok := auth.FromContext(ctx); ok {
			p, err = hp, nil
		}
	}
	if err == nil && !p.ExpiresAt.After(time.Now()) {
		// Verify tolerates some clock skew on exp; a connection cannot
		// start already past its deadline.
		err = apperr.New(apperr.Unauthenticated, "token expired")
	}
	if err != nil {
		ctx = transport.WithWebsocketCloseCode(ctx, CloseForbidden)
		return transport.AppendCloseReason(ctx, closeReason(err)), nil, err
	}

	if e, ok := ctx.Value(tokenExpiryKey{}).(*tokenExpiry); ok {
		e.unixNano.Store(p.ExpiresAt.UnixNano())
	}
	ctx = auth.WithPrincipal(ctx, p)
	// gqlgen can deliver the error that ends a subscription only over
	// WebSocket (transport.AddSubscriptionError).
	ctx = resolvers.WithSubscriptionErrors(ctx)
	ctx, cancel := context.WithDeadlineCause(ctx, p.ExpiresAt, errTokenExpired)
	conn := &wsConn{principal: p, cancel: cancel}
	ctx = context.WithValue(ctx, wsConnKey{}, conn)
	if rt.hooks != nil {
		if err := rt.hooks.Connected(ctx); err != nil {
			rt.log.ErrorContext(ctx, "websocket connected hook", "identity", p.Identity, "err", err)
		}
	}
	return expiryReason{ctx}, nil, nil
}

// hasToken reports whether a connection_init payload holds a token in one of
// the keys auth.Verifier.FromInitPayload reads.
func hasToken(payload transport.InitPayload) bool {
	for _, key := range []string{"authorization", "Authorization", "token"} {
		switch v := payload[key].(type) {
		case nil:
		case string:
			if strings.TrimSpace(v) != "" {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// closeReason is the close frame's reason for a refused connection: the
// client-safe message, within the 123 bytes a close frame allows.
func closeReason(err error) string {
	msg := "unauthenticated"
	if ae, ok := errors.AsType[*apperr.Error](err); ok {
		msg = ae.Message
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// expiryReason gives gqlgen's close-on-cancel the reason "token expired",
// but only when the token's expiry is what ended the context: gqlgen reads
// the reason from the connection context whenever the connection ends.
type expiryReason struct{ context.Context }

// expiredReason holds the close reason under gqlgen's private key.
var expiredReason = transport.AppendCloseReason(context.Background(), "token expired")

func (c expiryReason) Value(key any) any {
	if c.Context.Err() != nil && errors.Is(context.Cause(c.Context), errTokenExpired) {
		if v := expiredReason.Value(key); v != nil {
			return v
		}
	}
	return c.Context.Value(key)
}

// closed runs once per connection, refused or not.
func (rt *realtime) closed(ctx context.Context, code int) {
	conn := wsConnFrom(ctx)
	if conn == nil {
		return // refused at init: never authenticated
	}
	conn.cancel()
	if rt.hooks != nil {
		rt.hooks.Disconnected(context.WithoutCancel(ctx))
	}
	rt.log.DebugContext(ctx, "websocket closed", "identity", conn.principal.Identity, "code", code)
}

// failed logs read and write errors; they mostly mean the peer went away.
func (rt *realtime) failed(ctx context.Context, err error) {
	rt.log.DebugContext(ctx, "websocket error", "err", err)
}

// subscriptionLimit caps the concurrent subscriptions of a WebSocket
// connection, and ends subscriptions over other transports (SSE) when the
// caller's token expires, as WebSocket connections are.
type subscriptionLimit struct{ max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = subscriptionLimit{}

// ExtensionName names the extension in gqlgen's stats.
func (subscriptionLimit) ExtensionName() string { return "SubscriptionLimit" }

// Validate accepts any schema.
func (subscriptionLimit) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation counts a subscription from its start until its
// response handler reports the end of the stream (nil).
func (l subscriptionLimit) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	conn := wsConnFrom(ctx)
	if conn == nil {
		return untilExpiry(ctx, next)
	}
	conn.mu.Lock()
	full := conn.subs >= l.max
	if !full {
		conn.subs++
	}
	conn.mu.Unlock()
	if full {
		err := &gqlerror.Error{
			Message:    fmt.Sprintf("too many subscriptions on this connection: at most %d at once", l.max),
			Extensions: map[string]any{"code": string(apperr.RateLimited)},
		}
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{err}})
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			conn.mu.Lock()
			conn.subs--
			conn.mu.Unlock()
		})
	}
	return endWith(next(ctx), release)
}

// untilExpiry runs a subscription outside a WebSocket connection (SSE) with
// a deadline at the expiry of the caller's token.
func untilExpiry(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return next(ctx)
	}
	ctx, cancel := context.WithDeadlineCause(ctx, p.ExpiresAt, errTokenExpired)
	return endWith(next(ctx), cancel)
}

// endWith calls done once h reports the end of its stream (or panics).
func endWith(h graphql.ResponseHandler, done func()) graphql.ResponseHandler {
	return func(ctx context.Context) (resp *graphql.Response) {
		ended := true
		defer func() {
			if ended {
				done()
			}
		}()
		resp = h(ctx)
		ended = resp == nil
		return resp
	}
}

// freshLoaders gives every response its own loaders: a query's or
// mutation's whole execution, or one subscription event. Loaders cache for
// their lifetime, so loaders living as long as a WebSocket connection would
// serve stale rows (and memberships of the past) to every later event.
func freshLoaders(svc *chat.Service) graphql.ResponseMiddleware {
	return func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		return next(chat.WithLoaders(ctx, svc.NewLoaders()))
	}
}
