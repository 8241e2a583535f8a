package fidelity

import (
	"math"
	"strings"
	"testing"
)

func TestBand(t *testing.T) {
	tests := []struct {
		name     string
		band     Band
		unit     string
		text     string
		in, outs []float64
	}{
		{name: "closed", band: Band{15, 35}, unit: "x", text: "15x-35x", in: []float64{15, 20, 35}, outs: []float64{14.99, 35.01}},
		{name: "negative", band: Band{-90, -60}, unit: "%", text: "-90%..-60%", in: []float64{-90, -83.2, -60}, outs: []float64{-91, -59}},
		{name: "exact", band: Band{2, 2}, text: "= 2", in: []float64{2}, outs: []float64{1.99, 2.01}},
		{name: "open", band: AtLeast(1.3), unit: "x", text: "> 1.3x", in: []float64{1.31, 1e12, math.Inf(1)}, outs: []float64{1.3, 1, -5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.band.Text(tc.unit); got != tc.text {
				t.Errorf("Text = %q, want %q", got, tc.text)
			}
			for _, v := range tc.in {
				if !tc.band.Contains(v) {
					t.Errorf("%v not in %s", v, tc.text)
				}
			}
			for _, v := range tc.outs {
				if tc.band.Contains(v) {
					t.Errorf("%v in %s", v, tc.text)
				}
			}
		})
	}
}

func TestFormatNotesWraps(t *testing.T) {
	exps := []Experiment{{ID: "F1"}, {ID: "F2"}}
	note := strings.Repeat("word ", 40)
	out := FormatNotes(exps, []Result{{Note: note}, {}}, []error{nil, nil}, 50)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "F1   word") {
		t.Fatalf("notes:\n%s", out)
	}
	words := 0
	for i, l := range lines {
		if len(l) > 50 {
			t.Errorf("line %d is %d columns: %q", i, len(l), l)
		}
		if i > 0 && !strings.HasPrefix(l, "     word") {
			t.Errorf("line %d not indented under the ID: %q", i, l)
		}
		words += len(strings.Fields(l))
	}
	if words != 41 { // 40 words and the ID
		t.Errorf("%d words, want 41", words)
	}
}
