// Command parley-bench is a load generator for Parley. It speaks to a
// deployment the way real clients do (mutations over HTTP, subscriptions
// over WebSocket with graphql-transport-ws), seeds its own users and
// channels under a unique prefix, runs a bounded scenario and stops by
// itself.
//
//	parley-bench fanout    [flags]   delivery latency and loss at rising publish rates
//	parley-bench rawfanout [flags]   the same against a raw WebSocket server
//	parley-bench rawserver [flags]   serve that raw WebSocket server on its own
//	parley-bench idle      [flags]   memory per held connection
//	parley-bench write     [flags]   concurrent senders, then a gapless-index check
//	parley-bench history   [flags]   page query latency as a channel grows
//	parley-bench unread    [flags]   unreadSummary latency for a user in many channels
//	parley-bench hostile   [flags]   server CPU per hostile GraphQL document
//
// Run "parley-bench help" for the flags. Tokens are minted with
// PARLEY_JWT_SECRET (or --secret). Only loopback targets are allowed unless
// --allow-remote is given. The target must run with PARLEY_RATE_LIMITS=off:
// the scenarios send and connect faster than one user's rate limits allow
// (hostile, which sends queries only, is the exception).
package main

import (
	"context"
	"errors"
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
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		os.Exit(1)
	}
}

// errUsage marks errors in the command line.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// run is main without globals.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		_, err := fmt.Fprint(stderr, usage)
		if err != nil {
			return err
		}
		return usageErr("no scenario given")
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	case "fanout", "rawfanout", "idle", "write", "history", "hostile", "unread":
		return runScenario(ctx, name, args, getenv, stdout, stderr)
	case "rawserver":
		return runRawServer(ctx, args, stdout)
	case "pushsink":
		return runPushSink(ctx, args, stdout)
	default:
		return usageErr("unknown scenario %q (want fanout, rawfanout, idle, write, history, hostile, unread, rawserver or pushsink; see parley-bench help)", name)
	}
}

const usage = `usage: parley-bench <scenario> [flags]

Scenarios:
  fanout     R rooms × S subscribers (one user, one connection, one
             messageAdded subscription each); each room's owner publishes
             with sendMessage at each rate in turn. Per step: achieved
             rate, publish errors, delivered ÷ expected by message id
             (losses, duplicates), deliveries/s, end-to-end latency
             p50/p99/p99.9/max and mutation latency p50/p99.
  rawfanout  The same measurement against a minimal WebSocket fan-out
             server (no GraphQL, no database): --raw-url, or else one
             started in-process.
  rawserver  Serve that raw fan-out server on its own (--addr, default
             127.0.0.1:8090) until interrupted or --max-duration, so that
             it can be pinned to the core Parley would use; with
             --coalesce it writes everything queued for a socket in one
             write instead of one write per message.
  idle       Hold N authenticated connections with one subscription each;
             server RSS and threads per connection (--server-pid).
  write      W writers send as fast as they can; mutations/s, latency, then
             every channel's indexes are checked to be gapless. With --push
             every writer first registers a device (FCM and APNs in turn),
             so that each message is pushed to every other writer. With
             --client-ids every message has a clientMessageId (the
             idempotent send's lookup), with --mentions N it mentions the
             next N writers of its channel.
  pushsink   Serve a push service double (FCM and APNs, answering success)
             on --addr (default 127.0.0.1:8443) until interrupted or
             --max-duration, writing a CA and credentials into --dir and
             printing the settings that point Parley at it.
  unread     One reader in --channels channels, each with --unread messages
             from another user that the reader has not read; then
             unreadSummary as the reader, --concurrency at a time: latency
             p50/p99/max, and whether the totals are right.
  history    Bulk-insert a channel to each size through the database, then
             time the latest page and a deep page over the API. With
             --filter both pages ask messages(filter:), and the fill
             varies its messages: author i%3 (author 3 when i%100 == 50),
             LOCATION when i%100 == 77, MEDIA when i%10 == 3, else TEXT,
             a mention of the reader (author 0) when i%20 == 7.
  hostile    Send each denial-of-service document (fragments spreading each
             other twice, hundreds of conflicting fields, a fragment
             cycle), as found and ten times as large, and a valid document
             at the field limit; server CPU per request (--server-pid),
             status and code of each answer.

Common flags:
  --http URLS          GraphQL base URLs, comma-separated (default http://127.0.0.1:8080);
                       seeding, publishing and queries use the first
  --ws URLS            WebSocket URLs, comma-separated (default: from --http,
                       ws://host:port/graphql); subscribers spread round-robin
  --secret S           JWT secret (default $PARLEY_JWT_SECRET)
  --prefix P           prefix of the identities and uniqueNames the run creates
                       (default pb-<random>-)
  --json FILE          also write the result as JSON
  --plot FILE          fanout/rawfanout: draw latency and deliveries/s against the
                       offered rate, as SVG or (FILE.png) PNG
  --max-duration D     hard limit on the whole run (default 10m)
  --allow-remote       allow targets that are not this machine
  --dial-concurrency N WebSocket connections opened at once (default 64)
  --quiet              no progress line on stderr
  --cpuprofile FILE    write the tool's own CPU profile over the run, for
                       go tool pprof: is the tool what limits the figures?

fanout, rawfanout:
  --rooms N (1)  --subscribers N per room (100)  --rates LIST (10,50,100,200)
  --step-duration D (10s)  --drain D (3s)  --max-inflight N (64)
  --warmup-timeout D (30s)  --baseline (fanout: also run rawfanout and compare)
  --raw-url URL  a rawserver to use for rawfanout and --baseline (default:
                 one in-process, sharing this process's CPU)
rawserver:
  --addr HOST:PORT (127.0.0.1:8090)  --max-duration D (10m)  --coalesce
idle:
  --connections N (1000)  --rooms N (0: one per 100)  --duration D (30s)
  --server-pid PID  --pprof-url URL (a net/http/pprof base, if the server has one)
write:
  --writers N (8)  --channels N (1)  --duration D (10s)  --push
  --client-ids  --mentions N (0, at most 25)
unread:
  --channels N (1000)  --unread N (3) per channel  --queries N (500)
  --concurrency N (4)
pushsink:
  --addr HOST:PORT (127.0.0.1:8443)  --dir DIR  --max-duration D (10m)
hostile:
  --requests N (50) per document  --server-pid PID  --max-cpu D (10ms) per
  hostile document for the run to pass
history:
  --database-url URL (default $DATABASE_URL; sqlite path or postgres URL)
  --sizes LIST (10000,100000,1000000)  --queries N (200)  --batch N (1000)
  --page-size N (50)
  --filter F     comma-separated key=value, a key's values joined with '+':
                 types=TEXT+MEDIA+LOCATION, authors=0+1+2+3, hasMedia=BOOL,
                 mentionsMe=BOOL (e.g. --filter types=MEDIA or
                 --filter authors=3,mentionsMe=true)

The server must run with PARLEY_RATE_LIMITS=off (except for hostile): the
scenarios send and connect faster than one user's rate limits allow.

Exit status: 0 when the run passed its checks, 1 when it failed or a check
failed (loss, duplicate, gap, dead connection), 2 for a bad command line.
`
