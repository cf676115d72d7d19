// Command parley is the Parley chat server.
//
//	parley [serve]                         serve HTTP on PARLEY_ADDR (default :8080)
//	parley token --identity alice [--ttl 24h] [--name "Alice"] [--channel general=write ...]
//	                                       print a signed access token
//	parley migrate up|down|status          apply, roll back or list schema migrations
//
// The environment configures it; see the README for every variable.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

// run is main without globals: it returns when ctx ends (serve) or the
// command is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr)
	case "token":
		return token(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

const usage = `usage:
  parley [serve]                                      serve GraphQL on PARLEY_ADDR (default :8080)
  parley token --identity ID [--ttl 24h] [--name N] [--channel KEY=read|write ...]
                                                      print a signed access token
  parley migrate up|down|status                       apply, roll back or list schema migrations
`
