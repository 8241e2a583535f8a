package s390

import (
	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
)

// Costs is the s390x cost table. Figures are picoseconds per event, each
// with its source.
//
// No s390 figure for the model's primitives is published (IBM gives no
// per-instruction latency for IPTE, IDTE or CRDTE, and no one has
// published mremap, fork or fault tables for s390), so the table is
// derived from the x86 and arm64 tables by named rules, on an IBM z15
// (5.2 GHz):
//
//   - Work the x86 table prices as CPU cycles runs the same number of
//     cycles at 5.2 GHz instead of the Skylake-SP's 2.5 GHz: x86 figure x
//     2.5 / 5.2. (A z15 core retires at least as many instructions per
//     cycle as a Skylake core, so this is if anything slow.)
//   - Work the x86 table prices as a memory, interconnect or cold-cache
//     time keeps the x86 time: a clock rate does not shorten a DRAM
//     access or a line's trip between cores. These are listed in
//     s390Latency.
//   - Events the x86 table does not price take the arm64 figure's cycles
//     (at ~2 GHz) at 5.2 GHz.
//   - The s390 instructions, IPTE and IDTE, are estimated below.
var Costs = cost.MustTable("s390x", derive())

// s390Clock is the z15's clock in MHz; x86Clock and armClock are the
// clocks the x86 and arm64 tables assume.
const (
	s390Clock = 5200
	x86Clock  = 2500
	armClock  = 2000
)

// s390Latency are the x86 figures that are memory, interconnect or
// cold-cache times, kept as they are.
var s390Latency = map[cost.Event]bool{
	cost.LineTransfers: true, // core-to-core line transfer
	cost.TLBIPIs:       true, // IPI send and acknowledgement
	cost.IPIVMExits:    true, // VM exit per trapped IPI
	cost.PageZeroes:    true, // store bandwidth
	cost.PageCopies:    true, // memory bandwidth
	cost.MoveVMAs:      true, // cold-cache fixed path (DRAM lines)
	cost.UserMisses:    true, // a line from DRAM
}

// derive builds the table by the rules above.
func derive() map[cost.Event]cost.Figure {
	figs := map[cost.Event]cost.Figure{
		// IPTE invalidates one page-table entry and purges the TLB entries
		// that use it on every CPU of the configuration (a broadcast with
		// a quiesce, unless the local-clearing form is used for an mm
		// attached to this CPU alone). Estimate: as the x86 table's
		// shootdown of one page to one other CPU, an INVLPG (100 ns) and
		// one IPI round trip (146 ns), interconnect times the clock does
		// not shorten.
		cost.IPTEOps: {PS: 246_000, Source: "estimate (IBM publishes no IPTE latency): a broadcast invalidation of one entry, priced as the x86 table's one-page shootdown to one other CPU: INVLPG 100 ns + one IPI 146.2 ns"},
		// IDTE of a segment or region entry, or of a whole ASCE, purges
		// every TLB entry derived from it on every CPU: as the x86 table's
		// full flush (CR3 reload, 210 ns) plus one IPI round trip.
		cost.IDTEOps: {PS: 356_000, Source: "estimate (IBM publishes no IDTE latency): a broadcast purge of a table's or an address space's entries, priced as the x86 table's full flush (210 ns) + one IPI (146.2 ns)"},
	}
	cost.Rescale{From: x86.Costs, FromName: "x86", FromMHz: x86Clock, ToMHz: s390Clock, To: "a z15", Keep: s390Latency}.Fill(figs)
	cost.Rescale{From: arm64.Costs, FromName: "arm64", FromMHz: armClock, ToMHz: s390Clock, To: "a z15", Keep: s390Latency, Skip: armOnly}.Fill(figs)
	return figs
}

// armOnly are arm64 figures of arm64 hardware (TLBI, DSB, DVM
// reception) that s390 never counts.
var armOnly = map[cost.Event]bool{
	cost.TLBIOps:    true,
	cost.TLBSyncs:   true,
	cost.TLBIRemote: true,
}
