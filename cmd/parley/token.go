package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/config"
)

// tokenUsage heads `parley token --help`; the flags follow.
const tokenUsage = `usage: parley token --identity ID [flags]

Prints an access token signed with the secret the server uses for the same
settings: PARLEY_JWT_SECRET, or else the development secret stored in the
database (which then must be the server's).

`

// token prints a signed access token, with the same secret the server uses
// for the same environment and database.
func token(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	var cfg settingsConfig
	table := pick(settings(&cfg), "DATABASE_URL", "PARLEY_JWT_SECRET", "PARLEY_AUTO_MIGRATE")
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	identity := fs.String("identity", "", "the user's identity (the token's sub claim); required")
	name := fs.String("name", "", "friendly name given to the user on first sight")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	admin := fs.Bool("admin", false, "an admin token, for the application's backend: it acts on any channel as its OWNER and may use the admin API (the admin claim)")
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
	if err := config.Load(fs, table, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return printUsage(stdout, tokenUsage, fs, table)
		}
		return fmt.Errorf("token: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments %q; see parley token --help", fs.Args())
	}
	if *identity == "" {
		return fmt.Errorf("token: --identity is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var secret []byte
	if cfg.jwtSecret != "" {
		secret, err = jwtSecret(ctx, &cfg, nil, log)
	} else {
		store, oerr := openStore(ctx, &cfg, log)
		if oerr != nil {
			return oerr
		}
		defer func() {
			if cerr := store.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close database: %w", cerr)
			}
		}()
		secret, err = jwtSecret(ctx, &cfg, store, log)
	}
	if err != nil {
		return err
	}
	if *admin && grants != nil {
		return fmt.Errorf("token: --admin and --channel do not go together: an admin token acts on every channel")
	}
	var tok string
	if *admin {
		tok, err = auth.MintAdmin(secret, *identity, *name, *ttl, time.Now())
	} else {
		tok, err = auth.MintWithGrants(secret, *identity, *name, grants, *ttl, time.Now())
	}
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
