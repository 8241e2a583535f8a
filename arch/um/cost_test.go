package um

import (
	"testing"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
)

// TestCostRules: the UML table prices the host's work as the x86 host
// does, and what goes through the host (a synced entry's host syscall, a
// fault or syscall stopped by ptrace) at the host's syscall, VMA and
// context-switch figures; a host syscall costs far more than the entry
// writes it follows.
func TestCostRules(t *testing.T) {
	x := x86.Costs
	cases := []struct {
		e    cost.Event
		want uint64
	}{
		{cost.EntryReads, x.Figure(cost.EntryReads).PS},
		{cost.PTEClears, x.Figure(cost.PTEClears).PS},
		{cost.HostSyscalls, x.Figure(cost.Syscalls).PS + x.Figure(cost.VMAOps).PS},
		{cost.Faults, x.Figure(cost.Faults).PS + 2*x.Figure(cost.ContextSwitches).PS},
		{cost.Syscalls, x.Figure(cost.Syscalls).PS + 2*x.Figure(cost.ContextSwitches).PS},
	}
	for _, c := range cases {
		if got := Costs.Figure(c.e); got.PS != c.want || got.Source == "" {
			t.Errorf("%s = %+v, want %d ps", c.e, got, c.want)
		}
	}
	if h, w := Costs.Figure(cost.HostSyscalls).PS, Costs.Figure(cost.PTESets).PS+Costs.Figure(cost.PTEClears).PS; h < 100*w {
		t.Errorf("a host syscall (%d ps) should dominate an entry move (%d ps)", h, w)
	}
}
