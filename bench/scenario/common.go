// Package scenario holds parley-bench's load scenarios as plain functions:
// each takes a Config, drives a Parley deployment the way real clients do
// (mutations over HTTP, subscriptions over graphql-transport-ws) and
// returns a Result that can print itself as tables and encode itself as
// JSON. Tests call them directly against an in-process server.
//
// Every run seeds its own users and channels under a unique prefix, so runs
// against the same deployment never collide, and every scenario stops by
// itself: bounded by its configured durations and by its context.
package scenario

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/bench/client"
	"github.com/parleychat/parley/bench/report"
)

// Defaults used where a Config leaves a field zero.
const (
	// DefaultDialConcurrency bounds WebSocket connections opened at once.
	DefaultDialConcurrency = 64
	// DefaultTokenTTL is the lifetime of minted tokens.
	DefaultTokenTTL = time.Hour
	// maxInitialMembers is how many identities createChannel takes at
	// once (Parley's default chat.Limits.MaxInitialMembers); the rest are
	// added with addMember.
	maxInitialMembers = 100
	// setupConcurrency bounds concurrent seeding mutations.
	setupConcurrency = 16
	// maxErrorSamples bounds the error messages a result keeps.
	maxErrorSamples = 5
)

// Target is the Parley deployment under load.
type Target struct {
	// HTTP lists GraphQL endpoints (http://host:port/graphql). Seeding,
	// publishing and queries use the first.
	HTTP []string
	// WS lists WebSocket endpoints (ws://host:port/graphql); subscribers
	// are spread over them round-robin.
	WS []string
	// Secret signs the access tokens (PARLEY_JWT_SECRET).
	Secret []byte
	// HTTPClient sends the HTTP requests; nil makes one shared by the
	// run, with enough idle connections per host for its concurrency.
	HTTPClient *http.Client
}

// Common are the settings every scenario shares.
type Common struct {
	Target
	// Prefix starts every identity and uniqueName the run creates; empty
	// picks a random one ("pb-<8 hex>-").
	Prefix string
	// Progress receives a status line every second during long steps;
	// nil shows none.
	Progress *report.Progress
	// DialConcurrency bounds WebSocket connections opened at once.
	DialConcurrency int
	// TokenTTL is the lifetime of minted tokens; it must outlast the run.
	TokenTTL time.Duration
}

func (c *Common) defaults() error {
	if len(c.HTTP) == 0 {
		return errors.New("no HTTP endpoint")
	}
	if len(c.Secret) == 0 {
		return errors.New("no JWT secret: set PARLEY_JWT_SECRET or pass --secret")
	}
	if c.Prefix == "" {
		p, err := NewPrefix()
		if err != nil {
			return err
		}
		c.Prefix = p
	}
	if c.DialConcurrency <= 0 {
		c.DialConcurrency = DefaultDialConcurrency
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	return nil
}

// NewPrefix returns a fresh run prefix, "pb-<8 hex>-".
func NewPrefix() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("run prefix: %w", err)
	}
	return "pb-" + hex.EncodeToString(b[:]) + "-", nil
}

// GraphQL operations the scenarios send. Selections are kept small so that
// the server's cost per message, not the payload, is measured.
const (
	queryMe              = `query { me { id } }`
	mutationCreate       = `mutation($in: CreateChannelInput!) { createChannel(input: $in) { id } }`
	mutationAddMember    = `mutation($c: ID!, $i: String!) { addMember(channelId: $c, identity: $i) { id } }`
	mutationSend         = `mutation($in: SendMessageInput!) { sendMessage(input: $in) { id index } }`
	mutationRegisterPush = `mutation($p: PushProvider!, $t: String!) { registerPush(provider: $p, token: $t) { id } }`
	subscriptionMessage  = `subscription($c: ID!) { messageAdded(channelId: $c) { id index body createdAt } }`
)

// env is what a running scenario shares: the endpoints, a GraphQL client
// for the first HTTP node and the token minter.
type env struct {
	Common
	gql *client.GraphQL
	hc  *http.Client

	mu     sync.Mutex
	tokens map[string]string
}

func newEnv(c Common, maxInFlight int) (*env, error) {
	if err := c.defaults(); err != nil {
		return nil, err
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = client.NewHTTPClient(max(maxInFlight, 64))
	}
	return &env{Common: c, hc: hc, gql: client.NewGraphQL(c.HTTP[0], hc), tokens: map[string]string{}}, nil
}

// token mints (once) a token for prefix+name.
func (e *env) token(name string) (string, error) {
	identity := e.Prefix + name
	e.mu.Lock()
	defer e.mu.Unlock()
	if t, ok := e.tokens[identity]; ok {
		return t, nil
	}
	t, err := auth.Mint(e.Secret, identity, name, e.TokenTTL, time.Now())
	if err != nil {
		return "", err
	}
	e.tokens[identity] = t
	return t, nil
}

// createRoom creates a private channel owned by owner (a name under the
// prefix) with members (names under the prefix) and returns its id.
func (e *env) createRoom(ctx context.Context, owner, uniqueName string, members []string) (string, error) {
	tok, err := e.token(owner)
	if err != nil {
		return "", err
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = e.Prefix + m
	}
	first := ids[:min(len(ids), maxInitialMembers)]
	var out struct {
		CreateChannel struct{ ID string } `json:"createChannel"`
	}
	in := map[string]any{"uniqueName": e.Prefix + uniqueName, "friendlyName": uniqueName, "type": "PRIVATE", "members": first}
	if err := e.gql.Do(ctx, tok, mutationCreate, map[string]any{"in": in}, &out); err != nil {
		return "", fmt.Errorf("create channel %s: %w", uniqueName, err)
	}
	rest := ids[len(first):]
	err = parallel(ctx, len(rest), setupConcurrency, func(ctx context.Context, i int) error {
		if err := e.gql.Do(ctx, tok, mutationAddMember, map[string]any{"c": out.CreateChannel.ID, "i": rest[i]}, nil); err != nil {
			return fmt.Errorf("add %s to %s: %w", rest[i], uniqueName, err)
		}
		return nil
	})
	return out.CreateChannel.ID, err
}

// send posts one message as the holder of tok and returns its id and index.
func (e *env) send(ctx context.Context, tok, channelID, body string) (string, int, error) {
	return e.sendInput(ctx, tok, map[string]any{"channelId": channelID, "body": body})
}

// sendInput posts sendMessage(input: in) as the holder of tok and returns
// the message's id and index.
func (e *env) sendInput(ctx context.Context, tok string, in map[string]any) (string, int, error) {
	var out struct {
		SendMessage struct {
			ID    string `json:"id"`
			Index int    `json:"index"`
		} `json:"sendMessage"`
	}
	if err := e.gql.Do(ctx, tok, mutationSend, map[string]any{"in": in}, &out); err != nil {
		return "", 0, err
	}
	return out.SendMessage.ID, out.SendMessage.Index, nil
}

// wsURL is the WebSocket endpoint of subscriber i.
func (e *env) wsURL(i int) string {
	if len(e.WS) == 0 {
		u, err := client.WebSocketURL(e.HTTP[0])
		if err != nil {
			return e.HTTP[0]
		}
		return u
	}
	return e.WS[i%len(e.WS)]
}

// parallel runs fn(ctx, i) for i in [0, n), at most limit at a time. The
// first error cancels the others' context and is returned.
func parallel(ctx context.Context, n, limit int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// every calls c.Progress with line() once a second until the returned stop
// is called.
func (c *Common) every(line func() string) (stop func()) {
	if c.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				c.Progress.Update(line())
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		c.Progress.Done()
	}
}

// rateLimitHint follows an error that says the server rate-limits the
// run's users: the scenarios send and connect faster than one user's
// default limits allow.
const rateLimitHint = "(the server rate-limits users: run it with PARLEY_RATE_LIMITS=off for load tests)"

// WithRateLimitHint adds rateLimitHint to err when it says the server
// rate-limits the run's users.
func WithRateLimitHint(err error) error {
	if err != nil && client.IsRateLimited(err) {
		return fmt.Errorf("%w %s", err, rateLimitHint)
	}
	return err
}

// errorSamples keeps the first few distinct error messages.
type errorSamples struct {
	mu   sync.Mutex
	msgs []string
}

func (s *errorSamples) add(err error) {
	msg := err.Error()
	if client.IsRateLimited(err) {
		msg += " " + rateLimitHint
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) >= maxErrorSamples {
		return
	}
	for _, m := range s.msgs {
		if m == msg {
			return
		}
	}
	s.msgs = append(s.msgs, msg)
}

func (s *errorSamples) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// closeAll closes connections in parallel and returns the first error.
func closeAll[C interface{ Close() error }](conns []C) error {
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.Close(); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// seconds formats a duration for progress lines.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.0fs", d.Seconds())
}
