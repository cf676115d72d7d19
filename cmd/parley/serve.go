package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/config"
	"github.com/parleychat/parley/delivery/setup"
	"github.com/parleychat/parley/logging"
	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/metrics"
	"github.com/parleychat/parley/requestid"
	"github.com/parleychat/parley/server"
	"github.com/parleychat/parley/tracing"
)

// defaultShutdownTimeout is PARLEY_SHUTDOWN_TIMEOUT's default: how long
// in-flight requests get to finish on shutdown, realtime connections
// included.
const defaultShutdownTimeout = 10 * time.Second

// mediaSweepInterval is how often a node removes unattached uploads older
// than a day and the media of deleted messages (chat.Service.SweepMedia).
const mediaSweepInterval = 10 * time.Minute

// mediaOptions returns the media options cfg configures, with the
// directory storage (created by the first upload) and URLs signed with a
// key derived from the JWT secret.
func mediaOptions(cfg *settingsConfig, secret []byte) chat.MediaOptions {
	opts := cfg.media
	opts.Storage, opts.Signer = media.NewDir(cfg.mediaDir), media.NewSigner(secret)
	return opts
}

// serveUsage heads `parley serve --help`; the settings follow.
const serveUsage = `usage: parley serve [flags]

Serves Parley's GraphQL API over HTTP. Every setting is a flag and an
environment variable; the flag wins. An invalid value stops the server
before it opens anything, with a message naming the flag or variable.

`

// serve runs the HTTP server until ctx ends, then shuts down gracefully:
// stop accepting, finish in-flight requests, end WebSocket connections
// (their presence is recorded), then close the broker and the database.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	var cfg settingsConfig
	table := settings(&cfg)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	if err := config.Load(fs, table, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return printUsage(stdout, serveUsage, fs, table)
		}
		return fmt.Errorf("serve: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q; see parley serve --help", fs.Args())
	}
	log := slog.New(logging.NewHandler(stderr, cfg.logFormat, cfg.logLevel, requestid.LogAttrs, tracing.LogAttrs))
	node := nodeID()
	traces, err := tracing.New(ctx, getenv, tracing.Config{Version: buildVersion, Instance: node})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := traces.Shutdown(stopCtx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}()
	// Off, tracing costs nothing: no spans, no hooks.
	var (
		tp         trace.TracerProvider
		traceQuery = func(context.Context, string, time.Time, bool) {}
		observe    func(string, any) func()
		redisTrace func(context.Context, string) func(error)
	)
	if traces.Enabled() {
		tp = traces.TracerProvider()
		observe = tracing.DeliverHook(tp, chat.TraceParentOf)
		redisTrace = tracing.ClientCalls(tp, "redis")
	}
	cfg.delivery.Logger = log
	parts, err := setup.New(cfg.delivery)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	store, err := openStore(ctx, &cfg, log)
	if err != nil {
		return err
	}
	m := metrics.New()
	if traces.Enabled() {
		traceQuery = tracing.QueryObserver(tp, store.Dialect())
	}
	store.ObserveQueries(func(qctx context.Context, kind string, begin time.Time, failed bool) {
		m.ObserveQuery(kind, failed, time.Since(begin))
		traceQuery(qctx, kind, begin, failed)
	})
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()
	secret, err := jwtSecret(ctx, &cfg, store, log)
	if err != nil {
		return err
	}
	rt, err := openRealtime(ctx, cfg.redisURL, log, m, node, observe, redisTrace)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rt.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close broker: %w", cerr)
		}
	}()
	var verifierOpts []auth.VerifierOption
	if !cfg.admin {
		verifierOpts = append(verifierOpts, auth.WithoutAdmin())
	}
	verifier := auth.NewVerifier(secret, verifierOpts...)
	dq, err := openDelivery(ctx, parts, store, log)
	if err != nil {
		return err
	}
	mediaOpts := mediaOptions(&cfg, secret)
	rates := cfg.rates()
	opts := chat.Options{
		Limits: cfg.chatLimits, Logger: log, Broker: rt.broker, Hub: rt.hub, Presence: rt.presence, TypingTimeout: cfg.typingTimeout,
		Verifier: verifier, PushAlways: cfg.pushAlways, RateLimits: rates, Media: mediaOpts, ExpiryWarning: cfg.expiryWarning,
		SystemMessages: cfg.systemMessages,
	}
	if parts.PreSend != nil {
		opts.PreSend = parts.PreSend
	}
	if dq != nil {
		opts.Delivery = dq
	}
	svc := chat.New(store, opts)
	if dq != nil {
		if err := dq.start(ctx, svc); err != nil {
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
			defer cancel()
			if cerr := dq.stop(stopCtx); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		svc.SweepMediaEvery(sweepCtx, mediaSweepInterval)
	}()
	defer func() {
		stopSweep()
		<-sweepDone
	}()
	handler := server.NewHandler(server.Config{
		Chat: svc, Hub: rt.hub, Verifier: verifier, Logger: log,
		Limits: cfg.serverLimits, DisableIntrospection: !cfg.introspection,
		WebSocket: server.WebSocketOptions{
			AllowedOrigins: cfg.allowedOrigins, WriteTimeout: cfg.writeTimeout, InitTimeout: cfg.initTimeout,
		},
		CORSHeaders: cfg.corsHeaders, Realtime: svc,
		Readiness:      []server.ReadinessCheck{{Failure: "database schema behind", Check: schemaCurrent(store)}},
		RequestTimeout: cfg.requestTimeout,
		RateLimits:     rates,
		Metrics:        m, ServeMetrics: cfg.metricsAddr == "",
		Tracer: tp,
	})
	watchMetrics(m, handler, rt, dq)

	if cfg.pprofAddr != "" {
		stopPprof, err := startPprof(cfg.pprofAddr, log)
		if err != nil {
			return err
		}
		defer func() {
			if err := stopPprof(context.WithoutCancel(ctx)); err != nil {
				log.Warn("stop pprof", "err", err)
			}
		}()
	}

	if cfg.metricsAddr != "" {
		stopMetrics, err := startSideServer("metrics", cfg.metricsAddr, m.Handler(), log)
		if err != nil {
			return err
		}
		defer func() {
			if err := stopMetrics(context.WithoutCancel(ctx)); err != nil {
				log.Warn("stop metrics", "err", err)
			}
		}()
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Shutdown closes every WebSocket (1012) and ends every event stream
	// at once, so that they do not hold it up and clients reconnect.
	srv.RegisterOnShutdown(handler.BeginShutdown)
	broker := "memory"
	if cfg.redisURL != "" {
		broker = "redis"
	}
	log.Info("parley serving", "addr", ln.Addr().String(), "database", store.Dialect(), "broker", broker, "traces", traces.Enabled())

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("parley shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := handler.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("close realtime connections: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// watchMetrics makes m read the counts of the realtime transports, the hub,
// the broker and the delivery queue (nil when nothing is delivered) at
// every scrape.
func watchMetrics(m *metrics.Metrics, h *server.Handler, rt *realtime, dq *deliveryQueue) {
	src := metrics.Sources{
		Connections: func() (int, int, int64) {
			s := h.Stats()
			return s.WebSockets, s.EventStreams, s.ClosedSlow
		},
		Subscriptions: rt.hub.Subscriptions,
		Hub: func() (int64, int64, int64) {
			s := rt.hub.Stats()
			return s.Received, s.Executions, s.Delivered
		},
		BrokerReconnects: rt.reconnects,
	}
	if dq != nil {
		src.Queue = func(ctx context.Context) (metrics.QueueStats, error) {
			s, err := dq.Stats(ctx)
			return metrics.QueueStats{
				Available: s.Available, Scheduled: s.Scheduled, Running: s.Running,
				Attempts: s.Attempts, Sent: s.Sent, Failed: s.Failed, GivenUp: s.GivenUp,
			}, err
		}
	}
	m.Watch(src)
}
