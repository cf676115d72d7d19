package report

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	var b bytes.Buffer
	err := Table{
		Title:   "T",
		Columns: []string{"name", "value"},
		Rows:    [][]string{{"a", "1"}, {"longer", "12,345"}},
		Notes:   []string{"note"},
	}.Write(&b)
	if err != nil {
		t.Fatal(err)
	}
	want := "T\n" +
		"name     value\n" +
		"--------------\n" +
		"a            1\n" +
		"longer  12,345\n" +
		"note\n"
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFormats(t *testing.T) {
	cases := []struct{ got, want string }{
		{Duration(0), "0"},
		{Duration(512 * time.Nanosecond), "512ns"},
		{Duration(812 * time.Microsecond), "812µs"},
		{Duration(1250 * time.Microsecond), "1.25ms"},
		{Duration(34500 * time.Microsecond), "34.5ms"},
		{Duration(3400 * time.Millisecond), "3.40s"},
		{Int(0), "0"},
		{Int(999), "999"},
		{Int(1234567), "1,234,567"},
		{Int(-1234), "-1,234"},
		{Percent(1), "100%"},
		{Percent(0.99995), "99.995%"},
		{Percent(0.999999), "99.999%"},
		{Percent(0.5), "50%"},
		{Rate(12.34), "12.3"},
		{Rate(1234.4), "1,234"},
		{Bytes(512), "512 B"},
		{Bytes(3 << 20), "3.00 MiB"},
		{Bytes(-2048), "-2.00 KiB"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func samplePlot() Plot {
	return Plot{
		Title: "fanout µs", XLabel: "offered rate (msg/s)", YLabel: "latency (ms)", Y2Label: "deliveries/s",
		Series: []Series{
			{Name: "p50", Points: []Point{{10, 1.2}, {50, 1.5}, {100, 2.5}}},
			{Name: "p99", Points: []Point{{10, 3}, {50, 4}, {100, 9}}},
			{Name: "deliveries/s", Right: true, Dashed: true, Points: []Point{{10, 2000}, {50, 10000}, {100, 20000}}},
		},
	}
}

func TestSVG(t *testing.T) {
	var b bytes.Buffer
	if err := samplePlot().SVG(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if !strings.HasPrefix(s, "<svg") || strings.Count(s, "<polyline") != 3 || !strings.Contains(s, "stroke-dasharray") {
		t.Fatalf("unexpected SVG:\n%s", s)
	}
	if !strings.Contains(s, ">20k<") {
		t.Fatalf("right axis ticks missing:\n%s", s)
	}
}

func TestPNGAndWriteFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"p.png", "p.svg"} {
		path := filepath.Join(dir, name)
		if err := samplePlot().WriteFile(path); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".png") {
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
				t.Fatalf("PNG is %v", b)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEmptyPlotFails(t *testing.T) {
	if err := (Plot{Title: "x"}).SVG(&bytes.Buffer{}); err == nil {
		t.Fatal("empty plot drew")
	}
}

func TestNiceAxis(t *testing.T) {
	a := niceAxis(0, 87, true)
	if a.hi != 100 || a.ticks[0] != 0 || a.ticks[len(a.ticks)-1] != 100 {
		t.Fatalf("axis = %+v", a)
	}
	a = niceAxis(10, 200, false)
	if a.ticks[0] != 50 && a.ticks[0] != 20 && a.ticks[0] != 25 {
		// step is 50 for a 190 span over 6 ticks: ticks 50..200
		t.Fatalf("axis = %+v", a)
	}
}

func TestWriteJSONAndProgress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	if err := WriteJSON(path, map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]int
	if err := json.Unmarshal(raw, &m); err != nil || m["a"] != 1 {
		t.Fatalf("JSON %s: %v", raw, err)
	}
	var b bytes.Buffer
	p := NewProgress(&b)
	p.Update("one")
	p.Update("two")
	p.Done()
	if b.String() != "one\ntwo\n" {
		t.Fatalf("progress = %q", b.String())
	}
	var nilP *Progress
	nilP.Update("ignored")
	nilP.Done()
}
