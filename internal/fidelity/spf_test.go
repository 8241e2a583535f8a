package fidelity

import (
	"math"
	"testing"
)

// TestF13InBand runs F13 and asserts every thread count lands in its
// band and that the ratio grows with threads, as the target asks.
func TestF13InBand(t *testing.T) {
	r, err := runF13()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Measures) != len(spfThreads) {
		t.Fatalf("%d measures for %d thread counts", len(r.Measures), len(spfThreads))
	}
	prev := 0.0
	for _, m := range r.Measures {
		if !m.InBand() {
			t.Errorf("%s = %.3g, band %v", m.Name, m.Value, m.Band)
		}
		if m.Value <= prev {
			t.Errorf("%s = %.3g does not grow (previous %.3g)", m.Name, m.Value, prev)
		}
		prev = m.Value
	}
}

// TestF14InBand runs F14 and asserts the share lands in its band, and
// that it falls as the shared working set's part of the faults grows
// (the mechanism the note gives).
func TestF14InBand(t *testing.T) {
	r, err := runF14()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Measures) != 1 || math.IsNaN(r.Measures[0].Value) || math.IsInf(r.Measures[0].Value, 0) {
		t.Fatalf("F14 measures %+v", r.Measures)
	}
	if m := r.Measures[0]; !m.InBand() {
		t.Errorf("%s = %.3g, band %v", m.Name, m.Value, m.Band)
	}
	none, _, _, err := launchShare(0)
	if err != nil {
		t.Fatal(err)
	}
	more, _, _, err := launchShare(2 * f14WorkingSet)
	if err != nil {
		t.Fatal(err)
	}
	if !(none > r.Measures[0].Value && r.Measures[0].Value > more) {
		t.Errorf("share with no / equal / double working set: %.3f, %.3f, %.3f; want it falling", none, r.Measures[0].Value, more)
	}
}
