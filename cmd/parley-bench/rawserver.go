package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/parleychat/parley/bench/rawserver"
)

// runRawServer serves the raw fan-out baseline until ctx ends or
// --max-duration passes, printing its URL first. Runs of rawfanout and
// fanout --baseline reach it with --raw-url.
func runRawServer(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rawserver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:8090", "")
	maxDuration := fs.Duration("max-duration", 10*time.Minute, "")
	coalesce := fs.Bool("coalesce", false, "")
	if err := fs.Parse(args); err != nil {
		return usageErr("rawserver: %v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("rawserver: unexpected argument %q", fs.Arg(0))
	}
	if *maxDuration <= 0 {
		return usageErr("--max-duration must be positive")
	}
	srv, err := rawserver.Start(*addr, rawserver.Options{Coalesce: *coalesce})
	if err != nil {
		return fmt.Errorf("rawserver: %w", err)
	}
	mode := "one write per frame"
	if *coalesce {
		mode = "one write per drained queue"
	}
	_, err = fmt.Fprintf(stdout, "rawserver serving on %s, %s (until interrupted or %v)\n", srv.URL, mode, *maxDuration)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, *maxDuration)
		<-ctx.Done()
		cancel()
	}
	return errors.Join(err, srv.Close())
}
