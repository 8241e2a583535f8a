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

	// The fault path's other shared resources (package spf, F13 and
	// F14): the work done under zone->lock and lru_lock, and the atomics
	// that fold per-CPU batches into shared counters. Waiting for the
	// locks and moving their lines between CPUs are priced by the
	// simulation (line_transfers); these figures are the work itself.
	//
	// PCPRefills: rmqueue_bulk's fixed part: an uncontended spin_lock
	// and spin_unlock of zone->lock (as pt_locks, 8 ns) and ~20 cycles of
	// loop set-up and the NR_FREE_PAGES update.
	cost.PCPRefills: {PS: 16_000, Source: "derived: spin_lock + spin_unlock (pt_locks, 8 ns: LOCK CMPXCHG ~18 cycles on Skylake, Agner Fog) + ~20 cycles of rmqueue_bulk set-up and stat update at 2.5 GHz"},
	// BuddyPages: per page moved to the per-CPU list, __rmqueue_smallest
	// (take the first page of the smallest non-empty free list),
	// del_page_from_free_list, expand's split (one halving per page on
	// average when a batch breaks up a larger block), set_pcppage_
	// migratetype, check_new_pcp and list_add_tail: ~100 cycles, the
	// struct pages streaming in order (prefetched).
	cost.BuddyPages: {PS: 40_000, Source: "estimate: ~100 cycles per page of __rmqueue_smallest, expand and list_add_tail at 2.5 GHz (of the same order as page_bench01's ~250-cycle order-0 alloc+free pair, J. D. Brouer 2016, which needs no buddy work)"},
	// LRUAddBatches: __pagevec_lru_add's lru_lock taken with IRQs saved
	// (LOCK CMPXCHG ~18 cycles + pushf/cli/popf ~20 cycles) and released.
	cost.LRUAddBatches: {PS: 16_000, Source: "derived: spin_lock_irqsave + unlock: LOCK CMPXCHG ~18 cycles and pushf/cli/popf ~20 cycles on Skylake (Agner Fog) at 2.5 GHz"},
	// LRUAddPages: per page, SetPageLRU (a locked bit set, ~18 cycles),
	// list_add (~5), the lruvec lookup and update_lru_size's per-CPU
	// adds (~20): ~45 cycles.
	cost.LRUAddPages: {PS: 18_000, Source: "estimate: SetPageLRU (locked bit op ~18 cycles, Agner Fog), list_add and update_lru_size's per-CPU adds, ~45 cycles at 2.5 GHz"},
	// PageCounterCharges and PercpuFolds: one locked RMW each
	// (atomic_long_add_return on a page_counter's usage, atomic_long_add
	// of a folded delta).
	cost.PageCounterCharges: {PS: 7_000, Source: "derived: one LOCK XADD ~18 cycles on Skylake (Agner Fog) at 2.5 GHz, as ref_atomics"},
	cost.PercpuFolds:        {PS: 7_000, Source: "derived: one LOCK XADD ~18 cycles on Skylake (Agner Fog) at 2.5 GHz, as ref_atomics"},

	// HugeTLB vmemmap optimisation (F10, F11): figures fitted to the
	// allocation rows of Kravetz and Martins' "Batch hugetlb vmemmap
	// modification operations" (v2/v6 cover letters, specs/vmemmap.md
	// A.4): `echo N > nr_hugepages` of 2 MiB pages on an 8-socket Xeon
	// E7-8895 (taken as v3: 18 cores, 36 threads per socket, 288 CPUs),
	// N = 500000: HVO off 4.12 s, HVO before batching 28.97 s, batched
	// 7.27 s; and a 252-vCPU VM on a 2-socket EPYC 7J13, N = 524288:
	// 2.46 s, 147.6 s, 4.80 s. Per folio on the bare-metal host: off
	// 8,240 ns; batched - off 6,300 ns; unbatched - batched 43,400 ns.
	// Figures already in the table are taken as they are (folio_allocs
	// 70 ns, mmap_locks 14 ns, pt_locks 8 ns, invlpg 100 ns).
	//
	// StructPageInits: with HVO off a folio costs one folio allocation and
	// prep_compound_page's 512 struct page writes (one 64-byte line each):
	// (8,240 - 70) / 512 = 15.96 ns per struct page.
	cost.StructPageInits: {PS: 15_957, Source: "derived: HVO-off hugetlb alloc, 4.12 s / 500000 2 MiB folios = 8,240 ns = folio_allocs 70 ns + 512 struct pages (Kravetz, batch hugetlb vmemmap v6 cover): (8,240-70)/512"},
	// VmemmapPagesFreed: batched HVO adds 6,300 ns per folio: a new head
	// page (folio_allocs 70), two mmap_lock read sections of init_mm (28),
	// two page_table_lock sections plus the split's share (2 + 1/64) x 8 =
	// 16, and per vmemmap page given back the remap of its PTE, the
	// list_add on its own (cold, often remote) struct page and its free to
	// the buddy allocator: (6,300 - 70 - 28 - 16) / 7 = 883.7 ns.
	cost.VmemmapPagesFreed: {PS: 883_700, Source: "derived: batched-HVO hugetlb alloc (7.27 - 4.12 s) / 500000 = 6,300 ns per 2 MiB folio, less the priced new-head alloc, locks (114 ns), over 7 pages freed (Kravetz, batch hugetlb vmemmap v6 cover)"},
	// VmemmapPagesRestored: the free rows of the same table (off 4.48 s,
	// batched 13.20 s) give 17,440 ns per folio of restore: 7 page
	// allocations (490), 21 struct pages reset (335), the locks (22), and
	// per page restored the copy of the head page, its remap and the
	// struct page work: (17,440 - 490 - 335 - 22) / 7 = 2,370 ns.
	cost.VmemmapPagesRestored: {PS: 2_370_400, Source: "derived: batched-HVO hugetlb free (13.20 - 4.48 s) / 500000 = 17,440 ns per 2 MiB folio, less priced allocs, resets and locks (847 ns), over 7 pages restored (Kravetz, batch hugetlb vmemmap v6 cover)"},
	// TLBIPIs: one shootdown target, as the initiator sees it: the IPI
	// send (ICR write, call-function data) and the wait for that CPU's
	// acknowledgement; the targets' own invalidations run in parallel
	// (remote_invlpg, remote_full_flushes) and cost the initiator
	// nothing. Without batching each folio pays a flush_tlb_kernel_range
	// of its 8 vmemmap pages (8 local INVLPG, an IPI to each of the 287
	// other CPUs) and 1/64 of a vmemmap PMD split's full flush (287 IPIs),
	// and saves one mmap_lock and one page_table_lock section (22 ns):
	// 43,400 = 287 x (1 + 1/64) x t + 800 - 22, t = 146.2 ns.
	cost.TLBIPIs: {PS: 146_220, Source: "derived: unbatched - batched HVO alloc (28.97 - 7.27 s) / 500000 = 43,400 ns per folio = 287 x 65/64 IPIs + 8 INVLPG - 22 ns of locks on 288 CPUs (Kravetz, batch hugetlb vmemmap v6 cover)"},
	// IPIVMExits: in a VM each IPI's ICR write traps to the hypervisor.
	// The VM host is faster: HVO-off allocation takes 2.46 s / 524288 =
	// 4,692 ns per folio there against 8,240 ns here, so its times are
	// put in this table's time base by 8,240 / 4,692 = 1.756. Unbatched -
	// batched there: (147.6 - 4.80 s) / 524288 = 272,369 ns, x 1.756 =
	// 478,317 ns = 251 x (1 + 1/64) x (t + v) + 800 - 22, so t + v =
	// 1,873.3 ns and v = 1,873.3 - 146.2 = 1,727 ns per trapped IPI.
	cost.IPIVMExits: {PS: 1_727_060, Source: "derived: unbatched - batched HVO alloc in a 252-vCPU VM (147.6 - 4.80 s) / 524288 = 272,369 ns per folio, scaled by the HVO-off ratio of the hosts (8,240/4,692 ns), over 251 x 65/64 IPIs, less the bare-metal IPI (Kravetz, batch hugetlb vmemmap v6 cover)"},

	// mremap (F1, F2) and the generic primitives every path counts, on the
	// same 2.5 GHz Skylake-SP. Two figures are fitted: LocalFullFlushes to
	// F1's PMD-move time and MoveVMAs (move_vma's fixed work) to F2's
	// ratio; F1's ratio is then a prediction. Figures already in the table are taken as they are
	// (pt_locks 8 ns, mmap_locks 14 ns, page_zeroes 340 ns, folio_allocs
	// 70 ns, faults 600 ns).
	//
	// Entry reads hit L1 in the kernel's loops over a table (hardware
	// prefetch streams the 4 KiB table); entry writes are plain stores,
	// except ptep_get_and_clear, which is an XCHG with memory.
	cost.EntryReads:  {PS: 2_000, Source: "derived: L1 load-to-use 4-5 cycles on Skylake (Intel optimization manual) at 2.5 GHz, as seq_reads"},
	cost.PTESets:     {PS: 2_000, Source: "derived: set_pte is a plain store (native_set_pte, WRITE_ONCE), ~5 cycles with its address work at 2.5 GHz"},
	cost.PTEClears:   {PS: 7_000, Source: "derived: ptep_get_and_clear is XCHG with memory (native_ptep_get_and_clear), implicitly locked, ~18 cycles on Skylake (Agner Fog) at 2.5 GHz"},
	cost.UpperSets:   {PS: 2_000, Source: "derived: set_pmd/pmd_populate/set_pud are plain stores (native_set_pmd), ~5 cycles at 2.5 GHz"},
	cost.UpperClears: {PS: 2_000, Source: "derived: pmd_clear/pud_clear are plain stores (native_pmd_clear), ~5 cycles at 2.5 GHz"},
	// RmapLocks: i_mmap_rwsem or anon_vma->rwsem down_write + up_write,
	// uncontended: the same two LOCK XADD as mmap_locks.
	cost.RmapLocks: {PS: 14_000, Source: "derived: uncontended rwsem down_write + up_write = 2 x LOCK XADD ~18 cycles (Agner Fog) at 2.5 GHz, as mmap_locks"},
	// PTAllocs: a page-table page is an order-0 page (folio_allocs 70 ns)
	// cleared whole (page_zeroes 340 ns) and constructed
	// (pagetable_pte_ctor: split ptlock init, NR_PAGETABLE stat, ~30 ns).
	cost.PTAllocs: {PS: 440_000, Source: "derived: folio_allocs 70 ns + page_zeroes 340 ns + ~30 ns pagetable ctor (~75 cycles at 2.5 GHz)"},
	// PTFrees: the free half of page_bench01's order-0 alloc+free pair
	// (~30 of ~100 ns) plus pagetable_dtor (~20 ns).
	cost.PTFrees: {PS: 50_000, Source: "derived: page_bench01 order-0 alloc+free ~100 ns (J. D. Brouer 2016), free ~30% = 30 ns, + ~20 ns pagetable dtor"},
	// LocalFullFlushes (fit, F1): Joel Fernandes' merged patch
	// (2c91bd4a4e2e) moved 1 GiB by PMDs in 144-160 us, 152 us mid: 512
	// PMD moves and one call's fixed path (11.4 us: the PUD run of the F2
	// fit below, move_vmas included). A PMD move is 2 split PMD locks (16
	// ns), the anon_vma lock (14 ns), 13 entry reads (26 ns), pmd_clear +
	// pmd_populate (4 ns) and flush_tlb_range(2 MiB), which, above the
	// 33-page ceiling, is a local full flush: (152,000 - 11,400) / 512 -
	// 60 = 215 ns, a CR3 reload (~530 cycles at 2.5 GHz, in the 100-300
	// ns such flushes take).
	cost.LocalFullFlushes: {PS: 210_000, Source: "derived (fit, F1): 1 GiB by PMD moves 152 us (2c91bd4a4e2e, x86): (152 us - 11.4 us fixed path) / 512 moves - 60 ns of priced locks, reads and writes = 215 ns per CR3-reload full flush"},
	// Syscalls: a kernel entry and exit with dispatch, as the trap of a
	// fault (faults, 600 ns).
	cost.Syscalls: {PS: 600_000, Source: "derived: the kernel entry/exit and dispatch of a fault (faults, 600 ns: 1,013 ns rdtsc-measured zero-page fault less its allocations)"},
	// VMAOps: one VMA allocation, split, merge or removal (vm_area_alloc
	// or vm_area_free, the vm_area_struct's initialisation or copy, the
	// maple-tree walk and store, the anon_vma_chain link): ~500 cycles of
	// work, of which the slab object is ~22 (a SLUB fastpath alloc+free
	// pair is 43 cycles, J. D. Brouer, commit fbd02630c6e3 "slub: initial
	// bulk free implementation", i7-4790K), = 200 ns at 2.5 GHz; plus
	// one or two cold cache lines (the tree node, the neighbour VMA)
	// from local DRAM at ~90 ns each (Skylake-SP idle load-to-use latency
	// as Intel's Memory Latency Checker reports it, 80-90 ns): 200 + 2 x
	// 90 = 380 ns.
	cost.VMAOps: {PS: 380_000, Source: "estimate: ~500 cycles of VMA alloc/copy/free and maple-tree store at 2.5 GHz (slab part from J. D. Brouer's SLUB fastpath alloc+free, 43 cycles, commit fbd02630c6e3) = 200 ns, + 2 cold lines from local DRAM at ~90 ns (Skylake-SP, Intel MLC idle latency 80-90 ns)"},
	// MoveVMAs (fit, F2): the rest of one move_vma's fixed work. Kalesh
	// Singh's PUD-aligned 1 GiB mremap (20201005154017.474722, x86, Linux
	// 5.4) took 205,721.5 ns by PMD moves and 15,594 ns by one PUD move,
	// a ratio r = 13.192. Without this figure the model prices the PMD
	// run at 140,208 ns (512 PMD moves, one PMD table allocated and one
	// freed, and the fixed path priced above: a syscall, mmap_lock, two
	// VMA operations, the source unmap's walk) and the PUD run at 1,624
	// ns; a move_vma costing m in both makes the ratio r when
	// (140,208 + m) / (1,624 + m) = r: m = (140,208 - 1,624 r) / (r - 1)
	// = 9,742 ns. What move_vma does besides the tables and the two VMA
	// operations (copy_vma's anon_vma_clone and vma_link accounting,
	// do_munmap of the source: lru_add_drain of this CPU's pagevecs,
	// tlb_gather_mmu, unmap_vmas and free_pgtables over 1 GiB,
	// tlb_finish_mmu; vm_stat_account, vm_unacct_memory's
	// percpu_counter, hiwater_vm, the MMU-notifier range, ksm and uffd
	// hooks) is ~1-2 us warm; the rest is the call running cold right
	// after the benchmark wrote 1 GiB, which evicted the kernel's code
	// and data from every cache (~90 lines from DRAM at ~90 ns). A warm
	// mremap in a loop pays less than this figure.
	cost.MoveVMAs: {PS: 9_742_000, Source: "derived (fit, F2): PUD-aligned 1 GiB mremap 205,721.5 ns by PMDs vs 15,594 ns by one PUD (Kalesh Singh, Linux 5.4, x86), r = 13.192; model without it 140,208 vs 1,624 ns: m = (140,208 - 1,624 r)/(r - 1) = 9,742 ns per move_vma, cold after the benchmark's 1 GiB write"},

	// fork (F6): David Hildenbrand's "mm/memory: optimize fork() with
	// PTE-mapped THP" (v2/v3 cover): fork() of 1 GiB = 262,144 PTEs on a
	// Xeon Silver 4210R, v6.8-rc1 (one PTE at a time) against the series
	// (batched). Per PTE: unbatched 2M folios 14.305 ms / 262,144 = 54.57
	// ns; batched 2M 10.076 ms = 38.44 ns; batched 16K 11.96 ms = 45.62
	// ns. Priced already: two entry reads and two entry writes per PTE
	// (8 ns), and per PTE table (512 PTEs) the allocation, locks, walk and
	// upper writes (~470 ns, 0.92 ns per PTE). Three figures are fitted
	// to those three times (rmap_page_dups, folio_lookups,
	// pte_batch_calls); the other sizes (32K, 64K, 128K...) are then
	// predictions.
	//
	// RefAtomics and MapcountAtomics: folio_ref_add/folio_get/folio_put
	// and atomic_inc/atomic_add of _mapcount, _large_mapcount or
	// _entire_mapcount are one locked RMW each.
	cost.RefAtomics:      {PS: 7_000, Source: "derived: one LOCK XADD ~18 cycles on Skylake (Agner Fog, instruction tables) at 2.5 GHz, half of mmap_locks' two"},
	cost.MapcountAtomics: {PS: 7_000, Source: "derived: one LOCK INC/XADD ~18 cycles on Skylake (Agner Fog, instruction tables) at 2.5 GHz, as ref_atomics"},
	// CopyPTEIters: one pass of copy_pte_range's loop besides the entry
	// read (pte_none/pte_present tests, progress, pointer bumps).
	cost.CopyPTEIters: {PS: 2_000, Source: "estimate: ~5 cycles of tests and increments at 2.5 GHz"},
	// PTEBatchCompares: __pte_batch_clear_ignored's masking, pte_same and
	// the loop step of folio_pte_batch, per PTE (the read is entry_reads).
	cost.PTEBatchCompares: {PS: 3_000, Source: "estimate: ~8 ALU ops, ~7 cycles at 2.5 GHz"},
	// RmapPageDups (fit): the batched 2M fork's 38.44 ns per PTE less the
	// priced reads, writes and table work (8.92), the page's mapcount
	// atomic (7), the compare (3 x 511/512) and the per-batch work spread
	// over 512 PTEs (0.09): 19.44 ns per page, the struct page's line
	// (16 MiB of struct pages stream from DRAM) and ClearPageAnonExclusive
	// (a locked bit clear, ~7 ns), which the batch cannot share.
	cost.RmapPageDups: {PS: 19_500, Source: "derived (fit, F6): batched fork of 1 GiB of PTE-mapped 2M folios, 10.076 ms / 262,144 PTEs = 38.44 ns, less 18.9 ns of priced per-PTE work (D. Hildenbrand, optimize fork() with PTE-mapped THP, v3 cover, Xeon Silver 4210R)"},
	// FolioLookups (fit): the unbatched fork's 54.57 ns per PTE = 8.92 +
	// loop 2 + lookup + folio_get 7 + two mapcount atomics 14 (the page's
	// and the large folio's) + 19.5 per page: vm_normal_page and
	// page_folio take 3.15 ns.
	cost.FolioLookups: {PS: 3_200, Source: "derived (fit, F6): unbatched (v6.8-rc1) fork of 1 GiB of PTE-mapped 2M folios, 14.305 ms / 262,144 PTEs = 54.57 ns less 51.42 ns of priced per-PTE work (D. Hildenbrand, optimize fork() with PTE-mapped THP, v3 cover)"},
	// PTEBatchCalls (fit): batched 16K folios, 45.62 ns per PTE = 8.92 +
	// 7 + 19.5 + 3 x 3/4 + (loop 2 + lookup 3.2 + folio_ref_add 7 +
	// large mapcount 7 + call) / 4: the call of folio_pte_batch and its
	// set-up cost 12.6 ns.
	cost.PTEBatchCalls: {PS: 12_600, Source: "derived (fit, F6): batched fork of 1 GiB of 16K folios, 11.96 ms / 262,144 PTEs = 45.62 ns per PTE, less the priced per-PTE work, times 4 PTEs per call, less the priced per-call work (D. Hildenbrand, optimize fork() with PTE-mapped THP, v3 cover)"},
	// PageCopies: copy_user_highpage reads and writes 4 KiB.
	cost.PageCopies: {PS: 680_000, Source: "derived: twice the memory traffic of clear_page (page_zeroes, 340 ns for 4 KiB at ~12 GB/s)"},
})
