package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/config"
	"github.com/parleychat/parley/db"
)

// prepareSchema readies the database's schema for serving: with autoMigrate
// it applies the pending migrations; without, it only warns while some are
// pending (/readyz reports not ready until `parley migrate up` has run).
// Either way it refuses a schema newer than this binary knows.
func prepareSchema(ctx context.Context, store *db.Store, autoMigrate bool, log *slog.Logger) error {
	if autoMigrate {
		applied, err := store.MigrateUp(ctx)
		for _, m := range applied {
			log.InfoContext(ctx, "migration applied", "version", m.Version, "name", m.Name, "duration", m.Duration)
		}
		return err
	}
	v, err := store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if err := v.Compatible(); err != nil {
		return err
	}
	if v.Behind() {
		log.WarnContext(ctx, "database schema is behind and PARLEY_AUTO_MIGRATE is false: not ready until `parley migrate up` runs",
			"version", v.Current, "latest", v.Latest)
	}
	return nil
}

// schemaCurrent is the readiness condition that the database has every
// migration of this binary.
func schemaCurrent(store *db.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		v, err := store.SchemaVersion(ctx)
		if err != nil {
			return err
		}
		if v.Behind() {
			return fmt.Errorf("database schema at migration %d of %d", v.Current, v.Latest)
		}
		return nil
	}
}

// migrateUsage heads `parley migrate --help`; the flags follow.
const migrateUsage = `usage:
  parley migrate up [flags]                  apply every pending migration
  parley migrate down [--to VERSION] [flags] roll back the newest migration, or every one above VERSION
  parley migrate status [flags]              list the migrations and which ones the database has

Back the database up before rolling back: a migration's down step may drop
columns or tables, and rolling back migration 1 (--to 0) drops every table
Parley created.

`

// migrate runs `parley migrate up|down|status`.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	var cfg settingsConfig
	table := pick(settings(&cfg), "DATABASE_URL")
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	to := fs.Int64("to", -1, "down: roll back every migration above this `version`")
	help := func() error { return printUsage(stdout, migrateUsage, fs, table) }
	verb := ""
	if len(args) > 0 {
		verb, args = args[0], args[1:]
	}
	switch verb {
	case "up", "down", "status":
	case "help", "-h", "-help", "--help":
		return help()
	case "":
		return errors.New("migrate: want up, down or status; see parley migrate --help")
	default:
		return fmt.Errorf("migrate: unknown command %q; see parley migrate --help", verb)
	}
	if err := config.Load(fs, table, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return help()
		}
		return fmt.Errorf("migrate %s: %w", verb, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate %s: unexpected arguments %q", verb, fs.Args())
	}
	if *to != -1 && verb != "down" {
		return fmt.Errorf("migrate %s: --to is for down only", verb)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := db.Open(ctx, cfg.databaseURL, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()
	switch verb {
	case "up":
		applied, err := store.MigrateUp(ctx)
		if perr := printResults(stdout, "applied", applied); perr != nil && err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
	case "down":
		if err := migrateDown(ctx, store, *to, stdout); err != nil {
			return err
		}
	case "status":
		return printStatus(ctx, store, stdout)
	}
	return printVersion(ctx, store, stdout)
}

// migrateDown rolls back to version to, or by one migration when to is -1.
// Rolling back migration 1 needs an explicit --to 0.
func migrateDown(ctx context.Context, store *db.Store, to int64, stdout io.Writer) error {
	if to == -1 {
		status, err := store.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		var applied []int64
		for _, m := range status {
			if m.Applied() {
				applied = append(applied, m.Version)
			}
		}
		switch len(applied) {
		case 0:
			_, err := fmt.Fprintln(stdout, "no migration to roll back")
			return err
		case 1:
			return fmt.Errorf("migrate down: rolling back migration %d drops every table Parley created, with its rows; run `parley migrate down --to 0` to do that", applied[0])
		}
		to = applied[len(applied)-2]
	}
	rolledBack, err := store.MigrateDownTo(ctx, to)
	if perr := printResults(stdout, "rolled back", rolledBack); perr != nil && err == nil {
		err = perr
	}
	return err
}

// printResults prints one line per migration run.
func printResults(w io.Writer, verb string, results []db.MigrationResult) error {
	for _, r := range results {
		if _, err := fmt.Fprintf(w, "%s %s (%s)\n", verb, r.Name, r.Duration.Round(time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

// printVersion prints the database's migration against this binary's newest.
func printVersion(ctx context.Context, store *db.Store, w io.Writer) error {
	v, err := store.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "database at migration %d; this binary's newest is %d\n", v.Current, v.Latest)
	return err
}

// printStatus prints every migration with when it was applied.
func printStatus(ctx context.Context, store *db.Store, w io.Writer) error {
	status, err := store.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	for _, m := range status {
		at := "pending"
		if m.Applied() {
			at = m.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", m.Version, m.Name, at)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printVersion(ctx, store, w)
}
