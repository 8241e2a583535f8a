// Package pgtable models Linux's multi-level page tables: entries, tables,
// walkers, range iteration and the Linux-named primitives that change them.
//
// Constraints, in the manner of gVisor's pagetables package:
//   - Deterministic: no map iteration, no wall clock, no host state. Table
//     pages come from simulated physical memory (package phys) and have
//     PFNs; the same calls give the same tables and PFNs on every host.
//   - Arch-neutral: the package knows no architecture by name. An arch
//     supplies a Geometry (levels, shifts, entries per table) and a Format
//     (where each flag lives in an entry, what an empty entry is), and may
//     install ArchOps under the public PTE functions, the way arm64 manages
//     the contiguous bit under set_ptes.
//   - No allocation per entry operation: a table is one flat slice of
//     entries, allocated once.
//   - Accounted: every primitive counts an event on the page table's
//     cost.Meter (entry writes, table allocations and frees, reads by
//     kernel walks). Inspection helpers (Lookup, Leaves, WalkTrace) count
//     nothing: they are the debugger's view, not the kernel's work.
//
// Levels follow Linux: PGD, P4D, PUD, PMD, PTE. A level without a table of
// its own is folded: its entry is the entry of the table that holds the
// level below it, exactly as pud_offset returns the p4d pointer when the
// PUD is folded. A table is named by the lowest level whose entries it
// holds; on x86-64 with 4 levels the root table holds PGD and P4D entries
// and is a P4D table.
//
// Errors are the errno values re-exported here (EINVAL, ENOMEM, ...),
// wrapped with context; nothing in this package panics on bad input.
package pgtable
