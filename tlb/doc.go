// Package tlb models per-CPU TLBs, page-walk caches, Linux's TLB flush API
// and an mmu_gather, and audits cached translations against the page
// tables.
//
// The mechanism here is arch-neutral: set-associative TLBs tagged by ASID
// with deterministic LRU replacement, walk caches of intermediate tables,
// flush primitives that drop entries by address, by ASID or all. What a
// flush call costs and drops on a given machine is a Policy, supplied by
// the arch backend: x86 turns ranges above 33 pages into a full flush and
// sends IPIs to the mm's other CPUs; arm64 broadcasts TLBI in hardware;
// s390 purges at the entry exchange and makes flush_tlb_page a no-op;
// sparc64 batches addresses; UML resyncs the host address space.
//
// Flush calls count the kind the caller asked for (tlb_flush_range),
// once per call; how the arch carried it out shows in tlb_invalidated,
// tlb_ipis and the hardware events (invlpg, tlbi_ops...) that the cost
// table prices.
//
// The Validator reports every cached translation that the tables no longer
// give (another frame, fewer permissions, unmapped, a freed table in a walk
// cache), with the CPU, the address and what changed, and on arm64 every
// break-before-make violation.
//
// Constraints: deterministic (LRU by a per-CPU counter, no maps iterated,
// no clocks), no allocation on lookup or insert, flush-all in O(1) by
// generation. The model is driven from one goroutine.
package tlb
