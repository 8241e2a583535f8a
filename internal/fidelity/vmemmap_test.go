package fidelity

import (
	"math"
	"testing"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
)

// TestVmemmapExperimentsInBand: F10, F11 and F12 land in their bands.
func TestVmemmapExperimentsInBand(t *testing.T) {
	for _, e := range vmemmapExperiments() {
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

// TestHVORatiosIndependentOfN: scaling N down is sound. The HVO-off and
// unbatched flows cost the same per folio at any N; so does the batched
// flow once its one per-batch cost, two flush_tlb_all, is taken out: a
// constant whose share shrinks as 1/N (to nothing at the published N).
func TestHVORatiosIndependentOfN(t *testing.T) {
	for _, s := range []hvoShape{f10Shape, f11Shape} {
		const lo, hi = hvoFolios / 8, hvoFolios / 2
		small, err := hvoRun(s, lo)
		if err != nil {
			t.Fatal(err)
		}
		big, err := hvoRun(s, hi)
		if err != nil {
			t.Fatal(err)
		}
		// The batch's two flush_tlb_all: 2 x (cpus-1) IPIs and two
		// local full flushes, in ns.
		costs := x86.Costs
		ipi := costs.Figure(cost.TLBIPIs).PS
		if s.virt {
			ipi += costs.Figure(cost.IPIVMExits).PS
		}
		perBatch := float64(2*uint64(s.cpus-1)*ipi+2*costs.Figure(cost.LocalFullFlushes).PS) / 1000
		for i, name := range []string{"off", "unbatched", "batched"} {
			a := float64(small.alloc[i]) / lo
			b := float64(big.alloc[i]) / hi
			if i == 2 {
				a -= perBatch / lo
				b -= perBatch / hi
			}
			// Splits come one per 64 folios, rounded at the ends.
			tol := 0.005
			t.Logf("%d CPUs %s: %.1f ns per folio at N=%d, %.1f at N=%d", s.cpus, name, a, lo, b, hi)
			if math.Abs(a-b)/b > tol {
				t.Errorf("%d CPUs %s: %.1f ns per folio at N=%d, %.1f at N=%d", s.cpus, name, a, lo, b, hi)
			}
		}
	}
}
