package sparc

import (
	"testing"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
)

// TestCostRules: the sparc64 table prices what sparc64 counts, each
// figure by its rule: x86 cycles at 1.2 GHz, memory and interconnect
// times kept, the demap at INVLPG's cycles.
func TestCostRules(t *testing.T) {
	for _, e := range []cost.Event{cost.EntryReads, cost.PTESets, cost.PTEClears, cost.PTAllocs, cost.PTFrees,
		cost.Syscalls, cost.Faults, cost.VMAOps, cost.MoveVMAs, cost.TLBDemaps, cost.DcacheFlushes, cost.TLBIPIs, cost.LocalFullFlushes} {
		if f := Costs.Figure(e); f.PS == 0 || f.Source == "" {
			t.Errorf("%s unpriced: %+v", e, f)
		}
	}
	cases := []struct {
		e    cost.Event
		want uint64
	}{
		{cost.EntryReads, x86.Costs.Figure(cost.EntryReads).PS * 2500 / 1200},
		{cost.TLBDemaps, x86.Costs.Figure(cost.Invlpg).PS * 2500 / 1200},
		{cost.TLBIPIs, x86.Costs.Figure(cost.TLBIPIs).PS},
		{cost.MoveVMAs, x86.Costs.Figure(cost.MoveVMAs).PS},
	}
	for _, c := range cases {
		if got := Costs.Figure(c.e).PS; got != c.want {
			t.Errorf("%s = %d ps, want %d", c.e, got, c.want)
		}
	}
}
