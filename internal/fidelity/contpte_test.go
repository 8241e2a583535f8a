package fidelity

import (
	"math"
	"testing"
)

// TestF8InBand runs F8 and asserts each ratio lands in its band, in the
// order the published figures have them: contpte on far below large
// folios off, contpte off a little below, whole-folio mapping above.
func TestF8InBand(t *testing.T) {
	r, err := runF8()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Measures) != 3 {
		t.Fatalf("F8 has %d measures, want 3", len(r.Measures))
	}
	for _, m := range r.Measures {
		if !m.InBand() || math.IsNaN(m.Value) {
			t.Errorf("F8 %s = %.3g, band %v", m.Name, m.Value, m.Band)
		}
	}
	on, off, whole := r.Measures[0].Value, r.Measures[1].Value, r.Measures[2].Value
	if !(on < off && off < 1 && 1 < whole) {
		t.Errorf("F8 order: contpte on %.3g, off %.3g, whole folio %.3g; want on < off < 1 < whole", on, off, whole)
	}
}

// TestF9InBand runs F9 and asserts the convert's cost falls by as much as
// the published figure says, and that the experiment is deterministic.
func TestF9InBand(t *testing.T) {
	a, err := runF9()
	if err != nil {
		t.Fatal(err)
	}
	b, err := runF9()
	if err != nil {
		t.Fatal(err)
	}
	if a.Measures[0].Value != b.Measures[0].Value || a.Note != b.Note {
		t.Fatalf("F9 not deterministic: %v vs %v", a.Measures[0].Value, b.Measures[0].Value)
	}
	if m := a.Measures[0]; !m.InBand() {
		t.Errorf("F9 %s = %.3g, band %v", m.Name, m.Value, m.Band)
	}
}
