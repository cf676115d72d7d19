package config_test

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/config"
)

type values struct {
	addr   string
	n      int
	small  int32
	on     bool
	wait   time.Duration
	list   []string
	secret string
	url    string
}

func table(v *values) []config.Setting {
	return []config.Setting{
		config.String(&v.addr, "PARLEY_ADDR", ":8080", "Where to listen.", nil),
		config.Int(&v.n, "PARLEY_MAX_THINGS", 10, "Most things."),
		config.Int(&v.small, "PARLEY_SMALL", 1, "A small number."),
		config.Bool(&v.on, "PARLEY_ON", true, "Whether it is on."),
		config.Duration(&v.wait, "PARLEY_WAIT", 5*time.Second, "How long."),
		config.List(&v.list, "PARLEY_LIST", "Items, [see](#list).", func(s string) error {
			if s == "bad" {
				return errors.New("not that")
			}
			return nil
		}).WithUnset("none"),
		config.String(&v.secret, "PARLEY_SECRET", "", "A secret.", func(s string) error {
			if len(s) < 4 {
				return errors.New("too short")
			}
			return nil
		}).Redacted(),
		config.String(&v.url, "DATABASE_URL", "", "A URL.", nil),
	}
}

func load(t *testing.T, args []string, env map[string]string) (values, error) {
	t.Helper()
	var v values
	err := config.Load(flag.NewFlagSet("test", flag.ContinueOnError), table(&v), args, func(k string) string { return env[k] })
	return v, err
}

func TestFlagNames(t *testing.T) {
	for env, want := range map[string]string{
		"PARLEY_ADDR": "addr", "PARLEY_MAX_PAGE_SIZE": "max-page-size", "DATABASE_URL": "database-url", "REDIS_URL": "redis-url",
	} {
		if got := (config.Setting{Env: env}).Flag(); got != want {
			t.Errorf("%s: flag %q, want %q", env, got, want)
		}
	}
}

// TestLoadPrecedence: a flag wins over its variable, which wins over the
// default; an empty variable is unset.
func TestLoadPrecedence(t *testing.T) {
	v, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.addr != ":8080" || v.n != 10 || !v.on || v.wait != 5*time.Second || v.list != nil || v.secret != "" {
		t.Errorf("defaults: %+v", v)
	}
	env := map[string]string{"PARLEY_ADDR": ":9000", "PARLEY_MAX_THINGS": "20", "PARLEY_ON": "false", "PARLEY_LIST": " a, ,b ", "PARLEY_WAIT": ""}
	v, err = load(t, nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if v.addr != ":9000" || v.n != 20 || v.on || v.wait != 5*time.Second || strings.Join(v.list, "|") != "a|b" {
		t.Errorf("from the environment: %+v", v)
	}
	v, err = load(t, []string{"--addr", ":7000", "--max-things=30", "--on", "--wait=1m", "rest"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if v.addr != ":7000" || v.n != 30 || !v.on || v.wait != time.Minute {
		t.Errorf("from flags: %+v", v)
	}
}

// TestLoadErrors: every invalid value at once, each naming its source;
// redacted values are not repeated.
func TestLoadErrors(t *testing.T) {
	_, err := load(t, []string{"--max-things=0", "--on=perhaps"}, map[string]string{
		"PARLEY_SMALL": "4294967296", "PARLEY_WAIT": "-1s", "PARLEY_LIST": "ok,bad", "PARLEY_SECRET": "abc",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`invalid --max-things="0": want a positive integer`,
		`invalid --on="perhaps": want true or false`,
		`invalid PARLEY_SMALL="4294967296": want a positive integer`,
		`invalid PARLEY_WAIT="-1s": want a positive duration such as 5s`,
		`invalid PARLEY_LIST="ok,bad": "bad": not that`,
		`invalid PARLEY_SECRET: too short`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "abc") {
		t.Errorf("error repeats a redacted value:\n%v", err)
	}
	if _, err := load(t, []string{"-h"}, nil); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	if _, err := load(t, []string{"--nope"}, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown flag: %v", err)
	}
	bad := []config.Setting{config.Func("PARLEY_X", "zero", "X.", func(string) error { return errors.New("no") })}
	err = config.Load(flag.NewFlagSet("t", flag.ContinueOnError), bad, nil, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), `PARLEY_X: invalid default "zero"`) {
		t.Errorf("bad default: %v", err)
	}
}

func TestUsageAndMarkdown(t *testing.T) {
	var v values
	var b strings.Builder
	if err := config.Usage(&b, table(&v)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  --addr  (PARLEY_ADDR; default :8080)\n        Where to listen.\n",
		"  --list  (PARLEY_LIST; unset: none)\n        Items, see.\n",
		"  --secret  (PARLEY_SECRET; unset)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
	md := config.MarkdownTable(table(&v))
	for _, want := range []string{
		"| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n",
		"| `PARLEY_ADDR` | `--addr` | `:8080` | Where to listen. |\n",
		"| `PARLEY_LIST` | `--list` | unset: none | Items, [see](#list). |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}
