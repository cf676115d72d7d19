// Package config reads a command's settings from environment variables and
// command-line flags, declared once in a table of Settings. The same table
// gives the flags, the --help text and the configuration table of
// docs/configuration.md, so none of them is a hand-kept copy of another.
//
// Each Setting is an environment variable (PARLEY_ADDR) with a flag derived
// from its name (--addr), a default, a description and a parser that writes
// the value to its destination. A flag wins over the variable, which wins over
// the default; an empty variable counts as unset. Load parses every value
// before the command opens anything, and reports every invalid one, naming
// the variable or flag it came from.
//
// Settings and the functions here hold no global state; a table is built and
// used by one goroutine.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Setting is one configurable value. Build it with String, Int, Bool,
// Duration, List or Func.
type Setting struct {
	// Env is the environment variable, such as PARLEY_ADDR.
	Env string
	// Default is the value used when neither the flag nor the variable is
	// set; it is parsed like any other value. Empty means unset.
	Default string
	// Unset says what an unset value means, for help and the README, when
	// Default is empty, such as "SQLite file parley.db".
	Unset string
	// Description is one or more sentences for help and the README; it may
	// hold Markdown code spans and links.
	Description string
	// Redact keeps the value out of messages, for values that are or may
	// hold secrets.
	Redact bool
	// parse parses a value and stores it in the Setting's destination.
	parse func(string) error
	// boolean makes the flag a boolean one: --x means --x=true.
	boolean bool
}

// Flag is the flag of the Setting: Env without a PARLEY_ prefix, in lower
// case, with dashes for underscores (PARLEY_MAX_PAGE_SIZE: max-page-size,
// DATABASE_URL: database-url).
func (s Setting) Flag() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.Env, "PARLEY_")), "_", "-")
}

// Func is a Setting parsed by parse, which returns a message saying what is
// wanted when the value is invalid.
func Func(env, def, description string, parse func(string) error) Setting {
	return Setting{Env: env, Default: def, Description: description, parse: parse}
}

// String is a Setting stored as is in dst after check (nil accepts
// anything); an unset value stores "".
func String(dst *string, env, def, description string, check func(string) error) Setting {
	return Func(env, def, description, func(v string) error {
		if check != nil && v != "" {
			if err := check(v); err != nil {
				return err
			}
		}
		*dst = v
		return nil
	})
}

// Int is a positive integer Setting.
func Int[T ~int | ~int32 | ~int64](dst *T, env string, def T, description string) Setting {
	return Func(env, strconv.FormatInt(int64(def), 10), description, func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || int64(T(n)) != n {
			return errors.New("want a positive integer")
		}
		*dst = T(n)
		return nil
	})
}

// Bool is a boolean Setting: true or false (1/0 and t/f too, in any case).
// Its flag alone means true: --x, --x=false.
func Bool(dst *bool, env string, def bool, description string) Setting {
	s := Func(env, strconv.FormatBool(def), description, func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*dst = b
		return nil
	})
	s.boolean = true
	return s
}

// Duration is a positive Go duration Setting, such as 5s or 1m30s.
func Duration(dst *time.Duration, env string, def time.Duration, description string) Setting {
	return Func(env, def.String(), description, func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errors.New("want a positive duration such as 5s")
		}
		*dst = d
		return nil
	})
}

// List is a comma-separated Setting; blank items are dropped and each item
// is checked by check (nil accepts anything).
func List(dst *[]string, env, description string, check func(string) error) Setting {
	return Func(env, "", description, func(v string) error {
		var out []string
		for item := range strings.SplitSeq(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if check != nil {
				if err := check(item); err != nil {
					return fmt.Errorf("%q: %w", item, err)
				}
			}
			out = append(out, item)
		}
		*dst = out
		return nil
	})
}

// WithUnset returns s with Unset set.
func (s Setting) WithUnset(unset string) Setting {
	s.Unset = unset
	return s
}

// Redacted returns s with Redact set.
func (s Setting) Redacted() Setting {
	s.Redact = true
	return s
}

// Load registers a flag per Setting on fs, parses args and then every
// Setting's value: the flag's when given, else the variable's (getenv) when
// not empty, else the default. Unset values with no default are not parsed.
//
// It returns flag.ErrHelp when args ask for help (-h, --help), an error of
// fs for a bad flag, and otherwise every invalid value at once (errors.Join),
// each naming its variable or flag. fs's output is not used: print
// Usage yourself.
func Load(fs *flag.FlagSet, settings []Setting, args []string, getenv func(string) string) error {
	fs.SetOutput(io.Discard)
	given := map[string]string{}
	for _, s := range settings {
		record := func(v string) error {
			given[s.Env] = v
			return nil
		}
		if s.boolean {
			fs.BoolFunc(s.Flag(), s.Description, record)
		} else {
			fs.Func(s.Flag(), s.Description, record)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var errs []error
	for _, s := range settings {
		source, v := "", s.Default
		if fv, ok := given[s.Env]; ok {
			source, v = "--"+s.Flag(), fv
		} else if ev := getenv(s.Env); ev != "" {
			source, v = s.Env, ev
		}
		if v == "" {
			continue
		}
		if err := s.parse(v); err != nil {
			switch {
			case source == "":
				// A default that does not parse is a bug of the table.
				errs = append(errs, fmt.Errorf("%s: invalid default %q: %w", s.Env, v, err))
			case s.Redact:
				errs = append(errs, fmt.Errorf("invalid %s: %w", source, err))
			default:
				errs = append(errs, fmt.Errorf("invalid %s=%q: %w", source, v, err))
			}
		}
	}
	return errors.Join(errs...)
}

// DefaultText is how help and the README show a Setting's default.
func (s Setting) DefaultText() string {
	switch {
	case s.Default != "":
		return s.Default
	case s.Unset != "":
		return "unset: " + s.Unset
	}
	return "unset"
}

// Usage writes help for settings: per Setting its flag, variable, default
// and description, wrapped to fit 80 columns.
func Usage(w io.Writer, settings []Setting) error {
	var b strings.Builder
	for _, s := range settings {
		def := "default " + s.Default
		if s.Default == "" {
			def = s.DefaultText()
		}
		fmt.Fprintf(&b, "  --%s  (%s; %s)\n", s.Flag(), s.Env, def)
		for _, line := range wrap(plain(s.Description), 72) {
			fmt.Fprintf(&b, "        %s\n", line)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// MarkdownTable returns the README's configuration table for settings:
// variable, flag, default and description, one row each.
func MarkdownTable(settings []Setting) string {
	var b strings.Builder
	b.WriteString("| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n")
	for _, s := range settings {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = s.DefaultText()
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s |\n", s.Env, s.Flag(), def, strings.ReplaceAll(s.Description, "|", `\|`))
	}
	return b.String()
}

// plain removes Markdown links, keeping their text, for terminal help.
func plain(md string) string {
	var b strings.Builder
	for {
		open := strings.Index(md, "](")
		if open < 0 {
			break
		}
		end := strings.IndexByte(md[open:], ')')
		start := strings.LastIndexByte(md[:open], '[')
		if end < 0 || start < 0 {
			break
		}
		b.WriteString(md[:start])
		b.WriteString(md[start+1 : open])
		md = md[open+end+1:]
	}
	b.WriteString(md)
	return b.String()
}

// wrap breaks text into lines of at most width bytes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
