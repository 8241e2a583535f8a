package plot

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// figures returns small figures of every shape, for rendering tests.
func figures() []*Figure {
	return []*Figure{
		{Name: "lines", Title: "lines", XLabel: "x", YLabel: "y", LogX: true, LogY: true,
			XTicks: sizeTicks([]uint64{4 << 10, 64 << 10, 2 << 20}, 1<<10),
			Lines: []Series{
				{Name: "a", X: []float64{4, 64, 2048}, Y: []float64{10, 40, 900}},
				{Name: "b", X: []float64{4, 64, 2048}, Y: []float64{12, 13, 14}, Style: 1, Dash: 1},
			}},
		{Name: "linear", Title: "linear", Lines: []Series{{Name: "c", X: []float64{1, 2, 3}, Y: []float64{0, 1, 4}, Dash: 2}}},
		{Name: "bars", Title: "bars", Bars: []Bar{
			{Label: "base", Value: 1, Published: 1, Lo: 1, Hi: 1},
			{Label: "on", Value: 0.2, Published: 0.175, Lo: 0.08, Hi: 0.35},
			{Label: "no published", Value: 3, Published: math.NaN(), Lo: 2, Hi: 5},
		}},
	}
}

// TestSVGDeterministic renders every figure twice and compares the bytes,
// and checks what the SVG holds.
func TestSVGDeterministic(t *testing.T) {
	for _, f := range figures() {
		a, err := SVG(f)
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		b, err := SVG(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two renderings differ", f.Name)
		}
		s := string(a)
		if !strings.HasPrefix(s, "<?xml") || !strings.Contains(s, ">"+f.Title+"<") {
			t.Errorf("%s: not an SVG with its title:\n%.300s", f.Name, s)
		}
		for _, l := range f.Lines {
			if !strings.Contains(s, ">"+l.Name+"<") {
				t.Errorf("%s: legend lacks %s", f.Name, l.Name)
			}
		}
		for _, tk := range f.XTicks {
			if !strings.Contains(s, ">"+tk.Label+"<") {
				t.Errorf("%s: axis lacks tick %s", f.Name, tk.Label)
			}
		}
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	paths, err := Write(dir, figures())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 6 {
		t.Fatalf("wrote %v", paths)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Ext(p) == ".png" {
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if b := img.Bounds(); b.Dx() != 672 || b.Dy() != 432 { // 7 x 4.5 in at 96 dpi
				t.Errorf("%s: %v", p, b)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	if _, err := Collect("nope"); err == nil || !strings.Contains(err.Error(), `no figure "nope"`) {
		t.Errorf("Collect(nope): %v", err)
	}
	bad := &Figure{Name: "bad", Lines: []Series{{Name: "x", X: []float64{1}, Y: nil}}}
	if _, err := SVG(bad); err == nil {
		t.Error("a series with no y rendered")
	}
	if _, err := Write(filepath.Join(t.TempDir(), "f"), []*Figure{bad}); err == nil {
		t.Error("Write of a bad figure succeeded")
	}
}

func TestPublishedValue(t *testing.T) {
	for s, want := range map[string]float64{"16164943 / 92378735 = 0.175": 0.175, "28.97/4.12 s = 7.0x": 7.0} {
		if got := publishedValue(s); got != want {
			t.Errorf("publishedValue(%q) = %v, want %v", s, got, want)
		}
	}
	if !math.IsNaN(publishedValue("~19x")) {
		t.Error("no '=' should give NaN")
	}
}

// TestCollectRuns runs one real figure's workload (the cheapest) and
// checks its shape: every series has a point per size, every time is
// positive.
func TestCollectRuns(t *testing.T) {
	figs, err := Collect("hvo")
	if err != nil {
		t.Fatal(err)
	}
	f := figs[0]
	if len(f.Lines) != 6 {
		t.Fatalf("%d lines", len(f.Lines))
	}
	for _, l := range f.Lines {
		if len(l.X) != len(f.XTicks) {
			t.Errorf("%s: %d points", l.Name, len(l.X))
		}
		for i, y := range l.Y {
			if !(y > 0) {
				t.Errorf("%s: point %d is %v", l.Name, i, y)
			}
			if i > 0 && y <= l.Y[i-1] {
				t.Errorf("%s: time does not grow with N: %v", l.Name, l.Y)
			}
		}
	}
}
