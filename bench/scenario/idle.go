package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/bench/client"
	"github.com/parleychat/parley/bench/clock"
	"github.com/parleychat/parley/bench/report"
)

// DefaultIdlePerRoom is how many idle connections share a room when
// IdleConfig.Rooms is 0.
const DefaultIdlePerRoom = 100

// probeWait bounds the wait for the final liveness probe.
const probeWait = 10 * time.Second

// IdleConfig configures Idle.
type IdleConfig struct {
	Common
	// Connections is the number of authenticated connections, each one
	// user with one messageAdded subscription.
	Connections int
	// Rooms spreads the subscriptions over this many channels; 0 is one
	// per DefaultIdlePerRoom connections.
	Rooms int
	// Duration is how long the connections are held.
	Duration time.Duration
	// ServerPID is the server's process id, for its memory and threads
	// (/proc/<pid>/status, Linux); 0 skips them.
	ServerPID int
	// PprofURL is the base URL of the server's net/http/pprof handlers,
	// for its goroutine count; Parley serves none by default, so empty
	// skips the count.
	PprofURL string
	// WarmupTimeout bounds the wait for every subscription to be live.
	WarmupTimeout time.Duration
}

// IdleResult is the outcome of Idle.
type IdleResult struct {
	Prefix      string   `json:"prefix"`
	Connections int      `json:"connections"`
	Rooms       int      `json:"rooms"`
	WSNodes     []string `json:"ws_nodes"`
	// Open is the time to open every connection and see every
	// subscription live.
	Open time.Duration `json:"open_ns"`
	Hold time.Duration `json:"hold_ns"`
	// Alive counts connections that received the probe sent after the
	// hold.
	Alive     int `json:"alive"`
	ServerPID int `json:"server_pid,omitempty"`
	// Before is read before any connection opens, AfterOpen once all are
	// live, AfterHold at the end of the hold; nil without ServerPID.
	Before    *ProcSample `json:"before,omitempty"`
	AfterOpen *ProcSample `json:"after_open,omitempty"`
	AfterHold *ProcSample `json:"after_hold,omitempty"`
	// RSSPerConnection is (AfterHold − Before) RSS ÷ Connections, bytes.
	RSSPerConnection float64 `json:"rss_per_connection_bytes"`
	// ThreadsDelta is AfterHold − Before threads.
	ThreadsDelta int `json:"threads_delta"`
	// GoroutinesPerConnection is (AfterHold − Before) goroutines ÷
	// Connections, or -1 when not measured.
	GoroutinesPerConnection float64  `json:"goroutines_per_connection"`
	Notes                   []string `json:"notes,omitempty"`
}

// OK reports whether every connection was alive at the end.
func (r *IdleResult) OK() bool { return r.Alive == r.Connections }

// Idle opens Connections authenticated connections with one subscription
// each, holds them for Duration and reports what they cost the server.
func Idle(ctx context.Context, cfg IdleConfig) (*IdleResult, error) {
	if cfg.Connections <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("idle: connections and duration must be positive")
	}
	if cfg.Rooms <= 0 {
		cfg.Rooms = (cfg.Connections + DefaultIdlePerRoom - 1) / DefaultIdlePerRoom
	}
	cfg.Rooms = min(cfg.Rooms, cfg.Connections)
	if cfg.WarmupTimeout <= 0 {
		cfg.WarmupTimeout = DefaultWarmupTimeout
	}
	e, err := newEnv(cfg.Common, 64)
	if err != nil {
		return nil, err
	}
	g := &graphqlTarget{env: e}
	res := &IdleResult{Prefix: e.Prefix, Connections: cfg.Connections, Rooms: cfg.Rooms, WSNodes: g.wsNodes(), ServerPID: cfg.ServerPID, GoroutinesPerConnection: -1}

	// Room r holds connections r, r+Rooms, r+2·Rooms, …; subscriber s of
	// room r is connection r + s·Rooms.
	perRoom := func(r int) int { return (cfg.Connections - r + cfg.Rooms - 1) / cfg.Rooms }
	g.channels = make([]string, cfg.Rooms)
	g.pubTok = make([]string, cfg.Rooms)
	err = parallel(ctx, cfg.Rooms, 4, func(ctx context.Context, r int) error {
		members := make([]string, perRoom(r))
		for s := range members {
			members[s] = fmt.Sprintf("sub-%d-%d", r, s)
		}
		owner := fmt.Sprintf("pub-%d", r)
		tok, err := e.token(owner)
		if err != nil {
			return err
		}
		id, err := e.createRoom(ctx, owner, fmt.Sprintf("room-%d", r), members)
		g.channels[r], g.pubTok[r] = id, tok
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("idle: seed: %w", err)
	}

	sample := func() (*ProcSample, error) {
		if cfg.ServerPID == 0 {
			return nil, nil
		}
		s := &ProcSample{Goroutines: -1}
		var err error
		if s.RSSBytes, s.Threads, err = readProcStatus(cfg.ServerPID); err != nil {
			return nil, err
		}
		if cfg.PprofURL != "" {
			if s.Goroutines, err = readGoroutines(ctx, e.hc, cfg.PprofURL); err != nil {
				return nil, err
			}
		}
		return s, nil
	}
	if res.Before, err = sample(); err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}

	// seen[i] is the last probe round connection i received.
	seen := make([]atomic.Int64, cfg.Connections)
	var subErrs atomic.Int64
	var subErrSamples errorSamples
	conns := make([]*client.Conn, cfg.Connections)
	var opened atomic.Int64
	start := time.Now()
	stop := cfg.every(func() string {
		return fmt.Sprintf("idle: connecting %s/%s", report.Int(opened.Load()), report.Int(int64(cfg.Connections)))
	})
	err = parallel(ctx, cfg.Connections, cfg.DialConcurrency, func(ctx context.Context, i int) error {
		r, s := i%cfg.Rooms, i/cfg.Rooms
		tok, err := e.token(fmt.Sprintf("sub-%d-%d", r, s))
		if err != nil {
			return err
		}
		c, err := client.Dial(ctx, e.wsURL(i), client.DialOptions{Token: tok, HTTPClient: e.hc})
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns[i] = c
		opened.Add(1)
		_, err = c.Subscribe(ctx, subscriptionMessage, map[string]any{"c": g.channels[r]}, func(ev client.Event) {
			if ev.Kind != client.Next || len(ev.Errors) > 0 {
				subErrs.Add(1)
				subErrSamples.add(fmt.Errorf("subscription %s: %v", ev.Kind, ev.Errors))
				return
			}
			var d struct {
				MessageAdded struct{ Body string } `json:"messageAdded"`
			}
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				subErrs.Add(1)
				subErrSamples.add(fmt.Errorf("decode messageAdded: %w", err))
				return
			}
			if round, ok := parseProbe(d.MessageAdded.Body); ok {
				for {
					old := seen[i].Load()
					if round <= old || seen[i].CompareAndSwap(old, round) {
						break
					}
				}
			}
		})
		return err
	})
	stop()
	defer func() {
		var open []*client.Conn
		for _, c := range conns {
			if c != nil {
				open = append(open, c)
			}
		}
		_ = closeAll(open) // teardown: the measurement is done
	}()
	if err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}
	// Round 1: repeat until every subscription has seen it (they are live).
	if err := probe(ctx, e, g, cfg.Rooms, seen, 1, cfg.WarmupTimeout, true); err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}
	res.Open = time.Since(start)
	if res.AfterOpen, err = sample(); err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}

	holdStart := time.Now()
	stop = cfg.every(func() string {
		open := 0
		for _, c := range conns {
			select {
			case <-c.Done():
			default:
				open++
			}
		}
		line := fmt.Sprintf("idle: holding %s/%s, %s connections open", seconds(time.Since(holdStart)), seconds(cfg.Duration), report.Int(int64(open)))
		if cfg.ServerPID != 0 {
			if rss, _, err := readProcStatus(cfg.ServerPID); err == nil {
				line += ", server RSS " + report.Bytes(rss)
			}
		}
		return line
	})
	err = clock.Real{}.Sleep(ctx, cfg.Duration)
	stop()
	if err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}
	res.Hold = time.Since(holdStart)
	if res.AfterHold, err = sample(); err != nil {
		return nil, fmt.Errorf("idle: %w", err)
	}
	// Round 2, sent once: who is still subscribed?
	if err := probe(ctx, e, g, cfg.Rooms, seen, 2, probeWait, false); err != nil && !errors.Is(err, errProbeIncomplete) {
		return nil, fmt.Errorf("idle: %w", err)
	}
	for i := range seen {
		if seen[i].Load() >= 2 {
			res.Alive++
		}
	}

	if res.Before != nil && res.AfterHold != nil {
		n := float64(cfg.Connections)
		res.RSSPerConnection = float64(res.AfterHold.RSSBytes-res.Before.RSSBytes) / n
		res.ThreadsDelta = res.AfterHold.Threads - res.Before.Threads
		if res.Before.Goroutines >= 0 && res.AfterHold.Goroutines >= 0 {
			res.GoroutinesPerConnection = float64(res.AfterHold.Goroutines-res.Before.Goroutines) / n
		}
	}
	if cfg.ServerPID == 0 {
		res.Notes = append(res.Notes, "server memory not measured: pass --server-pid (Linux /proc)")
	}
	if cfg.PprofURL == "" {
		res.Notes = append(res.Notes, "goroutines not measured: Parley serves no debug endpoint; RSS and threads only (pass --pprof-url for a server that does)")
	}
	if n := subErrs.Load(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d subscription errors: %s", n, strings.Join(subErrSamples.list(), "; ")))
	}
	return res, nil
}

var errProbeIncomplete = errors.New("probe incomplete")

// probe sends "probe <round>" to every room and waits until every
// connection has seen round, or until wait passes (errProbeIncomplete).
// With repeat it resends to the rooms still missing some every 100 ms.
func probe(ctx context.Context, e *env, g *graphqlTarget, rooms int, seen []atomic.Int64, round int64, wait time.Duration, repeat bool) error {
	deadline := time.Now().Add(wait)
	body := "probe " + strconv.FormatInt(round, 10)
	sent := false
	for {
		missing := make([]bool, rooms)
		complete := true
		for i := range seen {
			if seen[i].Load() < round {
				missing[i%rooms], complete = true, false
			}
		}
		if complete {
			return nil
		}
		if time.Now().After(deadline) {
			n := 0
			for i := range seen {
				if seen[i].Load() >= round {
					n++
				}
			}
			return fmt.Errorf("%w: %d of %d subscriptions got probe %d within %v", errProbeIncomplete, n, len(seen), round, wait)
		}
		if !sent || repeat {
			err := parallel(ctx, rooms, setupConcurrency, func(ctx context.Context, r int) error {
				if !missing[r] {
					return nil
				}
				_, _, err := e.send(ctx, g.pubTok[r], g.channels[r], body)
				return err
			})
			if err != nil {
				return fmt.Errorf("send probe: %w", err)
			}
			sent = true
		}
		if err := (clock.Real{}).Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func parseProbe(body string) (int64, bool) {
	rest, ok := strings.CutPrefix(body, "probe ")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	return n, err == nil
}

// Tables presents the result.
func (r *IdleResult) Tables() []report.Table {
	t := report.Table{
		Title: fmt.Sprintf("idle: %s connections (one user and one messageAdded subscription each) over %d room(s), %d ws node(s), held %s",
			report.Int(int64(r.Connections)), r.Rooms, len(r.WSNodes), report.Duration(r.Hold.Round(time.Millisecond))),
		Columns: []string{"measure", "value"},
	}
	row := func(k, v string) { t.Rows = append(t.Rows, []string{k, v}) }
	row("opened and live in", report.Duration(r.Open.Round(time.Millisecond)))
	row("alive after hold", fmt.Sprintf("%s/%s", report.Int(int64(r.Alive)), report.Int(int64(r.Connections))))
	if r.Before != nil && r.AfterHold != nil {
		row("server RSS before", report.Bytes(r.Before.RSSBytes))
		if r.AfterOpen != nil {
			row("server RSS all open", report.Bytes(r.AfterOpen.RSSBytes))
		}
		row("server RSS after hold", report.Bytes(r.AfterHold.RSSBytes))
		row("RSS per connection", report.Bytes(int64(r.RSSPerConnection)))
		row("threads before → after", fmt.Sprintf("%d → %d", r.Before.Threads, r.AfterHold.Threads))
		if r.GoroutinesPerConnection >= 0 {
			row("goroutines before → after", fmt.Sprintf("%d → %d", r.Before.Goroutines, r.AfterHold.Goroutines))
			row("goroutines per connection", strconv.FormatFloat(r.GoroutinesPerConnection, 'f', 2, 64))
		} else {
			row("goroutines per connection", "not measured")
		}
	}
	t.Notes = append(t.Notes, "prefix "+r.Prefix)
	t.Notes = append(t.Notes, r.Notes...)
	if !r.OK() {
		t.Notes = append(t.Notes, fmt.Sprintf("PROBLEM: %d connections did not get the final probe", r.Connections-r.Alive))
	}
	return []report.Table{t}
}
