package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/server"
)

// shutdownGrace is how long in-flight requests get to finish on shutdown.
const shutdownGrace = 15 * time.Second

// serve runs the HTTP server until ctx ends, then shuts down gracefully:
// stop accepting, finish in-flight requests, end WebSocket connections
// (their presence is recorded), then close the broker and the database.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) (err error) {
	if len(args) > 0 {
		return fmt.Errorf("serve takes no arguments; configure it with environment variables")
	}
	level, err := logLevel(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	chatLimits, serverLimits, err := limits(getenv)
	if err != nil {
		return err
	}
	introspection, err := envBool(getenv, "PARLEY_INTROSPECTION", true)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, getenv, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()
	secret, err := jwtSecret(ctx, getenv, store, log)
	if err != nil {
		return err
	}
	typingTimeout, err := envDuration(getenv, "PARLEY_TYPING_TIMEOUT")
	if err != nil {
		return err
	}
	rt, err := openRealtime(ctx, getenv, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rt.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close broker: %w", cerr)
		}
	}()
	verifier := auth.NewVerifier(secret)
	svc := chat.New(store, chat.Options{
		Limits: chatLimits, Logger: log, Broker: rt.broker, Presence: rt.presence, TypingTimeout: typingTimeout,
		Verifier: verifier,
	})
	handler := server.NewHandler(server.Config{
		Chat: svc, Verifier: verifier, Logger: log,
		Limits: serverLimits, DisableIntrospection: !introspection,
		WebSocket: server.WebSocketOptions{AllowedOrigins: allowedOrigins(getenv)}, Realtime: svc,
		Readiness: []server.ReadinessCheck{{Failure: "database schema behind", Check: schemaCurrent(store)}},
	})

	if pprofAddr := getenv("PARLEY_PPROF_ADDR"); pprofAddr != "" {
		stopPprof, err := startPprof(pprofAddr, log)
		if err != nil {
			return err
		}
		defer func() {
			if err := stopPprof(context.WithoutCancel(ctx)); err != nil {
				log.Warn("stop pprof", "err", err)
			}
		}()
	}

	addr := getenv("PARLEY_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	ln, err := net.Listen("tcp", addr)
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
	broker := "memory"
	if getenv("REDIS_URL") != "" {
		broker = "redis"
	}
	log.Info("parley serving", "addr", ln.Addr().String(), "database", store.Dialect(), "broker", broker)

	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("parley shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := handler.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("close websockets: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
