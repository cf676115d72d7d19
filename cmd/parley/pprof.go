package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// startPprof serves Go's profiling endpoints under /debug/pprof/ on addr,
// a listener of their own so that they never share the public port. It is
// off unless PARLEY_PPROF_ADDR is set; bind it to loopback. The returned
// function stops it.
func startPprof(addr string, log *slog.Logger) (func(context.Context) error, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return startSideServer("pprof", addr, mux, log)
}

// startSideServer serves h on addr, a listener of its own beside the
// public one (profiling, metrics); name names it in logs and errors. The
// returned function stops it.
func startSideServer(name, addr string, h http.Handler, log *slog.Logger) (func(context.Context) error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error(name+" server stopped", "err", err)
		}
	}()
	log.Info(name+" serving", "addr", ln.Addr().String())
	return srv.Shutdown, nil
}
