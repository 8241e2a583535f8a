package x86

import "github.com/ptsim/ptsim/cost"

// Costs is the x86-64 cost table. Figures are picoseconds per event.
// Provisional: the mremap, fork and HVO calibrations refine it, keeping one
// table for every experiment.
var Costs = cost.MustTable("x86_64", map[cost.Event]cost.Figure{
	cost.Invlpg: {PS: 100_000, Source: "Documentation/arch/x86/tlb.rst: ~100 ns per INVLPG, the basis of the 33-page ceiling"},

	// Page-fault and locking figures (speculative faults, per-VMA locks;
	// F13, F14). A 2-socket Skylake-SP at ~2.5 GHz, as in the pft runs.
	//
	// Faults: trap, entry/exit and handle_mm_fault dispatch of one fault.
	// A minor read fault on fresh anonymous memory (zero page: no
	// allocation, no zeroing) measured 3,241 cycles median = ~1,013 ns
	// with rdtsc on Linux 6.6 (ddumbying.vercel.app, "Page fault
	// latency"); that fault also allocated a zeroed PTE table (~340 ns,
	// PageZeroes below) and walked and set entries, so the trap and
	// dispatch are ~1,013 - 340 - ~70 (allocation) = ~600 ns.
	cost.Faults: {PS: 600_000, Source: "derived: 1,013 ns rdtsc-measured zero-page fault (Linux 6.6) minus one zeroed table (340 ns) and one page allocation (70 ns)"},
	// PageZeroes: clear_page_erms (rep stosb) of 4 KiB at ~12 GB/s, the
	// single-core store bandwidth of Skylake-SP: 4096 B / 12 B/ns = 341 ns.
	cost.PageZeroes: {PS: 340_000, Source: "derived: 4 KiB / ~12 GB/s single-core rep stosb store bandwidth (Skylake-SP) = 341 ns"},
	// FolioAllocs: an order-0 allocation from the per-CPU lists; Jesper
	// Dangaard Brouer's page_bench01 (2016, Linux MM summit slides)
	// measured an order-0 alloc+free pair at ~250 cycles = ~100 ns at
	// 2.5 GHz; the allocation is ~70 ns of it.
	cost.FolioAllocs: {PS: 70_000, Source: "derived: page_bench01 order-0 alloc+free ~250 cycles (J. D. Brouer 2016) at 2.5 GHz, allocation ~70% of the pair"},
	// MmapLocks: an uncontended rwsem down + up: two LOCK XADD at ~18
	// cycles each (Agner Fog's instruction tables, Skylake) = 36 cycles
	// = ~14 ns at 2.5 GHz. Contention is priced by LineTransfers.
	cost.MmapLocks: {PS: 14_000, Source: "derived: 2 x LOCK XADD, ~18 cycles each on Skylake (Agner Fog, instruction tables) at 2.5 GHz"},
	// PTLocks: an uncontended spin_lock (LOCK CMPXCHG, ~18 cycles) and
	// its unlocking store: ~20 cycles = 8 ns.
	cost.PTLocks: {PS: 8_000, Source: "derived: LOCK CMPXCHG ~18 cycles on Skylake (Agner Fog) + unlock store, at 2.5 GHz"},
	// VMALocks: one per-VMA lock operation (down_read_trylock or
	// up_read): one LOCK CMPXCHG/XADD, ~18 cycles = 7 ns.
	cost.VMALocks: {PS: 7_000, Source: "derived: one locked RMW ~18 cycles on Skylake (Agner Fog) at 2.5 GHz"},
	// LineTransfers: moving a cache line another core wrote. Core-to-core
	// CAS ping-pong on 2-socket Skylake-SP (Xeon Platinum 81xx) measures
	// ~70 ns within a socket and ~130 ns across UPI (AnandTech and
	// Chips and Cheese core-to-core latency tests); a line bounced among
	// threads spread over both sockets crosses half the time:
	// (70 + 130) / 2 = 100 ns.
	cost.LineTransfers: {PS: 100_000, Source: "derived: Skylake-SP core-to-core latency ~70 ns in-socket, ~130 ns cross-socket (AnandTech / Chips and Cheese); (70+130)/2"},
	// SeqReads: a sequence-count read that hits L1 and its compare
	// (smp_rmb is a compiler barrier on x86): ~5 cycles = 2 ns.
	cost.SeqReads: {PS: 2_000, Source: "derived: L1 load-to-use 4-5 cycles on Skylake (Intel optimization manual) at 2.5 GHz"},
	// RCUReadSections: rcu_read_lock/unlock (preempt count inc/dec) or
	// local_irq_save/restore around a lockless walk: ~20 cycles = 8 ns.
	cost.RCUReadSections: {PS: 8_000, Source: "derived: pushf/cli/popf ~20 cycles on Skylake (Agner Fog) at 2.5 GHz"},
	// ContextSwitches: one switch of a CPU between threads; ~1.2 us per
	// switch measured with futex ping-pong between two threads (Eli
	// Bendersky, "Measuring context switching and memory overheads for
	// Linux threads", 2018). A sleeping lock waiter pays two.
	cost.ContextSwitches: {PS: 1_200_000, Source: "Eli Bendersky 2018, futex ping-pong between threads: ~1.2 us per context switch"},
})
