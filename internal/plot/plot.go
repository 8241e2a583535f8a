// Package plot draws ptsim's figures with gonum.org/v1/plot: mremap's
// cost against region size for each path and arch, fork's time against
// folio size with and without batching, the page_fault3 bars of F8, and
// the hugetlb vmemmap optimisation's time against folio count with and
// without batching. `ptsim plot DIR` and `make docs` write them as SVG
// and PNG.
//
// Every figure comes from running the model with the arch's one cost
// table: Collect runs the workloads and returns the data, Render draws
// it. Nothing is hard-coded but the published figures the fidelity
// registry carries.
//
// Deterministic: the same data give the same SVG bytes (gonum's SVG
// writer prints coordinates to five significant digits, with named fonts
// and no timestamps). PNG is rasterised by the pure-Go renderer with the
// embedded Liberation fonts: byte-identical on one machine, but it may
// differ across CPU architectures or font-rasteriser releases, so only the
// SVGs are checked byte for byte.
package plot

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Series is one line of a figure.
type Series struct {
	// Name is the legend's label.
	Name string
	// X and Y are the points, in order.
	X, Y []float64
	// Style picks the colour (0..) and Dash (0: solid, 1..: dashed
	// patterns) of the line.
	Style, Dash int
}

// Bar is one bar of a bar figure, with the band it must land in.
type Bar struct {
	// Label names the bar on the X axis.
	Label string
	// Value is ptsim's figure; Published the published one (NaN when
	// none); Lo and Hi the band (equal when none).
	Value, Published, Lo, Hi float64
}

// Tick is one labelled mark on an axis.
type Tick struct {
	Value float64
	Label string
}

// Figure is one plot.
type Figure struct {
	// Name is the file name without extension ("mremap").
	Name string
	// Title, XLabel and YLabel label the plot.
	Title, XLabel, YLabel string
	// LogX and LogY select logarithmic axes.
	LogX, LogY bool
	// XTicks, when set, label the X axis at these values.
	XTicks []Tick
	// Lines are drawn for a line figure, Bars for a bar figure.
	Lines []Series
	Bars  []Bar
	// Caption says, under the plot in the docs, what to read in it.
	Caption string
}

// palette holds the line colours: the Okabe-Ito colour-blind safe set.
var palette = []color.RGBA{
	{0, 114, 178, 255}, {213, 94, 0, 255}, {0, 158, 115, 255}, {204, 121, 167, 255},
	{230, 159, 0, 255}, {86, 180, 233, 255}, {0, 0, 0, 255}, {240, 228, 66, 255},
}

// dashes are the line patterns.
var dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)}}

// build lays the figure out as a gonum plot.
func build(f *Figure) (*gplot.Plot, error) {
	p := gplot.New()
	p.Title.Text = f.Title
	p.X.Label.Text = f.XLabel
	p.Y.Label.Text = f.YLabel
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	if f.LogX {
		p.X.Scale = gplot.LogScale{}
		p.X.Tick.Marker = powerTicks{}
	}
	if f.LogY {
		p.Y.Scale = gplot.LogScale{}
		p.Y.Tick.Marker = powerTicks{}
	}
	if len(f.XTicks) > 0 {
		var ts gplot.ConstantTicks
		for _, t := range f.XTicks {
			ts = append(ts, gplot.Tick{Value: t.Value, Label: t.Label})
		}
		p.X.Tick.Marker = ts
	}
	for _, s := range f.Lines {
		if len(s.X) != len(s.Y) || len(s.X) == 0 {
			return nil, fmt.Errorf("plot %s: series %s has %d x and %d y", f.Name, s.Name, len(s.X), len(s.Y))
		}
		pts := make(plotter.XYs, len(s.X))
		for i := range s.X {
			pts[i].X, pts[i].Y = s.X[i], s.Y[i]
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %s: %w", f.Name, s.Name, err)
		}
		c := palette[s.Style%len(palette)]
		l.Color, sc.Color = c, c
		l.Width = vg.Points(1.5)
		l.Dashes = dashes[s.Dash%len(dashes)]
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(2)
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
	}
	if len(f.Bars) > 0 {
		if err := addBars(p, f); err != nil {
			return nil, err
		}
	}
	// Headroom above the data for the legend, which sits top left.
	if f.LogY {
		p.Y.Max *= math.Pow(p.Y.Max/p.Y.Min, 0.6)
	} else {
		p.Y.Min = min(p.Y.Min, 0)
		p.Y.Max += 0.45 * (p.Y.Max - p.Y.Min)
	}
	p.Legend.Padding = vg.Points(2)
	return p, nil
}

// addBars draws ptsim's values and the published ones side by side, with
// the band as a range on ptsim's bar.
func addBars(p *gplot.Plot, f *Figure) error {
	w := vg.Points(18)
	ours := make(plotter.Values, len(f.Bars))
	pub := make(plotter.Values, len(f.Bars))
	names := make([]string, len(f.Bars))
	hasPub := false
	for i, b := range f.Bars {
		ours[i], names[i] = b.Value, b.Label
		if !math.IsNaN(b.Published) {
			pub[i], hasPub = b.Published, true
		}
	}
	bo, err := plotter.NewBarChart(ours, w)
	if err != nil {
		return err
	}
	bo.Color, bo.LineStyle.Width = palette[0], 0
	if hasPub {
		bp, err := plotter.NewBarChart(pub, w)
		if err != nil {
			return err
		}
		bp.Color, bp.LineStyle.Width = palette[1], 0
		bo.Offset, bp.Offset = -w/2, w/2
		p.Add(bp)
		p.Legend.Add("published", bp)
	}
	p.Add(bo)
	p.Legend.Add("ptsim", bo)
	// The bands, as error bars on ptsim's bars.
	var band plotter.XYs
	var errs plotter.YErrors
	for i, b := range f.Bars {
		if b.Lo == b.Hi {
			continue
		}
		mid := (b.Lo + b.Hi) / 2
		band = append(band, plotter.XY{X: float64(i), Y: mid})
		errs = append(errs, struct{ Low, High float64 }{mid - b.Lo, b.Hi - mid})
	}
	if len(band) > 0 {
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{band, errs})
		if err != nil {
			return err
		}
		eb.LineStyle.Width = vg.Points(1.2)
		eb.CapWidth = vg.Points(10)
		// Centre the band on ptsim's bar.
		for i := range band {
			band[i].X -= 0.22
		}
		if !hasPub {
			for i := range band {
				band[i].X += 0.22
			}
		}
		p.Add(eb)
		p.Legend.Add("target band", &plotter.Line{LineStyle: eb.LineStyle})
	}
	p.NominalX(names...)
	return nil
}

// powerTicks marks a log axis at powers of two spelt as sizes or at
// powers of ten, whichever the range suits.
type powerTicks struct{}

// Ticks returns the ticks between min and max.
func (powerTicks) Ticks(min, max float64) []gplot.Tick {
	if !(min > 0) || !(max > min) || math.IsInf(max, 0) {
		return gplot.LogTicks{}.Ticks(min, max)
	}
	var ts []gplot.Tick
	for e := math.Floor(math.Log10(min)); math.Pow(10, e) <= max*1.0001 && len(ts) < 200; e++ {
		v := math.Pow(10, e)
		if v >= min*0.9999 {
			ts = append(ts, gplot.Tick{Value: v, Label: tickLabel(v)})
		}
		for k := 2.0; k < 10; k++ {
			if mv := k * v; mv >= min && mv <= max {
				t := gplot.Tick{Value: mv}
				if (k == 2 || k == 5) && max/min < 1000 {
					t.Label = tickLabel(mv) // few decades: label more
				}
				ts = append(ts, t)
			}
		}
	}
	if len(ts) < 2 {
		return gplot.LogTicks{}.Ticks(min, max)
	}
	return ts
}

// tickLabel spells a power of ten compactly.
func tickLabel(v float64) string {
	if v >= 1 && v < 1e6 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Size of every figure.
const (
	width  = 7 * vg.Inch
	height = 4.5 * vg.Inch
)

// SVG renders the figure as SVG.
func SVG(f *Figure) ([]byte, error) {
	p, err := build(f)
	if err != nil {
		return nil, err
	}
	c := vgsvg.New(width, height)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// PNG renders the figure as PNG at 96 dots per inch.
func PNG(f *Figure) ([]byte, error) {
	p, err := build(f)
	if err != nil {
		return nil, err
	}
	c := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Write renders figs into dir as NAME.svg and NAME.png and returns the
// paths written.
func Write(dir string, figs []*Figure) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range figs {
		svg, err := SVG(f)
		if err != nil {
			return out, err
		}
		png, err := PNG(f)
		if err != nil {
			return out, err
		}
		for _, w := range []struct {
			ext  string
			data []byte
		}{{".svg", svg}, {".png", png}} {
			path := filepath.Join(dir, f.Name+w.ext)
			if err := os.WriteFile(path, w.data, 0o644); err != nil {
				return out, err
			}
			out = append(out, path)
		}
	}
	return out, nil
}

// Names lists the figures Collect makes, in order.
func Names() []string { return []string{"mremap", "fork", "page-fault3", "hvo"} }

// Collect runs the workloads of the named figures (all of them when
// names is empty) and returns the figures.
func Collect(names ...string) ([]*Figure, error) {
	if len(names) == 0 {
		names = Names()
	}
	var out []*Figure
	for _, n := range names {
		var f *Figure
		var err error
		switch n {
		case "mremap":
			f, err = mremapFigure()
		case "fork":
			f, err = forkFigure()
		case "page-fault3":
			f, err = pf3Figure()
		case "hvo":
			f, err = hvoFigure()
		default:
			return nil, fmt.Errorf("no figure %q (figures: %s)", n, strings.Join(Names(), ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("figure %s: %w", n, err)
		}
		out = append(out, f)
	}
	return out, nil
}
