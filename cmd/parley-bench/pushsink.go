package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parleychat/parley/bench/pushsink"
)

// runPushSink serves a push service double until ctx ends or
// --max-duration passes, printing first the settings a Parley server
// needs to push to it, and at the end how many pushes it got.
func runPushSink(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pushsink", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:8443", "")
	dir := fs.String("dir", "", "")
	maxDuration := fs.Duration("max-duration", 10*time.Minute, "")
	if err := fs.Parse(args); err != nil {
		return usageErr("pushsink: %v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("pushsink: unexpected argument %q", fs.Arg(0))
	}
	if *dir == "" || *maxDuration <= 0 {
		return usageErr("pushsink needs --dir, and a positive --max-duration")
	}
	sink, err := pushsink.Start(*addr, *dir)
	if err != nil {
		return fmt.Errorf("pushsink: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "pushsink serving on %s (until interrupted or %v); start Parley with:\n%s\n", sink.URL, *maxDuration, strings.Join(sink.Env, " "))
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, *maxDuration)
		<-ctx.Done()
		cancel()
		_, err = fmt.Fprintf(stdout, "pushsink got %s\n", sink)
	}
	return errors.Join(err, sink.Close())
}
