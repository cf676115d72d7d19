package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/parleychat/parley/auth"
)

// token prints a signed access token, with the same secret the server uses
// for the same environment and database.
func token(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	identity := fs.String("identity", "", "the user's identity (the token's sub claim); required")
	name := fs.String("name", "", "friendly name given to the user on first sight")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	var grants map[string]auth.Access
	fs.Func("channel", "limit the token to a channel: `ID-or-uniqueName=read|write` (repeatable; the channels claim)", func(v string) error {
		key, access, ok := strings.Cut(v, "=")
		if !ok || key == "" || (access != string(auth.Read) && access != string(auth.Write)) {
			return fmt.Errorf("want ID-or-uniqueName=read or =write, got %q", v)
		}
		if grants == nil {
			grants = map[string]auth.Access{}
		}
		grants[key] = auth.Access(access)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *identity == "" {
		return fmt.Errorf("token: --identity is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var secret []byte
	if getenv("PARLEY_JWT_SECRET") != "" {
		secret, err = jwtSecret(ctx, getenv, nil, log)
	} else {
		store, oerr := openStore(ctx, getenv, log)
		if oerr != nil {
			return oerr
		}
		defer func() {
			if cerr := store.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close database: %w", cerr)
			}
		}()
		secret, err = jwtSecret(ctx, getenv, store, log)
	}
	if err != nil {
		return err
	}
	tok, err := auth.MintWithGrants(secret, *identity, *name, grants, *ttl, time.Now())
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
