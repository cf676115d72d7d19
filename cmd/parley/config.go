package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/server"
)

// jwtSecretKey names the generated development secret in the database.
const jwtSecretKey = "jwt-hs256"

// minSecretBytes is the shortest PARLEY_JWT_SECRET accepted: HS256 wants a
// key at least as long as its 256-bit hash.
const minSecretBytes = 32

// openStore opens the database that DATABASE_URL names and prepares its
// schema (see prepareSchema).
func openStore(ctx context.Context, getenv func(string) string, log *slog.Logger) (*db.Store, error) {
	autoMigrate, err := envBool(getenv, "PARLEY_AUTO_MIGRATE", true)
	if err != nil {
		return nil, err
	}
	store, err := db.Open(ctx, getenv("DATABASE_URL"), log)
	if err != nil {
		return nil, err
	}
	if err := prepareSchema(ctx, store, autoMigrate, log); err != nil {
		return nil, errClose(err, store)
	}
	return store, nil
}

// jwtSecret returns PARLEY_JWT_SECRET, or the development secret kept in
// the database, generated on first use.
func jwtSecret(ctx context.Context, getenv func(string) string, store *db.Store, log *slog.Logger) ([]byte, error) {
	if s := getenv("PARLEY_JWT_SECRET"); s != "" {
		if len(s) < minSecretBytes {
			return nil, fmt.Errorf("PARLEY_JWT_SECRET is %d bytes; use at least %d random bytes", len(s), minSecretBytes)
		}
		return []byte(s), nil
	}
	secret, err := store.Secret(ctx, jwtSecretKey, auth.GenerateSecret)
	if err != nil {
		return nil, fmt.Errorf("development secret: %w", err)
	}
	log.Warn("PARLEY_JWT_SECRET is unset: running with a development secret kept in the database; set PARLEY_JWT_SECRET in production")
	return secret, nil
}

// envInt reads a positive integer variable; unset is 0 (the default).
func envInt(getenv func(string) string, name string) (int, error) {
	s := getenv(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive integer", name, s)
	}
	return n, nil
}

// envBool reads a boolean variable with a default.
func envBool(getenv func(string) string, name string, def bool) (bool, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, s)
	}
	return b, nil
}

// limits reads the configurable limits from the environment.
func limits(getenv func(string) string) (chat.Limits, server.Limits, error) {
	var c chat.Limits
	var s server.Limits
	var body int
	for _, v := range []struct {
		name string
		dst  *int
	}{
		{"PARLEY_MAX_MESSAGE_BYTES", &c.MaxBodyBytes},
		{"PARLEY_MAX_ATTRIBUTES_BYTES", &c.MaxAttributesBytes},
		{"PARLEY_MAX_PAGE_SIZE", &c.MaxPageSize},
		{"PARLEY_MAX_REQUEST_BYTES", &body},
		{"PARLEY_MAX_QUERY_TOKENS", &s.MaxTokens},
		{"PARLEY_MAX_QUERY_DEPTH", &s.MaxDepth},
		{"PARLEY_MAX_QUERY_ALIASES", &s.MaxAliases},
		{"PARLEY_MAX_QUERY_FIELDS", &s.MaxFields},
		{"PARLEY_MAX_QUERY_FRAGMENTS", &s.MaxFragments},
		{"PARLEY_MAX_QUERY_COMPLEXITY", &s.MaxComplexity},
	} {
		n, err := envInt(getenv, v.name)
		if err != nil {
			return c, s, err
		}
		*v.dst = n
	}
	s.MaxBodyBytes = int64(body)
	return c, s, nil
}

// logLevel reads PARLEY_LOG_LEVEL: debug, info (default), warn or error.
func logLevel(getenv func(string) string) (slog.Level, error) {
	var l slog.Level
	s := getenv("PARLEY_LOG_LEVEL")
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return l, fmt.Errorf("PARLEY_LOG_LEVEL=%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// errClose closes c after err and returns err, with any close error joined.
func errClose(err error, c interface{ Close() error }) error {
	if cerr := c.Close(); cerr != nil {
		return fmt.Errorf("%w (and closing: %v)", err, cerr)
	}
	return err
}
