// Package ratelimit holds Parley's per-user rate limits: mutations per
// identity, startTyping per identity and channel, and new and open realtime
// connections per identity. Each rate is a token bucket of
// golang.org/x/time/rate, one per key, made on first use and forgotten once
// it has been idle long enough to be full again, so that memory follows the
// users active in the last minute or so.
//
// Limits are kept per process (per node): with N nodes behind a load
// balancer a user gets up to N times each rate. Admin tokens (the
// application's backend) are not limited. A nil *Limits limits nothing. Refusals are *apperr.Error values with code RATE_LIMITED and a
// RetryAfter. Everything here is safe for concurrent use.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
)

// Rate is a sustained rate of Events per Per, with bursts of up to Burst
// events. The zero Rate is off: it limits nothing.
type Rate struct {
	Events int
	Per    time.Duration
	Burst  int
}

// Off reports whether r limits nothing.
func (r Rate) Off() bool { return r.Events <= 0 || r.Per <= 0 }

// String writes r as ParseRate reads it, without its burst: "20/s",
// "1/2s", or "off".
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	per := r.Per.String()
	switch r.Per {
	case time.Second:
		per = "s"
	case time.Minute:
		per = "m"
	case time.Hour:
		per = "h"
	}
	return strconv.Itoa(r.Events) + "/" + per
}

// ParseRate reads a rate written as events/period, such as "20/s",
// "1/2s", "100/m" or "600/1h" (the period is a Go duration, its 1 may be
// left out), or "off". The burst is the number of events, at least one.
func ParseRate(s string) (Rate, error) {
	if strings.EqualFold(strings.TrimSpace(s), "off") {
		return Rate{}, nil
	}
	events, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(events)
	if !ok || err != nil || n <= 0 {
		return Rate{}, fmt.Errorf("%q: want events/period such as 20/s or 1/2s, or off", s)
	}
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("%q: the period %q is not a positive duration such as s, 2s or 1m", s, per)
	}
	return Rate{Events: n, Per: d, Burst: n}, nil
}

// Config is every limit; a zero Rate (or OpenConnections) is off.
type Config struct {
	// Mutations is the rate of mutation root fields per identity; a
	// mutation operation is refused whole when its fields do not all fit.
	Mutations Rate
	// Typing is the rate of startTyping calls per identity and channel
	// that publish; the others succeed without doing anything.
	Typing Rate
	// Connections is the rate of new WebSocket and SSE connections per
	// identity.
	Connections Rate
	// OpenConnections caps the WebSocket and SSE connections one identity
	// holds open at once on this node.
	OpenConnections int
}

// Defaults are Parley's limits: 20 mutations a second with bursts of 50,
// one startTyping every 2 seconds per channel, 10 new connections a
// second and 50 open ones, per identity.
var Defaults = Config{
	Mutations:       Rate{Events: 20, Per: time.Second, Burst: 50},
	Typing:          Rate{Events: 1, Per: 2 * time.Second, Burst: 1},
	Connections:     Rate{Events: 10, Per: time.Second, Burst: 10},
	OpenConnections: 50,
}

// Limits are one node's rate limits. A nil *Limits limits nothing.
type Limits struct {
	cfg         Config
	mutations   *keyed
	typing      *keyed
	connections *keyed
	open        *counter
}

// Option changes Limits.
type Option func(*options)

type options struct{ now func() time.Time }

// WithClock makes the limits read time from now instead of time.Now (for
// tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New returns the limits of cfg.
func New(cfg Config, opts ...Option) *Limits {
	o := options{now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return &Limits{
		cfg:         cfg,
		mutations:   newKeyed(cfg.Mutations, o.now),
		typing:      newKeyed(cfg.Typing, o.now),
		connections: newKeyed(cfg.Connections, o.now),
		open:        newCounter(cfg.OpenConnections),
	}
}

// exempt reports whether p is free of rate limits: the application's
// backend, whose tokens carry the admin claim, acts for many users.
func exempt(p auth.Principal) bool { return p.Admin }

// Mutation takes fields tokens (a mutation operation's root fields) from
// p's mutation bucket, or refuses the whole operation with RATE_LIMITED and
// how long until it would fit. An operation of more fields than the burst
// counts as the burst.
func (l *Limits) Mutation(p auth.Principal, fields int) *apperr.Error {
	if l == nil || exempt(p) || fields <= 0 {
		return nil
	}
	if ok, wait := l.mutations.allow(p.Identity, fields); !ok {
		r := l.cfg.Mutations
		return rateLimited(wait, "too many mutations: at most %d every %v, in bursts of %d, per user", r.Events, r.Per, r.Burst)
	}
	return nil
}

// Typing reports whether p's startTyping in channel may publish; false
// means the call is one too many and does nothing.
func (l *Limits) Typing(p auth.Principal, channel string) bool {
	if l == nil || exempt(p) {
		return true
	}
	ok, _ := l.typing.allow(p.Identity+"\x00"+channel, 1)
	return ok
}

// Connect admits a new WebSocket or SSE connection of p: it counts against
// the new-connection rate and, until release is called, the open
// connections. Call release once, when the connection ends. A refusal is
// RATE_LIMITED with a RetryAfter, and release is nil.
func (l *Limits) Connect(p auth.Principal) (release func(), err *apperr.Error) {
	if l == nil || exempt(p) {
		return func() {}, nil
	}
	release, ok := l.open.acquire(p.Identity)
	if !ok {
		return nil, rateLimited(time.Second, "too many open connections: at most %d per user", l.cfg.OpenConnections)
	}
	if ok, wait := l.connections.allow(p.Identity, 1); !ok {
		release()
		r := l.cfg.Connections
		return nil, rateLimited(wait, "too many new connections: at most %d every %v per user", r.Events, r.Per)
	}
	return release, nil
}

func rateLimited(wait time.Duration, format string, args ...any) *apperr.Error {
	e := apperr.New(apperr.RateLimited, format, args...)
	e.RetryAfter = max(wait, time.Second)
	e.Message += fmt.Sprintf("; retry after %ds", e.RetryAfterSeconds())
	return e
}
