package sparc

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
)

// Costs is the sparc64 cost table. Figures are picoseconds per event,
// each with its source.
//
// No sparc64 figure for the model's primitives is published, so the table
// is derived from the x86 and arm64 tables by named rules, on a sun4u
// UltraSPARC III (Cheetah, 1.2 GHz), the machine whose D-cache aliasing
// the model's move_pte flush is about:
//
//   - Work the x86 table prices as CPU cycles runs the same number of
//     cycles at 1.2 GHz instead of 2.5 GHz: x86 figure x 2.5 / 1.2. (The
//     in-order UltraSPARC III retires fewer instructions per cycle than
//     a Skylake core, so these are lower bounds.)
//   - Work the x86 table prices as a memory, interconnect or cold-cache
//     time keeps the x86 time (sparcLatency); the UltraSPARC III's
//     memory is no faster, so these are lower bounds too.
//   - Events the x86 table does not price take the arm64 figure's cycles
//     (at ~2 GHz) at 1.2 GHz.
//   - The sun4u operations, a TLB demap and a D-cache page flush, are
//     derived below.
var Costs = cost.MustTable("sparc64", derive())

// Clocks in MHz: the UltraSPARC III's and those the x86 and arm64
// tables assume.
const (
	sparcClock = 1200
	x86Clock   = 2500
	armClock   = 2000
)

// sparcLatency are the x86 figures that are memory, interconnect or
// cold-cache times, kept as they are.
var sparcLatency = map[cost.Event]bool{
	cost.LineTransfers: true, // core-to-core line transfer
	cost.TLBIPIs:       true, // cross-call send and acknowledgement
	cost.IPIVMExits:    true, // VM exit per trapped IPI
	cost.PageZeroes:    true, // store bandwidth
	cost.PageCopies:    true, // memory bandwidth
	cost.MoveVMAs:      true, // cold-cache fixed path (DRAM lines)
	cost.UserMisses:    true, // a line from DRAM
}

// derive builds the table by the rules above.
func derive() map[cost.Event]cost.Figure {
	inv := x86.Costs.Figure(cost.Invlpg).PS
	figs := map[cost.Event]cost.Figure{
		// A demap of one address from the D-MMU and I-MMU (stxa to the
		// demap ASIs, membar #Sync, flush): as x86's INVLPG, the same
		// cycles at 1.2 GHz.
		cost.TLBDemaps: {PS: inv * x86Clock / sparcClock, Source: fmt.Sprintf("derived: the cycles of the x86 table's INVLPG (%d ps at 2.5 GHz, Documentation/arch/x86/tlb.rst) at 1.2 GHz for a D-MMU and I-MMU demap with its membar", inv)},
		// flush_dcache_page_all on Cheetah invalidates the page's lines
		// in the 64 KiB D-cache: 8 KiB / 32-byte lines = 256 stxa to
		// ASI_DCACHE_INVALIDATE (~2 cycles each) and a membar #Sync,
		// ~550 cycles at 1.2 GHz.
		cost.DcacheFlushes: {PS: 460_000, Source: "estimate: 256 D-cache line invalidations (8 KiB page, 32-byte lines of the UltraSPARC III's 64 KiB D-cache) at ~2 cycles and a membar #Sync, ~550 cycles at 1.2 GHz"},
	}
	cost.Rescale{From: x86.Costs, FromName: "x86", FromMHz: x86Clock, ToMHz: sparcClock, To: "the UltraSPARC III", Keep: sparcLatency}.Fill(figs)
	cost.Rescale{From: arm64.Costs, FromName: "arm64", FromMHz: armClock, ToMHz: sparcClock, To: "the UltraSPARC III", Keep: sparcLatency, Skip: armOnly}.Fill(figs)
	return figs
}

// armOnly are arm64 figures of arm64 hardware (TLBI, DSB, DVM
// reception) that sparc64 never counts.
var armOnly = map[cost.Event]bool{
	cost.TLBIOps:    true,
	cost.TLBSyncs:   true,
	cost.TLBIRemote: true,
}
