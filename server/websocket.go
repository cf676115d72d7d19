package server

import (
	"context"
	"time"
)

// RealtimeHooks learns when authenticated WebSocket connections open and
// close, e.g. to track presence. Both methods get a context carrying the
// connection's auth.Principal (plain data). Implementations must be safe
// for concurrent use.
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
	// socket is then closed with CloseInitTimeout (1002 on the legacy
	// graphql-ws).
	InitTimeout time.Duration
	// WriteTimeout bounds one write to a client: a WebSocket whose write
	// stalls longer is closed, an event stream ended.
	WriteTimeout time.Duration
	// QueueLength bounds the messages waiting to be written to one
	// connection; one more closes a WebSocket with CloseTryAgainLater and
	// ends an event stream. The client resumes with afterIndex.
	QueueLength int
	// AllowedOrigins are host patterns (path.Match syntax, e.g.
	// "app.example.com", "*.example.com", "https://app.example.com")
	// whose pages may open a WebSocket. The server's own host is always
	// allowed, and so are requests without an Origin header (non-browser
	// clients). Empty allows localhost and 127.0.0.1 on any port besides.
	AllowedOrigins []string
	// MaxSubscriptions caps the concurrent subscriptions of one connection;
	// one more is refused with RATE_LIMITED (a next message with the error,
	// then complete). A connection's operations start in the order they
	// arrive; queries and mutations sent over the socket are not counted.
	MaxSubscriptions int
}

// DefaultWebSocketOptions are the options used where Config leaves them
// zero.
var DefaultWebSocketOptions = WebSocketOptions{
	KeepAlive:        25 * time.Second,
	PingPong:         25 * time.Second,
	InitTimeout:      10 * time.Second,
	WriteTimeout:     10 * time.Second,
	QueueLength:      1024,
	MaxSubscriptions: 100,
}

// localOrigins are allowed when WebSocketOptions.AllowedOrigins is empty:
// development servers on the same machine.
var localOrigins = []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", `\[::1\]`, `\[::1\]:*`}

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
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	if o.QueueLength <= 0 {
		o.QueueLength = d.QueueLength
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = d.MaxSubscriptions
	}
	if len(o.AllowedOrigins) == 0 {
		o.AllowedOrigins = localOrigins
	}
	return o
}
