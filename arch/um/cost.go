package um

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
)

// Costs is the UML cost table, shared by "um" and "um32". Figures are
// picoseconds per event, each with its source.
//
// UML runs as ordinary processes on an x86-64 host; the model's host is
// the x86 table's 2.5 GHz Skylake-SP. The rules:
//
//   - Work UML's kernel does in its own address space (walking and
//     writing its page tables, locks, atomics, allocations, copies) runs
//     as host user code at the host's speed: the x86 figure as it is.
//   - Events the x86 table does not price take the arm64 figure's cycles
//     (at ~2 GHz) at the host's 2.5 GHz.
//   - What UML does through the host costs what the host's kernel takes
//     (figures below, from the x86 table): every synced page-table entry
//     is a host mmap, munmap or mprotect, and in ptrace (SKAS) mode every
//     fault and system call of a UML process stops it on the host and
//     wakes the UML kernel's tracing thread, and back. These dominate:
//     a page moved by mremap costs UML a host syscall (~1 us) where it
//     costs x86 a few nanoseconds of entry writes.
var Costs = cost.MustTable("um", derive())

// Clocks in MHz: the host's (the x86 table's) and the arm64 table's.
const (
	hostClock = 2500
	armClock  = 2000
)

// derive builds the table by the rules above.
func derive() map[cost.Event]cost.Figure {
	sys := x86.Costs.Figure(cost.Syscalls).PS
	vma := x86.Costs.Figure(cost.VMAOps).PS
	fault := x86.Costs.Figure(cost.Faults).PS
	cs := x86.Costs.Figure(cost.ContextSwitches).PS
	figs := map[cost.Event]cost.Figure{
		// A host mmap, munmap or mprotect of one page issued by the mm's
		// stub: the host's syscall entry and exit (the x86 table's 600
		// ns) and its VMA work on the host (one VMA operation, 380 ns:
		// a mapping inserted, split or removed).
		cost.HostSyscalls: {PS: sys + vma, Source: fmt.Sprintf("derived: a host mmap/munmap/mprotect = the x86 table's syscall entry/exit (%d ps) + one host VMA operation (%d ps)", sys, vma)},
		// A UML process's page fault: the host's trap (the x86 table's
		// fault, 600 ns) and, in ptrace mode, the SIGSEGV stop that wakes
		// the UML kernel's tracer and the resume: two host context
		// switches (1.2 us each, futex ping-pong measured by Eli
		// Bendersky).
		cost.Faults: {PS: fault + 2*cs, Source: fmt.Sprintf("derived: the host's fault trap (x86 faults, %d ps) + two host context switches for the ptrace stop and resume (x86 context_switches, %d ps each, Bendersky 2018)", fault, cs)},
		// A UML process's system call: the host's entry (600 ns) and the
		// PTRACE_SYSEMU stop and resume, two host context switches.
		// A user load or store whose line comes from the host's DRAM:
		// the ~90 ns local latency the x86 table's vma_ops uses.
		cost.UserMisses: {PS: 90_000, Source: "derived: the x86 host's local DRAM latency, ~90 ns (Skylake-SP, Intel MLC idle latency 80-90 ns, as the x86 table's vma_ops)"},
		cost.Syscalls:   {PS: sys + 2*cs, Source: fmt.Sprintf("derived: the host's syscall entry/exit (x86 syscalls, %d ps) + two host context switches for the PTRACE_SYSEMU stop and resume (x86 context_switches, %d ps each, Bendersky 2018)", sys, cs)},
	}
	cost.Rescale{From: x86.Costs, FromName: "x86", FromMHz: hostClock, ToMHz: hostClock, To: "UML on the x86 host"}.Fill(figs)
	cost.Rescale{From: arm64.Costs, FromName: "arm64", FromMHz: armClock, ToMHz: hostClock, To: "the host", Skip: armOnly}.Fill(figs)
	return figs
}

// armOnly are arm64 figures of arm64 hardware (TLBI, DSB, DVM
// reception) that UML never counts.
var armOnly = map[cost.Event]bool{
	cost.TLBIOps:    true,
	cost.TLBSyncs:   true,
	cost.TLBIRemote: true,
}
