package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/config"
	"github.com/parleychat/parley/db"
)

// jwtSecretKey names the generated development secret in the database.
const jwtSecretKey = "jwt-hs256"

// minSecretBytes is the shortest PARLEY_JWT_SECRET accepted: HS256 wants a
// key at least as long as its 256-bit hash.
const minSecretBytes = 32

// openStore opens the database of cfg and prepares its schema (see
// prepareSchema).
func openStore(ctx context.Context, cfg *settingsConfig, log *slog.Logger) (*db.Store, error) {
	store, err := db.Open(ctx, cfg.databaseURL, log)
	if err != nil {
		return nil, err
	}
	if err := prepareSchema(ctx, store, cfg.autoMigrate, log); err != nil {
		return nil, errClose(err, store)
	}
	return store, nil
}

// jwtSecret returns the configured secret, or the development secret kept
// in the database, generated on first use.
func jwtSecret(ctx context.Context, cfg *settingsConfig, store *db.Store, log *slog.Logger) ([]byte, error) {
	if cfg.jwtSecret != "" {
		return []byte(cfg.jwtSecret), nil
	}
	secret, err := store.Secret(ctx, jwtSecretKey, auth.GenerateSecret)
	if err != nil {
		return nil, fmt.Errorf("development secret: %w", err)
	}
	log.Warn("PARLEY_JWT_SECRET is unset: running with a development secret kept in the database; set PARLEY_JWT_SECRET in production")
	return secret, nil
}

// printUsage writes head, the flags of fs that are not settings, then the
// settings.
func printUsage(w io.Writer, head string, fs *flag.FlagSet, settings []config.Setting) error {
	var b strings.Builder
	b.WriteString(head)
	isSetting := map[string]bool{}
	for _, s := range settings {
		isSetting[s.Flag()] = true
	}
	fs.VisitAll(func(f *flag.Flag) {
		if isSetting[f.Name] {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s %s\n        %s", f.Name, name, usage)
		if f.DefValue != "" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return config.Usage(w, settings)
}

// errClose closes c after err and returns err, with any close error joined.
func errClose(err error, c interface{ Close() error }) error {
	if cerr := c.Close(); cerr != nil {
		return fmt.Errorf("%w (and closing: %v)", err, cerr)
	}
	return err
}
