package arm64

import "github.com/ptsim/ptsim/cost"

// Costs is the arm64 cost table, shared by the three granules. Figures are
// picoseconds per event, each with its source.
//
// The machine is an Android-era arm64 phone (Cortex-A7x big cores at
// ~2 GHz, LPDDR4), the kind the published arm64 mremap figures came from
// (Joel Fernandes 2018; Kalesh Singh 2020, Linux 5.4). Two figures are
// fitted to the mremap tables (specs/mremap.md): TLBIOps to the seed's
// per-page flushes (F5, before) and MoveVMAs to the PMD/PUD ratio (F4);
// the rest are estimates from the architecture, and F3, F4's per-PTE/PUD
// ratio and F5's ratio are predictions.
var Costs = cost.MustTable("arm64", map[cost.Event]cost.Figure{
	// Entry reads hit L1 in the kernel's loops over a table; PTE writes
	// are plain stores, except __ptep_get_and_clear, an atomic exchange.
	cost.EntryReads: {PS: 2_000, Source: "estimate: L1 load-to-use 4 cycles on Cortex-A76 (Arm Cortex-A76 software optimization guide) at ~2 GHz"},
	cost.PTESets:    {PS: 3_000, Source: "estimate: set_pte of a user entry is a plain store, no barrier (arch/arm64/include/asm/pgtable.h: barriers only for valid kernel entries), ~6 cycles at ~2 GHz"},
	cost.PTEClears:  {PS: 8_000, Source: "estimate: __ptep_get_and_clear is an atomic exchange (SWPAL with LSE), ~16 cycles at ~2 GHz"},
	// UpperSets: set_pmd and set_pud of a valid entry (pmd_populate, a
	// block mapping) store and then issue dsb(ishst) and isb(), so that
	// the table walkers of every CPU see the entry before the next
	// access: the DSB waits for the store to reach the inner-shareable
	// domain (~400 cycles on a phone interconnect), the ISB refills the
	// pipeline. Clearing needs no barrier (pmd_clear of an invalid
	// entry).
	cost.UpperSets:   {PS: 250_000, Source: "estimate: set_pmd/set_pud = store + dsb(ishst) + isb() (arch/arm64/include/asm/pgtable.h), ~500 cycles at ~2 GHz"},
	cost.UpperClears: {PS: 3_000, Source: "estimate: pmd_clear/pud_clear store an invalid entry, no barrier (arch/arm64/include/asm/pgtable.h), ~6 cycles at ~2 GHz"},
	// Locks: LSE atomics with acquire/release semantics.
	cost.PTLocks:   {PS: 40_000, Source: "estimate: spin_lock (LDADDA/CASA) + spin_unlock (STLR) ~80 cycles at ~2 GHz"},
	cost.RmapLocks: {PS: 100_000, Source: "estimate: uncontended rwsem down_write + up_write (two acquire/release atomics and the owner field) ~200 cycles at ~2 GHz"},
	cost.MmapLocks: {PS: 100_000, Source: "estimate: uncontended rwsem down_write + up_write, as rmap_locks"},
	// Table pages: an order-0 allocation and a DC ZVA clear of 4 KiB at
	// ~8 GB/s (~0.5 us), the pagetable constructor; the free half of the
	// allocator pair and the destructor.
	cost.PTAllocs: {PS: 1_000_000, Source: "estimate: order-0 alloc (~0.3 us) + DC ZVA clear of 4 KiB at ~8 GB/s (0.5 us) + pagetable ctor on a phone core"},
	cost.PTFrees:  {PS: 150_000, Source: "estimate: order-0 free (~0.1 us) + pagetable dtor on a phone core"},
	// TLBIOps (fit, F5 before): on the seed's 2018 kernel (Joel Fernandes,
	// "mm: speed up mremap by 500x on large regions") move_ptes moved 64
	// pages at a time (LATENCY_LIMIT) and flush_tlb_range issued a TLBI
	// VAE1IS per page: 262,144 broadcast TLBIs for 1 GiB, which took
	// 167-242 ms, ~200 ms. The model's other work in that run (262,144
	// PTE moves, 513 table pages, 4,096 DSB ISH, locks) is 8.8 ms:
	// (200 - 8.8) ms / 262,145 = 730 ns per broadcast TLBI, which waits
	// for every CPU's DVM acknowledgement (0.5-1 us on Android phones).
	cost.TLBIOps: {PS: 730_000, Source: "derived (fit, F5): 1 GiB mremap on the 2018 Android kernel, 64-page extents with one TLBI VAE1IS per page, ~200 ms (167-242 ms runs, 20181009201400.168705): (200 - 8.8 ms of other priced work) / 262,145 TLBIs"},
	// TLBSyncs: the DSB ISH that completes a run of broadcast TLBIs.
	cost.TLBSyncs: {PS: 300_000, Source: "estimate: DSB ISH after broadcast TLBIs waits for their completion on every CPU, ~600 cycles at ~2 GHz"},
	// Syscalls: kernel entry and exit with the 4.x/5.4 Android kernels'
	// mitigations (Spectre-v2 branch predictor hardening, KPTI on cores
	// that need it), and the syscall's dispatch.
	cost.Syscalls: {PS: 2_000_000, Source: "estimate: EL0 -> EL1 entry/exit with Spectre/KPTI mitigations and dispatch, ~4,000 cycles at ~2 GHz on an Android 5.4 kernel"},
	// VMAOps: one VMA allocation, split, merge or removal: the x86
	// estimate's ~500 cycles of work (slab, vm_area_struct, maple tree,
	// anon_vma_chain) at ~2 GHz = 250 ns, plus two cold lines from
	// LPDDR4 at user_misses' 175 ns: 250 + 2 x 175 = 600 ns.
	cost.VMAOps: {PS: 600_000, Source: "estimate: the x86 figure's ~500 cycles of VMA alloc/copy/free and maple-tree store (J. D. Brouer's SLUB fastpath pair, commit fbd02630c6e3, for the slab part) at ~2 GHz = 250 ns, + 2 cold lines from LPDDR4 at 175 ns (user_misses)"},
	// MoveVMAs (fit, F4): the rest of one move_vma's fixed work (see the
	// x86 table for its steps). Kalesh Singh's arm64 measurement (Linux
	// 5.4) moved 1 GiB by PMDs in 1.13 ms and by one PUD ~19 times
	// faster. Without this figure the model prices the PMD run at
	// 921,701 ns and the PUD run at 5,037 ns; a move_vma costing m in
	// both gives 19 when m = (921,701 - 19 x 5,037) / 18 = 45,889 ns.
	// As on x86, most of it is the call running cold after the
	// benchmark wrote 1 GiB, on a phone whose caches that evicted: ~250
	// lines of kernel code and data from LPDDR4 at ~175 ns.
	cost.MoveVMAs: {PS: 45_889_000, Source: "derived (fit, F4): arm64 1 GiB mremap by PMDs 1.13 ms vs by one PUD ~19x faster (Kalesh Singh, Linux 5.4); model without it 921,701 vs 5,037 ns: m = (921,701 - 19 x 5,037)/18 = 45,889 ns per move_vma, cold after the benchmark's 1 GiB write"},

	// fork (F7). No per-primitive fork figure is published for arm64:
	// the atomics are estimated as the entries above are, and the x86
	// fits to D. Hildenbrand's fork table (arch/x86/cost.go) are carried
	// over at the same cycle counts (x86 figures are at 2.5 GHz; these
	// cores run at ~2 GHz, x1.25), except where the work is an atomic
	// or a DRAM line, priced as such.
	cost.RefAtomics:       {PS: 20_000, Source: "estimate: one LSE atomic (LDADD/STADD) ~40 cycles at ~2 GHz, half of pt_locks' lock + unlock"},
	cost.MapcountAtomics:  {PS: 20_000, Source: "estimate: one LSE atomic on _mapcount/_large_mapcount ~40 cycles at ~2 GHz, as ref_atomics"},
	cost.CopyPTEIters:     {PS: 2_500, Source: "derived: the x86 estimate (~5 cycles of copy_pte_range's loop tests and increments) at ~2 GHz"},
	cost.PTEBatchCompares: {PS: 3_500, Source: "derived: the x86 estimate (~7 cycles of __pte_batch_clear_ignored and pte_same) at ~2 GHz"},
	cost.FolioLookups:     {PS: 4_000, Source: "derived: the x86 fit (3.2 ns at 2.5 GHz = 8 cycles of vm_normal_page and page_folio, D. Hildenbrand's fork table) at ~2 GHz"},
	cost.PTEBatchCalls:    {PS: 15_800, Source: "derived: the x86 fit (12.6 ns at 2.5 GHz = 31.5 cycles per folio_pte_batch call, D. Hildenbrand's fork table) at ~2 GHz"},
	// RmapPageDups: the x86 fit (19.5 ns) is ClearPageAnonExclusive's
	// locked bit clear (7 ns) and the struct page's line from DRAM
	// (12.5 ns); here the clear is an LSE atomic (20 ns) and the line
	// takes the same DRAM time.
	cost.RmapPageDups: {PS: 32_500, Source: "derived: x86 fit of D. Hildenbrand's fork table (19.5 ns = 7 ns locked bit clear + 12.5 ns struct page line from DRAM) with the clear as an LSE atomic (~40 cycles at ~2 GHz)"},
	cost.PageCopies:   {PS: 1_000_000, Source: "derived: a 4 KiB copy reads and writes 4 KiB, twice the traffic of pt_allocs' DC ZVA clear at ~8 GB/s (0.5 us)"},

	// The fault path's shared batches (package spf; see the x86 table):
	// the same work at ~2 GHz, locks and atomics as LSE atomics.
	cost.PCPRefills:         {PS: 50_000, Source: "derived: spin_lock + spin_unlock (pt_locks, 40 ns) + the x86 estimate's ~20 cycles of rmqueue_bulk set-up at ~2 GHz"},
	cost.BuddyPages:         {PS: 50_000, Source: "derived: the x86 estimate's ~100 cycles per page of __rmqueue_smallest, expand and list_add_tail at ~2 GHz"},
	cost.LRUAddBatches:      {PS: 45_000, Source: "derived: spin_lock_irqsave + unlock (pt_locks, 40 ns) + DAIF save/restore ~10 cycles at ~2 GHz"},
	cost.LRUAddPages:        {PS: 33_000, Source: "derived: SetPageLRU as one LSE atomic (ref_atomics, 20 ns) + the x86 estimate's ~25 other cycles at ~2 GHz"},
	cost.PageCounterCharges: {PS: 20_000, Source: "derived: one LSE atomic (LDADD), as ref_atomics"},
	cost.PercpuFolds:        {PS: 20_000, Source: "derived: one LSE atomic (STADD), as ref_atomics"},

	// Page faults and contpte (F8, F9). Kefeng Wang's page_fault3 table
	// (specs/contpte.md 2.10: will-it-scale page_fault3_processes -t 128
	// on a 128-core arm64 server, pages per second over all processes)
	// is the only published arm64 page-fault measurement here; at 128
	// processes each page takes 128 s / rate: 1,385.6 ns with large folios
	// off, 1,592.8 ns with 64K folios and contpte off, 7,918.4 ns with
	// contpte on. Three figures are derived from those three times (the
	// fault's fixed work, the per-block page_mkwrite work and the other
	// CPUs' TLBI work); the whole-folio ratio (F8) and F9 are predictions.
	// Other per-page work of the model below is from the figures above
	// and these estimates:
	cost.PageCacheLookups: {PS: 100_000, Source: "estimate: filemap_get_entry's xarray walk (2-3 node lines) and folio_try_get, folio_lock, folio_unlock (three LSE atomics at ref_atomics' 20 ns)"},
	cost.RSSUpdates:       {PS: 2_000, Source: "estimate: add_mm_counter, a per-CPU counter add, ~4 cycles at ~2 GHz"},
	// UserMisses: a user store whose line comes from DRAM (page_fault3
	// stores to each page once per 128 MiB pass): LPDDR4, 150-200 ns; the
	// middle.
	cost.UserMisses:  {PS: 175_000, Source: "estimate: a line from LPDDR4, 150-200 ns load-to-use on Android phones of the Cortex-A7x era; the middle, 175 ns"},
	cost.FolioAllocs: {PS: 300_000, Source: "estimate: an allocation from the buddy lists, the ~0.3 us of pt_allocs' note"},
	cost.PageZeroes:  {PS: 500_000, Source: "estimate: DC ZVA clear of 4 KiB at ~8 GB/s, as pt_allocs' note (0.5 us)"},
	// Faults (derived, F8 anchor): with large folios off the model's
	// other priced work per page (the write fault's lookups, locks,
	// entries, atomics and its page_mkwrite block, the store's miss, and
	// the page's share of munmap) is 553.5 ns; the trap, entry/exit,
	// handle_mm_fault dispatch and the file fault's fixed work
	// (page_mkwrite's per-call part, folio_mark_dirty,
	// balance_dirty_pages_ratelimited) take the rest: 1,385.6 - 553.5 =
	// 832.1 ns.
	cost.Faults: {PS: 832_000, Source: "derived (F8): Kefeng Wang's page_fault3, large folios off, 92,378,735 pages/s over 128 processes = 1,385.6 ns per page, less 553.5 ns of the model's other priced work per page"},
	// PageMkwriteBlocks (derived, F8): with 64K folios and contpte off a
	// page takes 1,592.8 - 1,385.6 = 207.2 ns more, the model's other
	// work 1.5 ns less (batched zap against an extra mapcount atomic), and
	// ext4's block_page_mkwrite walks the folio's 16 blocks instead of 1
	// on every fault: (207.2 + 1.5) / 15 = 13.9 ns per block.
	cost.PageMkwriteBlocks: {PS: 13_900, Source: "derived (F8): page_fault3 with 64K folios and contpte off, 80,364,074 pages/s = 1,592.8 ns per page; (1,592.8 - 1,385.6 + 1.5 ns of other work) / 15 more blocks per fault"},
	// TLBIRemote (derived, F8): with contpte on each 16th fault folds its
	// block (16 TLBI VALE1IS and a DSB, no FEAT_TLBIRANGE on that
	// server), and every TLBI reaches the other 127 CPUs, all running
	// page_fault3: 127 receptions per page. The model's other work per
	// page, the fold included, is 2,356.8 ns: (7,918.4 - 2,356.8) / 127 =
	// 43.8 ns per TLBI per busy CPU, ~110 cycles: the receiving CPU's DVM
	// work, which Andrea Arcangeli found grows with the CPUs sending
	// ("arm64: tlb: skip tlbi broadcast").
	cost.TLBIRemote: {PS: 43_800, Source: "derived (F8): page_fault3 with contpte on, 16,164,943 pages/s = 7,918.4 ns per page; (7,918.4 - 2,356.8 ns of other work) / 127 TLBIs received per page"},
})
