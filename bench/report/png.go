package report

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strconv"
	"strings"
)

// PNG writes the plot as a PNG image, drawn pixel by pixel with a built-in
// 5×7 bitmap font (capital letters, digits and a little punctuation; other
// letters are shown in capitals).
func (p Plot) PNG(w io.Writer) error {
	l, err := p.layout()
	if err != nil {
		return err
	}
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	c := canvas{img}
	c.fill(color.RGBA{255, 255, 255, 255})
	black := color.RGBA{0, 0, 0, 255}
	grid := color.RGBA{229, 229, 229, 255}

	c.text(plotW/2, 20, p.Title, 2, black, alignCenter)
	for _, t := range l.x.ticks {
		x := int(math.Round(l.px(t)))
		c.line(float64(x), marginT, float64(x), marginT+innerH, 1, grid, false)
		c.text(x, marginT+innerH+8, tickLabel(t), 1, black, alignCenter)
	}
	for _, t := range l.y.ticks {
		y := int(math.Round(l.py(t, false)))
		c.line(marginL, float64(y), marginL+innerW, float64(y), 1, grid, false)
		c.text(marginL-6, y-3, tickLabel(t), 1, black, alignRight)
	}
	if l.hasY2 {
		for _, t := range l.y2.ticks {
			c.text(marginL+innerW+6, int(math.Round(l.py(t, true)))-3, tickLabel(t), 1, black, alignLeft)
		}
	}
	c.rect(marginL, marginT, marginL+innerW, marginT+innerH, black)
	c.text(marginL+innerW/2, plotH-28, p.XLabel, 1, black, alignCenter)
	c.vtext(20, marginT+innerH/2, p.YLabel, black)
	if l.hasY2 {
		c.vtext(plotW-28, marginT+innerH/2, p.Y2Label, black)
	}
	for i, s := range p.Series {
		col := parseColor(l.colors[i])
		for j := 1; j < len(s.Points); j++ {
			a, b := s.Points[j-1], s.Points[j]
			c.line(l.px(a.X), l.py(a.Y, s.Right), l.px(b.X), l.py(b.Y, s.Right), 2, col, s.Dashed)
		}
		for _, pt := range s.Points {
			c.dot(int(math.Round(l.px(pt.X))), int(math.Round(l.py(pt.Y, s.Right))), 3, col)
		}
	}
	for i, s := range p.Series {
		y := marginT + 16 + i*18
		col := parseColor(l.colors[i])
		c.line(marginL+12, float64(y), marginL+40, float64(y), 2, col, s.Dashed)
		name := s.Name
		if l.hasY2 {
			if s.Right {
				name += " (right)"
			} else {
				name += " (left)"
			}
		}
		c.text(marginL+46, y-3, name, 1, black, alignLeft)
	}
	if err := png.Encode(w, img); err != nil {
		return fmt.Errorf("encode PNG: %w", err)
	}
	return nil
}

type canvas struct{ img *image.RGBA }

func (c canvas) fill(col color.RGBA) {
	for i := 0; i < len(c.img.Pix); i += 4 {
		c.img.Pix[i], c.img.Pix[i+1], c.img.Pix[i+2], c.img.Pix[i+3] = col.R, col.G, col.B, col.A
	}
}

func (c canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

func (c canvas) rect(x0, y0, x1, y1 int, col color.RGBA) {
	for x := x0; x <= x1; x++ {
		c.set(x, y0, col)
		c.set(x, y1, col)
	}
	for y := y0; y <= y1; y++ {
		c.set(x0, y, col)
		c.set(x1, y, col)
	}
}

func (c canvas) dot(cx, cy, r int, col color.RGBA) {
	for y := -r; y <= r; y++ {
		for x := -r; x <= r; x++ {
			if x*x+y*y <= r*r {
				c.set(cx+x, cy+y, col)
			}
		}
	}
}

// line draws from (x0, y0) to (x1, y1), width pixels wide, by stepping
// along the longer axis; dashed lines alternate 8 pixels on, 5 off.
func (c canvas) line(x0, y0, x1, y1 float64, width int, col color.RGBA, dashed bool) {
	dx, dy := x1-x0, y1-y0
	steps := int(math.Ceil(math.Max(math.Abs(dx), math.Abs(dy))))
	if steps == 0 {
		steps = 1
	}
	seg := math.Hypot(dx, dy) / float64(steps)
	half := width / 2
	for i := 0; i <= steps; i++ {
		if dashed && int(float64(i)*seg)%13 >= 8 {
			continue
		}
		t := float64(i) / float64(steps)
		x, y := int(math.Round(x0+t*dx)), int(math.Round(y0+t*dy))
		for oy := -half; oy < width-half; oy++ {
			for ox := -half; ox < width-half; ox++ {
				c.set(x+ox, y+oy, col)
			}
		}
	}
}

type align int

const (
	alignLeft align = iota
	alignCenter
	alignRight
)

// text draws s with its top at y, scaled by scale, aligned on x.
func (c canvas) text(x, y int, s string, scale int, col color.RGBA, a align) {
	runes := upper(s)
	width := (len(runes)*6 - 1) * scale
	switch a {
	case alignCenter:
		x -= width / 2
	case alignRight:
		x -= width
	}
	for i, r := range runes {
		g := glyph(r)
		for row := range 7 {
			for colx := range 5 {
				if g[row][colx] != '#' {
					continue
				}
				for sy := range scale {
					for sx := range scale {
						c.set(x+(i*6+colx)*scale+sx, y+row*scale+sy, col)
					}
				}
			}
		}
	}
}

// vtext draws s rotated a quarter turn anticlockwise, centred on (x, y).
func (c canvas) vtext(x, y int, s string, col color.RGBA) {
	runes := upper(s)
	height := len(runes)*6 - 1
	y0 := y + height/2
	for i, r := range runes {
		g := glyph(r)
		for row := range 7 {
			for colx := range 5 {
				if g[row][colx] == '#' {
					c.set(x+row, y0-(i*6+colx), col)
				}
			}
		}
	}
}

// upper capitalises ASCII letters only (strings.ToUpper would turn µ into a
// Greek capital the font lacks).
func upper(s string) []rune {
	rs := []rune(s)
	for i, r := range rs {
		if r >= 'a' && r <= 'z' {
			rs[i] = r - 'a' + 'A'
		}
	}
	return rs
}

func parseColor(s string) color.RGBA {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	if err != nil || len(strings.TrimPrefix(s, "#")) != 6 {
		return color.RGBA{0, 0, 0, 255}
	}
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}

func glyph(r rune) [7]string {
	if g, ok := font[r]; ok {
		return g
	}
	return font['?']
}

// font is a 5×7 bitmap font; '#' marks a lit pixel.
var font = map[rune][7]string{
	' ': {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'/': {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'%': {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'+': {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'_': {".....", ".....", ".....", ".....", ".....", ".....", "#####"},
	'µ': {".....", "#...#", "#...#", "#...#", "##.##", "#.#..", "#...."},
	'×': {".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "....."},
	'÷': {".....", "..#..", ".....", "#####", ".....", "..#..", "....."},
	'?': {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
}
