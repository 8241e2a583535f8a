package mmu

import "fmt"

// SetCPUs changes the number of CPUs from now on, as a scenario script's
// `cpus N` does between commands. The TLB system is rebuilt with n CPUs,
// each TLB of entries entries in ways ways (0, 0: the tlb defaults, as
// Config.TLBEntries and TLBWays): every TLB and walk cache starts empty,
// as CPUs coming up cold, and no flush is counted. Every address space,
// init_mm first and then the user ones in creation order (so ASIDs are
// deterministic), gets a fresh TLB context, and the arch's PTE operations
// are rebuilt on it. Counters are kept.
//
// Precondition: no operation is in progress (no open mmu_gather, no
// lazy-MMU section), as between two script commands. It fails with EINVAL
// for n outside 1..MaxCPUs or a bad TLB shape, leaving the machine as it
// was. Cost: one context per address space; no simulated time.
func (m *Machine) SetCPUs(n, entries, ways int) error {
	if n < 1 || n > MaxCPUs {
		return fmt.Errorf("mmu: %d CPUs (1..%d): %w", n, MaxCPUs, EINVAL)
	}
	old, oldCPUs := m.tlb, m.cpus
	m.cpus = n
	if err := m.buildTLB(entries, ways); err != nil {
		m.tlb, m.cpus = old, oldCPUs
		return err
	}
	for _, mm := range append([]*MM{m.kernel}, m.mms...) {
		mm.tlb = m.tlb.NewContext(mm.name, mm.pt, &mm.meter, mm.kernel)
		if !mm.kernel && m.arch.NewPTEOps != nil {
			mm.pt.SetOps(m.arch.NewPTEOps(m.archEnv(mm)))
		}
	}
	return nil
}
