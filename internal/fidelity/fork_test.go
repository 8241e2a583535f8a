package fidelity

import "testing"

// TestForkExperimentsInBand: F6 and F7 land in their bands.
func TestForkExperimentsInBand(t *testing.T) {
	for _, e := range forkExperiments() {
		t.Run(e.ID, func(t *testing.T) {
			r, err := e.Run()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range r.Measures {
				if !m.InBand() {
					t.Errorf("%s %s: %.3g%s outside [%g, %g]", e.ID, m.Name, m.Value, m.Unit, m.Band.Lo, m.Band.Hi)
				}
			}
			t.Logf("%s: %+v\n%s", e.ID, r.Measures, r.Note)
		})
	}
}
