// Package redistrace reports the commands a go-redis client sends, for
// tracing, through a go-redis hook. It is shared by the Redis broker and
// the Redis presence tracker, the only packages that talk to Redis.
package redistrace

import (
	"context"
	"errors"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Trace is called as a command starts, with the command's context and its
// name in lower case ("publish", "pipeline" for a pipeline or
// transaction; the commands that set up a new connection are left out);
// the function it returns is called when the command ends,
// with its error (nil for success, and for redis.Nil, an empty answer).
type Trace func(ctx context.Context, operation string) (end func(error))

// Hook returns a go-redis hook that calls trace around every command and
// pipeline; dialing is not reported. It is safe for concurrent use when
// trace is.
func Hook(trace Trace) goredis.Hook { return hook{trace} }

type hook struct{ trace Trace }

func (h hook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h hook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if setup(cmd) {
			return next(ctx, cmd)
		}
		end := h.trace(ctx, strings.ToLower(cmd.Name()))
		err := next(ctx, cmd)
		end(failure(err))
		return err
	}
}

func (h hook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if !slices.ContainsFunc(cmds, func(c goredis.Cmder) bool { return !setup(c) }) {
			return next(ctx, cmds)
		}
		end := h.trace(ctx, "pipeline")
		err := next(ctx, cmds)
		end(failure(err))
		return err
	}
}

// setup reports whether cmd sets up a new connection (go-redis sends
// those when it dials, inside whichever command needed the connection):
// they are not the caller's, and CLIENT SETINFO fails on older servers.
func setup(cmd goredis.Cmder) bool {
	switch strings.ToLower(cmd.Name()) {
	case "hello", "auth", "client", "select", "readonly":
		return true
	}
	return false
}

// failure is err unless it only says that a key or field was missing.
func failure(err error) error {
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	return err
}
