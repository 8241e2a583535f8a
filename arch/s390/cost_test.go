package s390

import (
	"testing"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
)

// TestCostRules: the s390x table prices what s390 counts, each figure by
// its rule: x86 cycles at 5.2 GHz, memory and interconnect times kept,
// IPTE and IDTE estimated.
func TestCostRules(t *testing.T) {
	for _, e := range []cost.Event{cost.EntryReads, cost.PTESets, cost.PTEClears, cost.PTAllocs, cost.PTFrees,
		cost.Syscalls, cost.Faults, cost.VMAOps, cost.MoveVMAs, cost.IPTEOps, cost.IDTEOps, cost.PageZeroes, cost.FolioAllocs} {
		if f := Costs.Figure(e); f.PS == 0 || f.Source == "" {
			t.Errorf("%s unpriced: %+v", e, f)
		}
	}
	cases := []struct {
		e    cost.Event
		want uint64
	}{
		{cost.EntryReads, x86.Costs.Figure(cost.EntryReads).PS * 2500 / 5200},
		{cost.Syscalls, x86.Costs.Figure(cost.Syscalls).PS * 2500 / 5200},
		{cost.LineTransfers, x86.Costs.Figure(cost.LineTransfers).PS},
		{cost.PageZeroes, x86.Costs.Figure(cost.PageZeroes).PS},
	}
	for _, c := range cases {
		if got := Costs.Figure(c.e).PS; got != c.want {
			t.Errorf("%s = %d ps, want %d", c.e, got, c.want)
		}
	}
}
