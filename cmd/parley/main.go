// Command parley is the Parley chat server.
//
//	parley [serve] [flags]                 serve HTTP on PARLEY_ADDR (default :8080)
//	parley token --identity alice [--ttl 24h] [--name "Alice"] [--channel general=write ... | --admin]
//	                                       print a signed access token
//	parley migrate up|down|status          apply, roll back or list schema migrations
//	parley version                         print the version and commit
//	parley schema                          print the GraphQL schema (SDL) as clients see it
//
// Every setting is an environment variable and a flag; `parley serve
// --help` lists them, and the README describes them.
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/parleychat/parley/graph"
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
	// Plain `parley` serves, also with flags (`parley --addr :9000`);
	// `parley --help` is the overview and `parley serve --help` the list of
	// settings.
	cmd := "serve"
	switch {
	case len(args) > 0 && isHelp(args[0]):
		cmd = "help"
	case len(args) > 0 && args[0] == "--version":
		cmd = "version"
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "token":
		return token(ctx, args, getenv, stdout, stderr)
	case "migrate":
		return migrate(ctx, args, getenv, stdout, stderr)
	case "version":
		_, err := fmt.Fprintln(stdout, version())
		return err
	case "schema":
		if len(args) > 0 {
			return fmt.Errorf("schema takes no arguments")
		}
		_, err := io.WriteString(stdout, graph.PublicSDL())
		return err
	case "help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}

const usage = `usage:
  parley [serve] [flags]                              serve GraphQL on PARLEY_ADDR (default :8080)
  parley token --identity ID [--ttl 24h] [--name N] [--channel KEY=read|write ... | --admin]
                                                      print a signed access token
  parley migrate up|down|status                       apply, roll back or list schema migrations
  parley version                                      print the version and commit
  parley schema                                       print the GraphQL schema as clients see it (schema.graphql)
  parley help                                         print this

Every setting is an environment variable and a flag of parley serve; run
parley serve --help for the list, and parley COMMAND --help for a command's
flags.
`

// buildVersion and buildCommit are set with -ldflags -X by builds whose
// source has no version control information, such as the container image's
// (see the Dockerfile); debug.ReadBuildInfo's values win when present.
var buildVersion, buildCommit string

// version describes this binary from its build information: the module
// version, the commit and whether the tree had uncommitted changes, and the
// Go version and platform.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "parley (no build information) " + runtime.Version()
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	commit := cmp.Or(settings["vcs.revision"], buildCommit, "unknown")
	if t := settings["vcs.time"]; t != "" {
		commit += " " + t
	}
	if settings["vcs.modified"] == "true" {
		commit += " (modified)"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = cmp.Or(buildVersion, "(devel)")
	}
	return fmt.Sprintf("parley %s\ncommit %s\n%s %s/%s", v, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
