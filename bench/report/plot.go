package report

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Point is one (x, y) value of a series.
type Point struct{ X, Y float64 }

// Series is one line of a plot.
type Series struct {
	Name   string
	Points []Point
	// Right puts the series on the right-hand axis.
	Right bool
	// Dashed draws a dashed line.
	Dashed bool
	// Color is "#rrggbb"; empty picks one from a palette.
	Color string
}

// Plot is a line chart with a shared x axis and up to two y axes, both
// starting at zero.
type Plot struct {
	Title   string
	XLabel  string
	YLabel  string // left axis
	Y2Label string // right axis, for series with Right set
	Series  []Series
}

// palette colours series without one.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"}

// Canvas size and margins, in pixels.
const (
	plotW, plotH                       = 960, 540
	marginL, marginR, marginT, marginB = 90, 90, 50, 70
	innerW, innerH                     = plotW - marginL - marginR, plotH - marginT - marginB
	tickTarget                         = 6
)

// axis maps data values to pixels.
type axis struct {
	lo, hi float64
	ticks  []float64
}

// layout is a plot with its axes computed.
type layout struct {
	p        Plot
	x, y, y2 axis
	hasY2    bool
	colors   []string
}

func (p Plot) layout() (layout, error) {
	l := layout{p: p}
	minX, maxX := math.Inf(1), math.Inf(-1)
	maxY, maxY2 := 0.0, 0.0
	n := 0
	for i, s := range p.Series {
		c := s.Color
		if c == "" {
			c = palette[i%len(palette)]
		}
		l.colors = append(l.colors, c)
		for _, pt := range s.Points {
			if math.IsNaN(pt.X) || math.IsNaN(pt.Y) || math.IsInf(pt.X, 0) || math.IsInf(pt.Y, 0) {
				return l, fmt.Errorf("plot %q: series %q has a non-finite point", p.Title, s.Name)
			}
			n++
			minX, maxX = math.Min(minX, pt.X), math.Max(maxX, pt.X)
			if s.Right {
				l.hasY2 = true
				maxY2 = math.Max(maxY2, pt.Y)
			} else {
				maxY = math.Max(maxY, pt.Y)
			}
		}
	}
	if n == 0 {
		return l, fmt.Errorf("plot %q has no points", p.Title)
	}
	if minX >= 0 {
		// Rates and sizes read best from zero.
		minX = 0
	}
	if minX == maxX {
		maxX = minX + 1
	}
	l.x = niceAxis(minX, maxX, minX == 0)
	l.y = niceAxis(0, maxY, true)
	l.y2 = niceAxis(0, maxY2, true)
	return l, nil
}

// niceAxis covers [lo, hi] with round tick steps (1, 2 or 5 × 10ⁿ). With
// fromZero the axis starts at lo and ends at a tick at or above hi.
func niceAxis(lo, hi float64, fromZero bool) axis {
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / tickTarget)
	a := axis{lo: lo, hi: hi}
	if fromZero {
		a.hi = math.Ceil(hi/step-1e-9) * step
	}
	for v := math.Ceil(a.lo/step-1e-9) * step; v <= a.hi+step*1e-9; v += step {
		a.ticks = append(a.ticks, v)
	}
	return a
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		return mag
	case f <= 2:
		return 2 * mag
	case f <= 5:
		return 5 * mag
	default:
		return 10 * mag
	}
}

func (a axis) frac(v float64) float64 { return (v - a.lo) / (a.hi - a.lo) }

func (l layout) px(x float64) float64 { return marginL + l.x.frac(x)*innerW }
func (l layout) py(y float64, right bool) float64 {
	a := l.y
	if right {
		a = l.y2
	}
	return marginT + (1-a.frac(y))*innerH
}

// tickLabel formats an axis value compactly: 0, 0.5, 50, 1.5k, 2M.
func tickLabel(v float64) string {
	av := math.Abs(v)
	switch {
	case av >= 1e6:
		return trimFloat(v/1e6) + "M"
	case av >= 1e4:
		return trimFloat(v/1e3) + "k"
	default:
		return trimFloat(v)
	}
}

func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// SVG writes the plot as an SVG document.
func (p Plot) SVG(w io.Writer) error {
	l, err := p.layout()
	if err != nil {
		return err
	}
	var b strings.Builder
	f := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", plotW, plotH, plotW, plotH)
	f(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	f(`<text x="%d" y="28" text-anchor="middle" font-size="16" font-weight="bold">%s</text>`+"\n", plotW/2, html.EscapeString(p.Title))
	// Grid and ticks.
	for _, t := range l.x.ticks {
		x := l.px(t)
		f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e5e5e5"/>`+"\n", x, marginT, x, marginT+innerH)
		f(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, marginT+innerH+18, tickLabel(t))
	}
	for _, t := range l.y.ticks {
		y := l.py(t, false)
		f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`+"\n", marginL, y, marginL+innerW, y)
		f(`<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", marginL-6, y, tickLabel(t))
	}
	if l.hasY2 {
		for _, t := range l.y2.ticks {
			f(`<text x="%d" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", marginL+innerW+6, l.py(t, true), tickLabel(t))
		}
	}
	// Axes.
	f(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>`+"\n", marginL, marginT, innerW, innerH)
	f(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", marginL+innerW/2, plotH-22, html.EscapeString(p.XLabel))
	f(`<text transform="translate(24,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", marginT+innerH/2, html.EscapeString(p.YLabel))
	if l.hasY2 {
		f(`<text transform="translate(%d,%d) rotate(90)" text-anchor="middle">%s</text>`+"\n", plotW-24, marginT+innerH/2, html.EscapeString(p.Y2Label))
	}
	// Series.
	for i, s := range p.Series {
		c := l.colors[i]
		var pts []string
		for _, pt := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", l.px(pt.X), l.py(pt.Y, s.Right)))
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="8 5"`
		}
		f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), c, dash)
		for _, pt := range s.Points {
			f(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", l.px(pt.X), l.py(pt.Y, s.Right), c)
		}
	}
	// Legend.
	for i, s := range p.Series {
		y := marginT + 16 + i*18
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="8 5"`
		}
		name := s.Name
		if l.hasY2 {
			if s.Right {
				name += " (right)"
			} else {
				name += " (left)"
			}
		}
		f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", marginL+12, y, marginL+40, y, l.colors[i], dash)
		f(`<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", marginL+46, y, html.EscapeString(name))
	}
	f("</svg>\n")
	_, err = io.WriteString(w, b.String())
	return err
}

// WriteFile writes the plot to path as PNG when path ends in .png and as
// SVG otherwise.
func (p Plot) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if strings.EqualFold(filepath.Ext(path), ".png") {
		err = p.PNG(f)
	} else {
		err = p.SVG(f)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
