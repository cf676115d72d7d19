// Package report presents parley-bench results: aligned text tables for
// people, JSON for machines, line plots as SVG or PNG (drawn by hand, with
// no dependency beyond the standard library), and a progress line for long
// steps.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Table is a titled grid of cells. The first column is left-aligned, the
// others (usually numbers) right-aligned.
type Table struct {
	Title   string
	Columns []string
	Rows    [][]string
	// Notes are printed under the table, one per line.
	Notes []string
}

// Write prints the table.
func (t Table) Write(w io.Writer) error {
	widths := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		widths[i] = utf8.RuneCountInString(c)
	}
	for _, r := range t.Rows {
		for i, c := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
	}
	var b strings.Builder
	if t.Title != "" {
		b.WriteString(t.Title)
		b.WriteByte('\n')
	}
	line := func(cells []string) {
		for i := range widths {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		b.WriteByte('\n')
	}
	line(t.Columns)
	total := 0
	for _, w := range widths {
		total += w
	}
	total += 2 * max(len(widths)-1, 0)
	b.WriteString(strings.Repeat("-", total))
	b.WriteByte('\n')
	for _, r := range t.Rows {
		line(r)
	}
	for _, n := range t.Notes {
		b.WriteString(n)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTables prints tables separated by blank lines.
func WriteTables(w io.Writer, tables []Table) error {
	for i, t := range tables {
		if i > 0 {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if err := t.Write(w); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes v, indented, to the file at path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	b = append(b, '\n')
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Duration formats d with three significant digits in a fitting unit:
// 812µs, 1.25ms, 3.40s.
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		return sig3(float64(d)/1e3) + "µs"
	case d < time.Second:
		return sig3(float64(d)/1e6) + "ms"
	default:
		return sig3(d.Seconds()) + "s"
	}
}

// sig3 formats v (≥ 1) with three significant digits.
func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// Int formats n with thousands separators: 1,234,567.
func Int(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Rate formats a per-second rate: 1 decimal under 100, none above.
func Rate(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return Int(int64(math.Round(v)))
}

// Percent formats a ratio as a percentage with up to three decimals:
// 1 → 100%, 0.99995 → 99.995%.
func Percent(ratio float64) string {
	if math.IsNaN(ratio) {
		return "-"
	}
	p := ratio * 100
	if p == 100 {
		return "100%"
	}
	// Never round a shortfall up to 100%.
	s := strconv.FormatFloat(math.Floor(p*1000)/1000, 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// Bytes formats a byte count in KiB, MiB or GiB.
func Bytes(n int64) string {
	f := float64(n)
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	switch {
	case f >= 1<<30:
		return sign + sig3(f/(1<<30)) + " GiB"
	case f >= 1<<20:
		return sign + sig3(f/(1<<20)) + " MiB"
	case f >= 1<<10:
		return sign + sig3(f/(1<<10)) + " KiB"
	default:
		return sign + strconv.FormatInt(int64(f), 10) + " B"
	}
}

// Progress writes a status line to a terminal (rewritten in place) or to a
// file or pipe (one line per update). A nil *Progress, or one made for a
// nil writer, does nothing. It is safe for concurrent use.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	dirty bool
}

// NewProgress returns a progress writer for w; nil w disables it.
func NewProgress(w io.Writer) *Progress {
	p := &Progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// Update shows line. Write errors are ignored: progress is best effort.
func (p *Progress) Update(line string) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		_, _ = fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.dirty = true
		return
	}
	_, _ = fmt.Fprintln(p.w, line)
}

// Done ends a line left open on a terminal.
func (p *Progress) Done() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		_, _ = fmt.Fprintln(p.w)
		p.dirty = false
	}
}
