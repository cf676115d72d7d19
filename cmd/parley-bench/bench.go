package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/bench/client"
	"github.com/parleychat/parley/bench/report"
	"github.com/parleychat/parley/bench/scenario"
)

// Bounds on what one run may ask for, so that a typo cannot start an
// unbounded load.
const (
	maxConnections = 100_000
	maxSteps       = 50
	maxRate        = 1_000_000.0
	maxWriters     = 10_000
	maxSizes       = 20
	maxSize        = 50_000_000
	maxQueries     = 1_000_000
	// setupAllowance is the time a fan-out run is assumed to need for
	// seeding, connecting and warming up when its length is estimated.
	setupAllowance = 30 * time.Second
)

// options are every flag; each scenario reads its own.
type options struct {
	http, ws                 string
	secret, prefix           string
	jsonPath, plotPath       string
	maxDuration              time.Duration
	allowRemote, quiet       bool
	dialConcurrency          int
	rooms, subscribers       int
	rates                    string
	stepDuration, drain      time.Duration
	maxInFlight              int
	warmupTimeout            time.Duration
	baseline                 bool
	rawURL                   string
	connections              int
	duration                 time.Duration
	serverPID                int
	pprofURL                 string
	writers, channels        int
	push, clientIDs          bool
	mentions, unread         int
	databaseURL, sizes       string
	filter                   string
	queries, batch, pageSize int
	requests                 int
	maxCPU                   time.Duration
	cpuProfile               string
}

func newFlagSet(name string, o *options, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.http, "http", "http://127.0.0.1:8080", "")
	fs.StringVar(&o.ws, "ws", "", "")
	fs.StringVar(&o.secret, "secret", getenv("PARLEY_JWT_SECRET"), "")
	fs.StringVar(&o.prefix, "prefix", "", "")
	fs.StringVar(&o.jsonPath, "json", "", "")
	fs.StringVar(&o.plotPath, "plot", "", "")
	fs.DurationVar(&o.maxDuration, "max-duration", 10*time.Minute, "")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "")
	fs.BoolVar(&o.quiet, "quiet", false, "")
	fs.IntVar(&o.dialConcurrency, "dial-concurrency", scenario.DefaultDialConcurrency, "")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "")
	switch name {
	case "fanout", "rawfanout":
		fs.IntVar(&o.rooms, "rooms", 1, "")
		fs.IntVar(&o.subscribers, "subscribers", 100, "")
		fs.StringVar(&o.rates, "rates", "10,50,100,200", "")
		fs.DurationVar(&o.stepDuration, "step-duration", 10*time.Second, "")
		fs.DurationVar(&o.drain, "drain", scenario.DefaultDrain, "")
		fs.IntVar(&o.maxInFlight, "max-inflight", scenario.DefaultMaxInFlight, "")
		fs.DurationVar(&o.warmupTimeout, "warmup-timeout", scenario.DefaultWarmupTimeout, "")
		if name == "fanout" {
			fs.BoolVar(&o.baseline, "baseline", false, "")
		}
		fs.StringVar(&o.rawURL, "raw-url", "", "")
	case "idle":
		fs.IntVar(&o.connections, "connections", 1000, "")
		fs.IntVar(&o.rooms, "rooms", 0, "")
		fs.DurationVar(&o.duration, "duration", 30*time.Second, "")
		fs.IntVar(&o.serverPID, "server-pid", 0, "")
		fs.StringVar(&o.pprofURL, "pprof-url", "", "")
		fs.DurationVar(&o.warmupTimeout, "warmup-timeout", scenario.DefaultWarmupTimeout, "")
	case "write":
		fs.IntVar(&o.writers, "writers", 8, "")
		fs.IntVar(&o.channels, "channels", 1, "")
		fs.DurationVar(&o.duration, "duration", 10*time.Second, "")
		fs.BoolVar(&o.push, "push", false, "")
		fs.BoolVar(&o.clientIDs, "client-ids", false, "")
		fs.IntVar(&o.mentions, "mentions", 0, "")
	case "unread":
		fs.IntVar(&o.channels, "channels", scenario.DefaultUnreadChannels, "")
		fs.IntVar(&o.unread, "unread", scenario.DefaultUnreadPerChannel, "")
		fs.IntVar(&o.queries, "queries", scenario.DefaultUnreadQueries, "")
		fs.IntVar(&o.writers, "concurrency", scenario.DefaultUnreadConcurrency, "")
	case "hostile":
		fs.IntVar(&o.requests, "requests", scenario.DefaultHostileRequests, "")
		fs.IntVar(&o.serverPID, "server-pid", 0, "")
		fs.DurationVar(&o.maxCPU, "max-cpu", scenario.DefaultHostileMaxCPU, "")
	case "history":
		fs.StringVar(&o.databaseURL, "database-url", getenv("DATABASE_URL"), "")
		fs.StringVar(&o.sizes, "sizes", "10000,100000,1000000", "")
		fs.IntVar(&o.queries, "queries", scenario.DefaultHistoryQueries, "")
		fs.IntVar(&o.batch, "batch", scenario.DefaultBatchSize, "")
		fs.IntVar(&o.pageSize, "page-size", scenario.DefaultPageSize, "")
		fs.StringVar(&o.filter, "filter", "", "")
	}
	return fs
}

// result is what every scenario returns.
type result interface {
	Tables() []report.Table
	OK() bool
}

// output is the JSON document --json writes.
type output struct {
	Scenario  string    `json:"scenario"`
	StartedAt time.Time `json:"started_at"`
	Elapsed   string    `json:"elapsed"`
	Args      []string  `json:"args"`
	OK        bool      `json:"ok"`
	Result    any       `json:"result"`
}

func runScenario(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet(name, &o, getenv)
	if err := fs.Parse(args); err != nil {
		return usageErr("%s: %v", name, err)
	}
	if fs.NArg() > 0 {
		return usageErr("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if o.maxDuration <= 0 {
		return usageErr("--max-duration must be positive")
	}
	if o.plotPath != "" && name != "fanout" && name != "rawfanout" {
		return usageErr("--plot is for fanout and rawfanout")
	}
	common, err := o.common(ctx, name)
	if err != nil {
		return err
	}
	if !o.quiet {
		common.Progress = report.NewProgress(stderr)
	}
	run, err := o.prepare(ctx, name, common)
	if err != nil {
		return err
	}

	started := time.Now()
	runCtx, cancel := context.WithTimeoutCause(ctx, o.maxDuration, errMaxDuration)
	defer cancel()
	stopProfile := func() error { return nil }
	if o.cpuProfile != "" {
		if stopProfile, err = startCPUProfile(o.cpuProfile); err != nil {
			return err
		}
	}
	res, err := run(runCtx)
	if perr := stopProfile(); perr != nil && err == nil {
		err = perr
	}
	err = scenario.WithRateLimitHint(err)
	if err != nil {
		if errors.Is(context.Cause(runCtx), errMaxDuration) {
			return fmt.Errorf("%s: stopped by --max-duration %v: %w", name, o.maxDuration, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := report.WriteTables(stdout, res.Tables()); err != nil {
		return err
	}
	if o.jsonPath != "" {
		out := output{Scenario: name, StartedAt: started.UTC(), Elapsed: time.Since(started).Round(time.Millisecond).String(), Args: args, OK: res.OK(), Result: res}
		if err := report.WriteJSON(o.jsonPath, out); err != nil {
			return err
		}
	}
	if o.plotPath != "" {
		if f, ok := res.(*scenario.FanoutResult); ok {
			if err := f.Plot().WriteFile(o.plotPath); err != nil {
				return err
			}
		}
	}
	if !res.OK() {
		return fmt.Errorf("%s: the run failed its checks (see the table)", name)
	}
	return nil
}

var errMaxDuration = errors.New("--max-duration reached")

// startCPUProfile starts profiling the tool's own CPU into the file path
// (for go tool pprof), so that a run can tell whether the tool, rather
// than the server, limits what it measures. The function it returns stops
// the profile and closes the file.
func startCPUProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("--cpuprofile: %w", err), f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// common builds the shared settings, refusing non-loopback targets unless
// allowed.
func (o *options) common(ctx context.Context, name string) (scenario.Common, error) {
	c := scenario.Common{Prefix: o.prefix, DialConcurrency: o.dialConcurrency, TokenTTL: o.maxDuration + 10*time.Minute}
	if o.rawURL != "" && !o.allowRemote {
		if err := requireLoopback(ctx, o.rawURL); err != nil {
			return c, err
		}
	}
	if name == "rawfanout" {
		return c, nil // the target is the raw server
	}
	for _, base := range splitList(o.http) {
		u, err := client.GraphQLURL(base)
		if err != nil {
			return c, usageErr("--http: %v", err)
		}
		c.HTTP = append(c.HTTP, u)
	}
	if len(c.HTTP) == 0 {
		return c, usageErr("--http: no URL")
	}
	wsList := splitList(o.ws)
	if len(wsList) == 0 {
		wsList = splitList(o.http)
	}
	for _, base := range wsList {
		u, err := client.WebSocketURL(base)
		if err != nil {
			return c, usageErr("--ws: %v", err)
		}
		c.WS = append(c.WS, u)
	}
	if o.secret == "" {
		return c, usageErr("no JWT secret: set PARLEY_JWT_SECRET or pass --secret")
	}
	c.Secret = []byte(o.secret)
	if !o.allowRemote {
		targets := append(append([]string{}, c.HTTP...), c.WS...)
		if o.pprofURL != "" {
			targets = append(targets, o.pprofURL)
		}
		for _, t := range targets {
			if err := requireLoopback(ctx, t); err != nil {
				return c, err
			}
		}
		if strings.HasPrefix(o.databaseURL, "postgres://") || strings.HasPrefix(o.databaseURL, "postgresql://") {
			u, err := url.Parse(o.databaseURL)
			if err != nil {
				return c, usageErr("--database-url: cannot parse the PostgreSQL URL")
			}
			// A host-less URL uses a local socket.
			if u.Hostname() != "" {
				if err := requireLoopbackHost(ctx, u.Hostname(), "--database-url host "+u.Hostname()); err != nil {
					return c, err
				}
			}
		}
	}
	return c, nil
}

func requireLoopback(ctx context.Context, rawURL string) error {
	ok, err := client.IsLoopback(ctx, rawURL)
	if err != nil {
		return usageErr("%s: %v", rawURL, err)
	}
	if !ok {
		return usageErr("%s is not this machine: refusing to load a remote target without --allow-remote", rawURL)
	}
	return nil
}

func requireLoopbackHost(ctx context.Context, host, what string) error {
	ok, err := client.HostIsLoopback(ctx, host)
	if err != nil {
		return usageErr("%s: %v", what, err)
	}
	if !ok {
		return usageErr("%s is not this machine: refusing without --allow-remote", what)
	}
	return nil
}

// prepare validates the scenario's flags and returns the run.
func (o *options) prepare(_ context.Context, name string, c scenario.Common) (func(context.Context) (result, error), error) {
	switch name {
	case "fanout", "rawfanout":
		rates, err := parseRates(o.rates)
		if err != nil {
			return nil, err
		}
		if o.rooms <= 0 || o.subscribers <= 0 || o.rooms*o.subscribers > maxConnections {
			return nil, usageErr("--rooms × --subscribers must be between 1 and %d", maxConnections)
		}
		if o.stepDuration <= 0 || o.drain <= 0 || o.maxInFlight <= 0 {
			return nil, usageErr("--step-duration, --drain and --max-inflight must be positive")
		}
		runs := 1
		if o.baseline {
			runs = 2
		}
		if est := time.Duration(runs) * (setupAllowance + time.Duration(len(rates))*(o.stepDuration+o.drain)); est > o.maxDuration {
			return nil, usageErr("%d steps of %v (+ %v drain) may take %v with setup, over --max-duration %v", len(rates), o.stepDuration, o.drain, est, o.maxDuration)
		}
		cfg := scenario.FanoutConfig{
			Common: c, Rooms: o.rooms, Subscribers: o.subscribers, Rates: rates, StepDuration: o.stepDuration,
			Drain: o.drain, MaxInFlight: o.maxInFlight, WarmupTimeout: o.warmupTimeout, Baseline: o.baseline,
			RawURL: o.rawURL,
		}
		if o.rawURL != "" && name == "fanout" && !o.baseline {
			return nil, usageErr("--raw-url is for rawfanout and for fanout --baseline")
		}
		if name == "rawfanout" {
			return func(ctx context.Context) (result, error) { return scenario.RawFanout(ctx, cfg) }, nil
		}
		return func(ctx context.Context) (result, error) { return scenario.Fanout(ctx, cfg) }, nil
	case "idle":
		if o.connections <= 0 || o.connections > maxConnections {
			return nil, usageErr("--connections must be between 1 and %d", maxConnections)
		}
		if o.duration <= 0 || o.duration+setupAllowance > o.maxDuration {
			return nil, usageErr("--duration %v must be positive and, with %v for setup, within --max-duration %v", o.duration, setupAllowance, o.maxDuration)
		}
		if o.serverPID < 0 {
			return nil, usageErr("--server-pid must be a process id")
		}
		cfg := scenario.IdleConfig{
			Common: c, Connections: o.connections, Rooms: o.rooms, Duration: o.duration,
			ServerPID: o.serverPID, PprofURL: o.pprofURL, WarmupTimeout: o.warmupTimeout,
		}
		return func(ctx context.Context) (result, error) { return scenario.Idle(ctx, cfg) }, nil
	case "write":
		if o.writers <= 0 || o.writers > maxWriters || o.channels <= 0 {
			return nil, usageErr("--writers must be between 1 and %d, --channels positive", maxWriters)
		}
		if o.duration <= 0 || o.duration+setupAllowance > o.maxDuration {
			return nil, usageErr("--duration %v must be positive and, with %v for setup and the check, within --max-duration %v", o.duration, setupAllowance, o.maxDuration)
		}
		if o.mentions < 0 || o.mentions > scenario.MaxWriteMentions {
			return nil, usageErr("--mentions must be between 0 and %d", scenario.MaxWriteMentions)
		}
		cfg := scenario.WriteConfig{Common: c, Writers: o.writers, Channels: o.channels, Duration: o.duration, Push: o.push,
			ClientIDs: o.clientIDs, Mentions: o.mentions}
		return func(ctx context.Context) (result, error) { return scenario.Write(ctx, cfg) }, nil
	case "unread":
		if o.channels <= 0 || o.channels > scenario.MaxUnreadChannels || o.unread < 0 || o.unread > scenario.MaxUnreadPerChannel ||
			o.queries <= 0 || o.queries > maxQueries || o.writers <= 0 || o.writers > maxWriters {
			return nil, usageErr("--channels (1 to %d), --unread (0 to %d), --queries (1 to %d) and --concurrency (1 to %d) out of range",
				scenario.MaxUnreadChannels, scenario.MaxUnreadPerChannel, maxQueries, maxWriters)
		}
		cfg := scenario.UnreadConfig{Common: c, Channels: o.channels, UnreadPerChannel: o.unread, Queries: o.queries, Concurrency: o.writers}
		return func(ctx context.Context) (result, error) { return scenario.Unread(ctx, cfg) }, nil
	case "hostile":
		if o.requests <= 0 || o.requests > maxQueries || o.maxCPU <= 0 || o.serverPID < 0 {
			return nil, usageErr("--requests (at most %d) and --max-cpu must be positive, --server-pid a process id", maxQueries)
		}
		cfg := scenario.HostileConfig{Common: c, Requests: o.requests, ServerPID: o.serverPID, MaxCPU: o.maxCPU}
		return func(ctx context.Context) (result, error) { return scenario.Hostile(ctx, cfg) }, nil
	case "history":
		sizes, err := parseSizes(o.sizes)
		if err != nil {
			return nil, err
		}
		if o.databaseURL == "" {
			return nil, usageErr("history needs --database-url (or DATABASE_URL): the server's database, for the bulk fill")
		}
		if o.queries <= 0 || o.queries > maxQueries || o.batch <= 0 || o.pageSize <= 0 {
			return nil, usageErr("--queries (at most %d), --batch and --page-size must be positive", maxQueries)
		}
		filter, err := scenario.ParseHistoryFilter(o.filter)
		if err != nil {
			return nil, usageErr("--filter: %v", err)
		}
		cfg := scenario.HistoryConfig{Common: c, DatabaseURL: o.databaseURL, Sizes: sizes, Queries: o.queries, BatchSize: o.batch, PageSize: o.pageSize, Filter: filter}
		return func(ctx context.Context) (result, error) { return scenario.History(ctx, cfg) }, nil
	}
	return nil, usageErr("unknown scenario %q", name)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || !(r > 0) || r > maxRate {
			return nil, usageErr("--rates: %q is not a rate in (0, %v]", f, maxRate)
		}
		out = append(out, r)
	}
	if len(out) == 0 || len(out) > maxSteps {
		return nil, usageErr("--rates: want 1 to %d rates", maxSteps)
	}
	return out, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || n <= 0 || n > maxSize {
			return nil, usageErr("--sizes: %q is not a size in [1, %d]", f, maxSize)
		}
		out = append(out, n)
	}
	if len(out) == 0 || len(out) > maxSizes {
		return nil, usageErr("--sizes: want 1 to %d sizes", maxSizes)
	}
	return out, nil
}
