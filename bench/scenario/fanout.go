package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/bench/accounting"
	"github.com/parleychat/parley/bench/client"
	"github.com/parleychat/parley/bench/clock"
	"github.com/parleychat/parley/bench/pacer"
	"github.com/parleychat/parley/bench/rawserver"
	"github.com/parleychat/parley/bench/report"
	"github.com/parleychat/parley/bench/stats"
)

// Fan-out defaults.
const (
	// DefaultDrain is the longest wait for a step's late deliveries.
	DefaultDrain = 3 * time.Second
	// DefaultMaxInFlight caps concurrent sendMessage calls.
	DefaultMaxInFlight = 64
	// DefaultWarmupTimeout bounds the wait for every subscription to be
	// live.
	DefaultWarmupTimeout = 30 * time.Second
)

// FanoutConfig configures Fanout and RawFanout.
type FanoutConfig struct {
	Common
	// Rooms is the number of channels; each gets its own publisher.
	Rooms int
	// Subscribers is the number of subscribers per room, each one user
	// with one connection and one messageAdded subscription.
	Subscribers int
	// Rates are the offered publish rates, in messages per second over
	// all rooms (spread round-robin), one step each.
	Rates []float64
	// StepDuration is how long each rate is offered.
	StepDuration time.Duration
	// Drain is the longest wait, after a step's last send, for
	// deliveries still under way; a step ends sooner once every expected
	// delivery has arrived. Deliveries later than this count as lost.
	Drain time.Duration
	// MaxInFlight caps concurrent sendMessage calls; when all are busy the
	// pacer falls behind and skips (see pacer), which lowers the achieved
	// rate.
	MaxInFlight int
	// WarmupTimeout bounds the wait for every subscription to be live.
	WarmupTimeout time.Duration
	// Baseline also runs RawFanout with the same settings after the
	// GraphQL run, for comparison (Fanout only).
	Baseline bool
	// RawURL is the base URL (http://host:port) of a rawserver running on
	// its own, such as "parley-bench rawserver" pinned to the core the
	// Parley server uses; empty starts one inside this process.
	RawURL string
}

func (c *FanoutConfig) validate() error {
	if c.Rooms <= 0 || c.Subscribers <= 0 {
		return fmt.Errorf("fanout: rooms (%d) and subscribers (%d) must be positive", c.Rooms, c.Subscribers)
	}
	if len(c.Rates) == 0 {
		return errors.New("fanout: no rates")
	}
	for _, r := range c.Rates {
		if !(r > 0) {
			return fmt.Errorf("fanout: rate %v is not positive", r)
		}
	}
	if c.StepDuration <= 0 {
		return errors.New("fanout: step duration must be positive")
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.WarmupTimeout <= 0 {
		c.WarmupTimeout = DefaultWarmupTimeout
	}
	return nil
}

// FanoutStep is the outcome of one offered rate.
type FanoutStep struct {
	// OfferedRate is the configured rate, messages per second.
	OfferedRate float64 `json:"offered_rate"`
	// Duration is the publishing window.
	Duration time.Duration `json:"duration_ns"`
	// Attempted counts sendMessage calls started; Sent those that
	// returned a message; PublishErrors the others.
	Attempted     int64 `json:"attempted"`
	Sent          int64 `json:"sent"`
	PublishErrors int64 `json:"publish_errors"`
	// SkippedTicks counts sends the pacer dropped because the publishers
	// had fallen behind (all MaxInFlight calls busy).
	SkippedTicks int64 `json:"skipped_ticks"`
	// AchievedRate is Sent per second of the window.
	AchievedRate float64 `json:"achieved_rate"`
	// Delivery compares, by message id, what every subscriber should
	// have received with what it did.
	Delivery accounting.Tally `json:"delivery"`
	// DeliveryRatio is Delivery.Delivered ÷ Delivery.Expected.
	DeliveryRatio float64 `json:"delivery_ratio"`
	// DeliveriesPerSecond is delivered (message, subscriber) pairs per
	// second, over the window or until the last delivery if later.
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
	// EndToEnd is from the start of the sendMessage call to the frame
	// parsed by the subscriber, first deliveries only.
	EndToEnd stats.Summary `json:"end_to_end"`
	// Mutation is the sendMessage round trip.
	Mutation stats.Summary `json:"mutation"`
	// Errors lists a few publish errors.
	Errors []string `json:"errors,omitempty"`
}

// FanoutResult is the outcome of Fanout or RawFanout.
type FanoutResult struct {
	// Kind is "graphql" or "raw".
	Kind        string   `json:"kind"`
	Prefix      string   `json:"prefix"`
	Rooms       int      `json:"rooms"`
	Subscribers int      `json:"subscribers_per_room"`
	Connections int      `json:"connections"`
	WSNodes     []string `json:"ws_nodes"`
	Publisher   string   `json:"publisher"`
	// Setup, Connect and Warmup time the seeding, the connections and
	// the wait for every subscription to be live.
	Setup   time.Duration `json:"setup_ns"`
	Connect time.Duration `json:"connect_ns"`
	Warmup  time.Duration `json:"warmup_ns"`
	Steps   []FanoutStep  `json:"steps"`
	// ConnectionsLost counts connections that ended during the run;
	// SubscriptionErrors counts subscriptions that ended or returned
	// errors; Foreign counts deliveries this run did not send.
	ConnectionsLost    int64    `json:"connections_lost"`
	SubscriptionErrors int64    `json:"subscription_errors"`
	Foreign            int64    `json:"foreign_messages"`
	SubscriptionErrs   []string `json:"subscription_error_samples,omitempty"`
	// Baseline is the raw WebSocket run with the same settings, when
	// asked for.
	Baseline *FanoutResult `json:"baseline,omitempty"`
}

// OK reports whether every step delivered every message exactly once,
// without publish errors, lost connections or subscription errors (the
// baseline included).
func (r *FanoutResult) OK() bool {
	if r.ConnectionsLost != 0 || r.SubscriptionErrors != 0 {
		return false
	}
	for _, s := range r.Steps {
		if !s.Delivery.Exact() || s.PublishErrors != 0 {
			return false
		}
	}
	return r.Baseline == nil || r.Baseline.OK()
}

// Problems describes what OK found wrong, one line each.
func (r *FanoutResult) Problems() []string {
	var out []string
	if r.ConnectionsLost != 0 {
		out = append(out, fmt.Sprintf("%s: %d connections ended during the run", r.Kind, r.ConnectionsLost))
	}
	if r.SubscriptionErrors != 0 {
		out = append(out, fmt.Sprintf("%s: %d subscription errors: %s", r.Kind, r.SubscriptionErrors, strings.Join(r.SubscriptionErrs, "; ")))
	}
	for _, s := range r.Steps {
		d := s.Delivery
		if !d.Exact() {
			out = append(out, fmt.Sprintf("%s rate %s: %d lost, %d duplicates, %d unexpected of %d expected", r.Kind, report.Rate(s.OfferedRate), d.Lost, d.Duplicates, d.Unexpected, d.Expected))
		}
		if s.PublishErrors != 0 {
			out = append(out, fmt.Sprintf("%s rate %s: %d publish errors: %s", r.Kind, report.Rate(s.OfferedRate), s.PublishErrors, strings.Join(s.Errors, "; ")))
		}
	}
	if r.Baseline != nil {
		out = append(out, r.Baseline.Problems()...)
	}
	return out
}

// Fanout measures delivery through Parley: Rooms × Subscribers
// connections, each one user with one messageAdded subscription, while
// each room's owner publishes at each of Rates in turn.
func Fanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e, err := newEnv(cfg.Common, cfg.MaxInFlight)
	if err != nil {
		return nil, err
	}
	cfg.Common = e.Common
	res, err := runFanout(ctx, cfg, &graphqlTarget{env: e})
	if err != nil {
		return nil, err
	}
	if cfg.Baseline {
		if res.Baseline, err = RawFanout(ctx, cfg); err != nil {
			return res, fmt.Errorf("baseline: %w", err)
		}
	}
	return res, nil
}

// RawFanout runs the fan-out measurement against a rawserver (no GraphQL,
// no database) with the same rooms, subscribers and rates, as a baseline
// for Fanout: the one at cfg.RawURL, or else one started in this process,
// where it shares the CPU with the clients. It ignores the Target.
func RawFanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		p, err := NewPrefix()
		if err != nil {
			return nil, err
		}
		cfg.Prefix = p
	}
	if cfg.DialConcurrency <= 0 {
		cfg.DialConcurrency = DefaultDialConcurrency
	}
	hc := client.NewHTTPClient(max(cfg.MaxInFlight, 64))
	if cfg.RawURL != "" {
		return runFanout(ctx, cfg, &rawTarget{url: strings.TrimSuffix(cfg.RawURL, "/"), prefix: cfg.Prefix, hc: hc})
	}
	srv, err := rawserver.Start("127.0.0.1:0", rawserver.Options{})
	if err != nil {
		return nil, err
	}
	res, err := runFanout(ctx, cfg, &rawTarget{url: srv.URL, prefix: cfg.Prefix, hc: hc})
	if cerr := srv.Close(); err == nil && cerr != nil {
		return nil, cerr
	}
	return res, err
}

// deliverFunc hands a parsed message to the run: its id, body and when it
// was parsed (clock.UnixNano).
type deliverFunc func(id, body string, at int64)

// fanoutConn is an open subscriber connection.
type fanoutConn interface {
	Close() error
	Err() error
}

// fanoutTarget is what runFanout drives: Parley over GraphQL, or the raw
// baseline server.
type fanoutTarget interface {
	kind() string
	wsNodes() []string
	publisher() string
	setup(ctx context.Context, rooms, subs int) error
	connect(ctx context.Context, room, sub, global int, deliver deliverFunc, fail func(error)) (fanoutConn, error)
	publish(ctx context.Context, room int, body string) (string, error)
}

// Message bodies carry the step, a sequence number and the send time, so
// that a subscriber can attribute every delivery and time it:
// "pb <step> <seq> <unix-nanos>". Warm-up messages have step -1.
func messageBody(step int, seq, sentNs int64) string {
	return "pb " + strconv.Itoa(step) + " " + strconv.FormatInt(seq, 10) + " " + strconv.FormatInt(sentNs, 10)
}

func parseBody(body string) (step int, sentNs int64, ok bool) {
	f := strings.Fields(body)
	if len(f) != 4 || f[0] != "pb" {
		return 0, 0, false
	}
	step, err1 := strconv.Atoi(f[1])
	sentNs, err2 := strconv.ParseInt(f[3], 10, 64)
	return step, sentNs, err1 == nil && err2 == nil
}

// phase is the bookkeeping of one step.
type phase struct {
	ledger   *accounting.Ledger
	e2e      stats.Recorder
	mutation stats.Recorder
	lastRecv atomic.Int64
}

func runFanout(ctx context.Context, cfg FanoutConfig, t fanoutTarget) (*FanoutResult, error) {
	res := &FanoutResult{
		Kind: t.kind(), Prefix: cfg.Prefix, Rooms: cfg.Rooms, Subscribers: cfg.Subscribers,
		Connections: cfg.Rooms * cfg.Subscribers, WSNodes: t.wsNodes(), Publisher: t.publisher(),
	}
	n := res.Connections
	groups := make([][]int, cfg.Rooms)
	for r := range groups {
		for s := range cfg.Subscribers {
			groups[r] = append(groups[r], r*cfg.Subscribers+s)
		}
	}
	phases := make([]*phase, len(cfg.Rates))
	for i := range phases {
		phases[i] = &phase{ledger: accounting.New(n, groups)}
	}

	start := time.Now()
	if err := t.setup(ctx, cfg.Rooms, cfg.Subscribers); err != nil {
		return nil, fmt.Errorf("%s fanout: seed: %w", t.kind(), err)
	}
	res.Setup = time.Since(start)

	// Deliveries are routed by the step in their body.
	live := make([]atomic.Bool, n)
	roomLive := make([]atomic.Int64, cfg.Rooms)
	var liveCount, foreign, subErrs atomic.Int64
	var subErrSamples errorSamples
	deliver := func(g int) deliverFunc {
		return func(id, body string, at int64) {
			step, sentNs, ok := parseBody(body)
			switch {
			case !ok || step < -1 || step >= len(phases):
				foreign.Add(1)
			case step == -1:
				if !live[g].Swap(true) {
					liveCount.Add(1)
					roomLive[g/cfg.Subscribers].Add(1)
				}
			default:
				ph := phases[step]
				if ph.ledger.Inbox(g).Deliver(id) {
					ph.e2e.Add(time.Duration(at - sentNs))
				}
				for {
					last := ph.lastRecv.Load()
					if at <= last || ph.lastRecv.CompareAndSwap(last, at) {
						break
					}
				}
			}
		}
	}
	fail := func(err error) {
		subErrs.Add(1)
		subErrSamples.add(err)
	}

	start = time.Now()
	conns := make([]fanoutConn, n)
	var opened atomic.Int64
	stop := cfg.every(func() string {
		return fmt.Sprintf("%s fanout: connecting %s/%s", t.kind(), report.Int(opened.Load()), report.Int(int64(n)))
	})
	err := parallel(ctx, n, cfg.DialConcurrency, func(ctx context.Context, g int) error {
		c, err := t.connect(ctx, g/cfg.Subscribers, g%cfg.Subscribers, g, deliver(g), fail)
		if err != nil {
			return fmt.Errorf("connect subscriber %d: %w", g, err)
		}
		conns[g] = c
		opened.Add(1)
		return nil
	})
	stop()
	defer func() {
		open := conns[:0:0]
		for _, c := range conns {
			if c != nil {
				open = append(open, c)
			}
		}
		// Close errors at teardown say nothing about the measurement.
		_ = closeAll(open)
	}()
	if err != nil {
		return nil, fmt.Errorf("%s fanout: %w", t.kind(), err)
	}
	res.Connect = time.Since(start)

	start = time.Now()
	if err := warmUp(ctx, cfg, t, &liveCount, roomLive, n); err != nil {
		return nil, fmt.Errorf("%s fanout: %w", t.kind(), err)
	}
	res.Warmup = time.Since(start)

	for i, rate := range cfg.Rates {
		step, err := runStep(ctx, cfg, t, i, rate, phases[i])
		if err != nil {
			return nil, fmt.Errorf("%s fanout at %v/s: %w", t.kind(), rate, err)
		}
		res.Steps = append(res.Steps, step)
	}
	for _, c := range conns {
		if c.Err() != nil {
			res.ConnectionsLost++
		}
	}
	res.SubscriptionErrors = subErrs.Load()
	res.SubscriptionErrs = subErrSamples.list()
	res.Foreign = foreign.Load()
	return res, nil
}

// warmUp publishes a warm-up message to every room that has subscribers
// not yet live, every 100 ms, until all are: a subscription has no
// acknowledgement, and a subscriber that has seen a message is known to
// receive every later one.
func warmUp(ctx context.Context, cfg FanoutConfig, t fanoutTarget, liveCount *atomic.Int64, roomLive []atomic.Int64, n int) error {
	deadline := time.Now().Add(cfg.WarmupTimeout)
	var seq int64
	var errMu sync.Mutex
	var lastErr error
	stop := cfg.every(func() string {
		return fmt.Sprintf("%s fanout: warming up, %s/%s subscriptions live", t.kind(), report.Int(liveCount.Load()), report.Int(int64(n)))
	})
	defer stop()
	for liveCount.Load() < int64(n) {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("only %d of %d subscriptions live after %v", liveCount.Load(), n, cfg.WarmupTimeout)
			errMu.Lock()
			if lastErr != nil {
				msg += "; last publish error: " + lastErr.Error()
			}
			errMu.Unlock()
			return errors.New(msg)
		}
		err := parallel(ctx, cfg.Rooms, setupConcurrency, func(ctx context.Context, r int) error {
			if roomLive[r].Load() >= int64(cfg.Subscribers) {
				return nil
			}
			if _, err := t.publish(ctx, r, messageBody(-1, atomic.AddInt64(&seq, 1), clock.UnixNano())); err != nil {
				errMu.Lock()
				lastErr = err
				errMu.Unlock()
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := (clock.Real{}).Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

type sendJob struct{ seq int64 }

// runStep offers one rate for cfg.StepDuration, then waits for the
// deliveries to drain and tallies them.
func runStep(ctx context.Context, cfg FanoutConfig, t fanoutTarget, idx int, rate float64, ph *phase) (FanoutStep, error) {
	step := FanoutStep{OfferedRate: rate, Duration: cfg.StepDuration}
	startNs := clock.UnixNano()
	start := time.Now()
	p, err := pacer.New(pacer.Config{Rate: rate, Start: start, Deadline: start.Add(cfg.StepDuration)})
	if err != nil {
		return step, err
	}
	var attempted, sent, perrs atomic.Int64
	var errs errorSamples
	jobs := make(chan sendJob)
	var wg sync.WaitGroup
	for range cfg.MaxInFlight {
		wg.Go(func() {
			for j := range jobs {
				room := int(j.seq % int64(cfg.Rooms))
				attempted.Add(1)
				t0 := clock.UnixNano()
				id, err := t.publish(ctx, room, messageBody(idx, j.seq, t0))
				t1 := clock.UnixNano()
				if err != nil {
					perrs.Add(1)
					errs.add(err)
					continue
				}
				ph.mutation.Add(time.Duration(t1 - t0))
				ph.ledger.Expect(id, room)
				sent.Add(1)
			}
		})
	}
	label := fmt.Sprintf("%s fanout step %d/%d at %s/s", t.kind(), idx+1, len(cfg.Rates), report.Rate(rate))
	stop := cfg.every(func() string {
		pending := max(ph.ledger.Pending(), 0)
		return fmt.Sprintf("%s: %s/%s sent %s, errors %d, awaiting %s deliveries",
			label, seconds(time.Since(start)), seconds(cfg.StepDuration), report.Int(sent.Load()), perrs.Load(), report.Int(pending))
	})
	defer stop()
	for {
		tick, ok := p.Wait(ctx)
		if !ok {
			break
		}
		select {
		case jobs <- sendJob{seq: tick.Seq}:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return step, err
	}
	drainUntil := time.Now().Add(cfg.Drain)
	for ph.ledger.Pending() > 0 && time.Now().Before(drainUntil) {
		if err := (clock.Real{}).Sleep(ctx, 10*time.Millisecond); err != nil {
			return step, err
		}
	}
	step.Attempted, step.Sent, step.PublishErrors = attempted.Load(), sent.Load(), perrs.Load()
	step.SkippedTicks = p.Skipped()
	step.AchievedRate = float64(step.Sent) / cfg.StepDuration.Seconds()
	step.Delivery = ph.ledger.Tally()
	step.DeliveryRatio = step.Delivery.Ratio()
	window := cfg.StepDuration
	if last := ph.lastRecv.Load(); last > startNs {
		window = max(window, time.Duration(last-startNs))
	}
	step.DeliveriesPerSecond = float64(step.Delivery.Delivered) / window.Seconds()
	step.EndToEnd = ph.e2e.Summary()
	step.Mutation = ph.mutation.Summary()
	step.Errors = errs.list()
	return step, nil
}

// graphqlTarget is Parley: rooms are private channels created over
// GraphQL, subscribers use messageAdded over graphql-transport-ws and
// publishers sendMessage over HTTP.
type graphqlTarget struct {
	env      *env
	channels []string
	pubTok   []string
}

func (g *graphqlTarget) kind() string { return "graphql" }

func (g *graphqlTarget) wsNodes() []string {
	if len(g.env.WS) == 0 {
		return []string{g.env.wsURL(0)}
	}
	return g.env.WS
}

func (g *graphqlTarget) publisher() string { return g.env.HTTP[0] }

func (g *graphqlTarget) setup(ctx context.Context, rooms, subs int) error {
	g.channels = make([]string, rooms)
	g.pubTok = make([]string, rooms)
	return parallel(ctx, rooms, 4, func(ctx context.Context, r int) error {
		owner := fmt.Sprintf("pub-%d", r)
		tok, err := g.env.token(owner)
		if err != nil {
			return err
		}
		members := make([]string, subs)
		for s := range members {
			members[s] = fmt.Sprintf("sub-%d-%d", r, s)
			if _, err := g.env.token(members[s]); err != nil {
				return err
			}
		}
		id, err := g.env.createRoom(ctx, owner, fmt.Sprintf("room-%d", r), members)
		if err != nil {
			return err
		}
		g.channels[r], g.pubTok[r] = id, tok
		return nil
	})
}

func (g *graphqlTarget) connect(ctx context.Context, room, sub, global int, deliver deliverFunc, fail func(error)) (fanoutConn, error) {
	tok, err := g.env.token(fmt.Sprintf("sub-%d-%d", room, sub))
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(ctx, g.env.wsURL(global), client.DialOptions{Token: tok, HTTPClient: g.env.hc, RawResults: true})
	if err != nil {
		return nil, err
	}
	_, err = c.Subscribe(ctx, subscriptionMessage, map[string]any{"c": g.channels[room]}, func(ev client.Event) {
		switch ev.Kind {
		case client.Next:
			// Reading has to cost the tool less than writing costs the
			// server: a result in the form the subscription gives is cut
			// without decoding, anything else decoded in full.
			if id, body, ok := cutMessageAdded(ev.Payload); ok {
				deliver(id, body, clock.UnixNano())
				return
			}
			var r struct {
				Data struct {
					MessageAdded struct {
						ID   string `json:"id"`
						Body string `json:"body"`
					} `json:"messageAdded"`
				} `json:"data"`
				Errors client.Errors `json:"errors"`
			}
			if err := json.Unmarshal(ev.Payload, &r); err != nil {
				fail(fmt.Errorf("decode messageAdded: %w", err))
				return
			}
			if len(r.Errors) > 0 {
				fail(r.Errors)
				return
			}
			deliver(r.Data.MessageAdded.ID, r.Data.MessageAdded.Body, clock.UnixNano())
		case client.ErrorEvent:
			fail(fmt.Errorf("subscription ended with %w", ev.Errors))
		case client.Complete:
			fail(errors.New("subscription completed by the server"))
		}
	})
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// cutMessageAdded reads the id and body of a messageAdded result of
// subscriptionMessage in the form Parley encodes it,
// {"data":{"messageAdded":{…}}}, with cutIDBody; ok is false for anything
// else (errors, another encoder's spacing), which the caller decodes in
// full.
func cutMessageAdded(payload []byte) (id, body string, ok bool) {
	inner, found := bytes.CutPrefix(payload, []byte(`{"data":{"messageAdded":`))
	if !found {
		return "", "", false
	}
	inner, found = bytes.CutSuffix(inner, []byte(`}}`))
	if !found {
		return "", "", false
	}
	return cutIDBody(inner)
}

// cutIDBody reads the "id" and "body" of a flat JSON object without
// spaces whose values are strings without escapes or numbers: a message
// as Parley and the raw server encode it. ok is false for anything else.
// The fan-out readers use it because reading has to cost the tool less
// than writing costs the server.
func cutIDBody(obj []byte) (id, body string, ok bool) {
	rest, found := bytes.CutPrefix(obj, []byte(`{`))
	if !found {
		return "", "", false
	}
	for {
		if len(rest) == 0 || rest[0] != '"' {
			return "", "", false
		}
		k := bytes.IndexByte(rest[1:], '"')
		if k < 0 || len(rest) < k+3 || rest[k+2] != ':' {
			return "", "", false
		}
		key := rest[1 : k+1]
		rest = rest[k+3:]
		var val []byte
		if len(rest) > 0 && rest[0] == '"' {
			end := bytes.IndexByte(rest[1:], '"')
			if end < 0 {
				return "", "", false
			}
			val, rest = rest[1:end+1], rest[end+2:]
			if bytes.IndexByte(val, '\\') >= 0 {
				return "", "", false
			}
		} else {
			end := bytes.IndexAny(rest, ",}")
			if end <= 0 || bytes.ContainsAny(rest[:end], `{["`) {
				return "", "", false
			}
			val, rest = rest[:end], rest[end:]
		}
		switch string(key) {
		case "id":
			id = string(val)
		case "body":
			body = string(val)
		}
		if len(rest) > 0 && rest[0] == ',' {
			rest = rest[1:]
			continue
		}
		return id, body, id != "" && string(rest) == "}"
	}
}

func (g *graphqlTarget) publish(ctx context.Context, room int, body string) (string, error) {
	id, _, err := g.env.send(ctx, g.pubTok[room], g.channels[room], body)
	return id, err
}

// rawTarget is a rawserver at url (http://host:port).
type rawTarget struct {
	url    string
	prefix string
	hc     *http.Client
}

func (r *rawTarget) kind() string { return "raw" }

func (r *rawTarget) wsNodes() []string {
	return []string{"ws" + strings.TrimPrefix(r.url, "http") + "/ws"}
}

func (r *rawTarget) publisher() string { return r.url + "/publish" }

func (r *rawTarget) setup(context.Context, int, int) error { return nil }

func (r *rawTarget) room(i int) string { return r.prefix + "room-" + strconv.Itoa(i) }

func (r *rawTarget) connect(ctx context.Context, room, _, _ int, deliver deliverFunc, fail func(error)) (fanoutConn, error) {
	u := r.wsNodes()[0] + "?room=" + url.QueryEscape(r.room(room))
	return client.DialRaw(ctx, u, client.DialOptions{HTTPClient: r.hc}, func(data []byte) {
		if id, body, ok := cutIDBody(data); ok {
			deliver(id, body, clock.UnixNano())
			return
		}
		var m rawserver.Message
		if err := json.Unmarshal(data, &m); err != nil {
			fail(fmt.Errorf("decode raw message: %w", err))
			return
		}
		deliver(m.ID, m.Body, clock.UnixNano())
	})
}

func (r *rawTarget) publish(ctx context.Context, room int, body string) (string, error) {
	b, err := json.Marshal(map[string]string{"room": r.room(room), "body": body})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.publisher(), bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", err
	}
	raw, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("publish: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var m rawserver.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("publish: decode %q: %w", raw, err)
	}
	return m.ID, nil
}
