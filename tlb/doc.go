// Package tlb models per-CPU TLBs, page-walk caches, Linux's TLB flush API
// and an mmu_gather, and audits cached translations against the page
// tables.
//
// The mechanism here is arch-neutral. A System has CPUs; each CPU has a
// set-associative TLB shared by every page size (4K, 2M, 1G and arm64
// contiguous blocks live side by side; a lookup probes each size in use,
// smallest first) and a small walk cache of intermediate tables. Entries
// are tagged by the ASID of their Context (an mm: its page table, meter,
// mm_cpumask and tlb_gen); global entries match every ASID. Replacement
// is LRU by a per-CPU counter. Flushing everything, an ASID, the global
// entries or an ASID's walk cache bumps a generation: O(1), with per-ASID
// live counts so that tlb_invalidated stays exact.
//
// What a flush call costs and drops on a given machine is a Policy,
// supplied by the arch backend: x86 turns ranges above 33 pages into a
// full flush and sends IPIs to the mm's other CPUs; arm64 broadcasts TLBI
// in hardware; s390 purges at the entry exchange and makes
// flush_tlb_page a no-op; sparc64 batches addresses; UML resyncs the host
// address space. Policies are written with the CPU helpers DropVA,
// DropRange, DropOverlap, DropASID, DropAll and DropGlobal, which count
// tlb_invalidated, and optional hooks for entry writes, lazy-MMU
// sections, accesses and releases. GenericPolicy is a small configurable
// policy for tests and for arches without one.
//
// Flush calls count the kind the caller asked for (tlb_flush_range),
// once per call; how the arch carried it out shows in tlb_invalidated,
// tlb_ipis and the hardware events (invlpg, tlbi_ops...) that the cost
// table prices. Lookups count tlb_hits and tlb_misses, fills tlb_fills,
// all on the Context's meter; flush_tlb_all and flush_tlb_kernel_range
// count on the kernel meter.
//
// Trace conventions (cost.Record): a flush call's record has the range
// start as addr and its length as val (all ones for TLB_FLUSH_ALL); the
// per-CPU work of a flush (invlpg, local_full_flushes, tlb_invalidated,
// tlb_ipis, tlbi_ops...) has the CPU number as val (omitted, as every
// zero val is, for CPU 0); hits and fills have the address and the frame.
//
// Validate reports every cached translation that the tables no longer
// give (another frame, fewer permissions, a cleaned dirty bit, unmapped, a
// walk cache holding a freed, unlinked or replaced table), with the CPU,
// the address and what changed. Entries a CPU cannot reach without first
// dropping them (an x86 PCID slot behind its mm's tlb_gen) are skipped.
// Violations reports break-before-make violations (arm64) and plain
// stores over live entries (s390), when the policy checks them.
//
// Constraints: deterministic (LRU by a per-CPU counter, no maps iterated,
// no clocks), no allocation on lookup or insert, flush-all in O(1) by
// generation. The model is driven from one goroutine.
package tlb
