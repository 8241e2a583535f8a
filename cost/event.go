package cost

import "fmt"

// Event is one kind of primitive step that the model counts.
type Event uint8

// The events. The first group are the counters that scenario scripts name
// (see SCENARIOS.md); the rest are the machine primitives that carry the
// cost of the work. Counter names are the strings returned by String.
const (
	// Entries moved by mremap, per level.
	PTEMoves Event = iota
	PMDMoves
	PUDMoves
	HugePMDMoves

	// Page-table entry writes at the PTE level.
	PTESets
	PTEClears

	// Page-table pages allocated and freed.
	PTAllocs
	PTFrees

	// Calls of Linux's flush API, by the kind the caller asked for.
	TLBFlushPage
	TLBFlushRange
	TLBFlushMM
	TLBFlushAll
	TLBFlushKernel

	// TLB entries dropped by flushes, cross-CPU shootdowns, lookups.
	TLBInvalidated
	TLBIPIs
	TLBHits
	TLBMisses

	// D-cache flushes (sparc64 colour changes).
	DcacheFlushes

	// Page faults.
	Faults
	FaultsAnon
	FaultsCOW

	// fork's copy steps.
	ForkBatches
	ForkPTEs
	ForkPageCopies

	// arm64 contiguous-PTE management.
	ContpteFolds
	ContpteUnfolds
	ContpteConverts

	// HugeTLB vmemmap optimisation.
	VmemmapSplits
	VmemmapPagesFreed
	VmemmapPagesRestored

	// Speculative page faults.
	SPFAttempts
	SPFSuccess
	SPFRetries

	// Primitives below here are not named by the script contract; they
	// carry cost and show in `stats` too.

	// EntryReads counts software reads of page-table entries.
	EntryReads
	// UpperSets and UpperClears count entry writes above the PTE level.
	UpperSets
	UpperClears
	// WalkSteps counts memory references of hardware page walks.
	WalkSteps
	// WalkCacheHits counts walk levels skipped thanks to the walk cache.
	WalkCacheHits
	// TLBFills counts TLB entries inserted after a walk.
	TLBFills
	// ADUpdates counts access/dirty bits set by the hardware walker.
	ADUpdates
	// Invlpg counts x86 single-address invalidations (INVLPG, or one
	// INVLPGB chunk).
	Invlpg
	// LocalFullFlushes counts full flushes of one CPU's TLB for an ASID or
	// for everything (a CR3 reload, TLBI ASIDE1 on one CPU).
	LocalFullFlushes
	// TLBIOps counts arm64 TLBI instructions (by VA, by ASID, by range, all).
	TLBIOps
	// TLBSyncs counts completion barriers of broadcast invalidations
	// (arm64 DSB ISH after TLBI, x86 TLBSYNC).
	TLBSyncs
	// IPTEOps and IDTEOps count s390's invalidating exchanges of a page
	// table entry and of a segment or region entry.
	IPTEOps
	IDTEOps
	// TLBDemaps counts sparc64 per-address TSB and TLB demaps.
	TLBDemaps
	// HostSyscalls counts UML host mmap, munmap and mprotect calls.
	HostSyscalls
	// PTLocks counts page-table lock acquisitions.
	PTLocks
	// RmapLocks counts rmap lock acquisitions (i_mmap and anon_vma).
	RmapLocks
	// MmapLocks counts mmap_lock acquisitions.
	MmapLocks
	// RefAtomics counts atomic updates of folio reference counts.
	RefAtomics
	// MapcountAtomics counts atomic updates of mapcounts.
	MapcountAtomics
	// PageZeroes and PageCopies count base pages cleared and copied.
	PageZeroes
	PageCopies
	// FolioAllocs and FolioFrees count folio allocations and frees.
	FolioAllocs
	FolioFrees
	// VMAOps counts VMA allocations, splits, merges and removals.
	VMAOps
	// Syscalls counts system-call entries (mmap, munmap, mremap, fork...).
	Syscalls
	// RSSUpdates counts updates of an mm's RSS counters.
	RSSUpdates
	// ContextSwitches counts switches of a simulated CPU to another thread.
	ContextSwitches
	// IPIVMExits counts IPIs sent from a virtual machine: each write of
	// the interrupt command register traps to the hypervisor (a VM exit)
	// and the target vCPU takes an injected interrupt.
	IPIVMExits
	// FolioLookups counts vm_normal_page plus page_folio: finding the
	// page and the folio behind a present PTE (fork does it once per PTE,
	// or once per batch of PTEs of one folio).
	FolioLookups
	// CopyPTEIters counts iterations of copy_pte_range's loop body: one
	// per PTE, or per batch of PTEs copied in one step.
	CopyPTEIters
	// PTEBatchCompares counts the PTEs folio_pte_batch reads and compares
	// with the expected next entry after the first (one per contiguous
	// block where pte_batch_hint skips a block).
	PTEBatchCompares

	// LineTransfers counts cache-line transfers between CPUs: an atomic
	// on, or a read of, a line that another CPU wrote last (the bouncing
	// of a contended lock word).
	LineTransfers
	// SeqReads counts reads and checks of sequence counts (mmap_seq,
	// vm_lock_seq, mm_lock_seq) that hit the reader's cache.
	SeqReads
	// RCUReadSections counts RCU read-side sections, and the IRQ-off
	// sections of speculative walks, entered.
	RCUReadSections
	// VMALocks counts per-VMA lock operations (vma_start_read and its
	// vma_end_read, vma_start_write).
	VMALocks
	// Speculative-fault aborts by reason, as Michel Lespinasse's "mm:
	// anon spf statistics" names them: sequence count odd at the start;
	// no VMA; VMA not anonymous; sequence changed while copying the VMA;
	// access not allowed; pgd/p4d/pud none or huge; pmd none or huge;
	// anon_vma needed; and pte_map_lock's checks (sequence, pmd_same, PTE
	// lock trylock, sequence again).
	SPFAbortOdd
	SPFAbortUnmapped
	SPFAbortNoSpeculate
	SPFAbortVMACopy
	SPFAbortAccessError
	SPFAbortPUD
	SPFAbortPMD
	SPFAbortAnonVMA
	SPFAbortMapSeq1
	SPFAbortMapPMD
	SPFAbortMapPTL
	SPFAbortMapSeq2
	// VMALockMiss and VMALockAbort count lock_vma_under_rcu's events as
	// Linux does: a VMA locked but found detached after the lookup (the
	// lookup runs again), and a failure that falls back to mmap_lock (no
	// VMA, not anonymous, no anon_vma, write-locked, or no longer holding
	// the address).
	VMALockMiss
	VMALockAbort
	// SPFPTLFreed counts speculative PTE-lock trylocks that touched a
	// lock already freed by munmap (David Hildenbrand's objection).
	SPFPTLFreed

	// StructPageInits counts struct pages written by the hugetlb
	// allocator: prep_compound_page when a folio is allocated, the
	// teardown before it is freed, reset_struct_pages on vmemmap restore.
	StructPageInits
	// RemoteInvlpg and RemoteFullFlushes count the invalidations that the
	// targets of a shootdown carry out in their IPI handlers, in parallel
	// with the initiator: counted apart from invlpg and
	// local_full_flushes (the initiator's own), because they are not on
	// the initiator's elapsed time.
	RemoteInvlpg
	RemoteFullFlushes
	// PTEBatchCalls counts calls of folio_pte_batch by fork: its fixed
	// work before the loop (the folio's end, the flags, pte_batch_hint,
	// the expected next entry).
	PTEBatchCalls
	// RmapPageDups counts the pages whose rmap a fork duplicates in the
	// per-page loop of folio_try_dup_anon_rmap_ptes or
	// folio_dup_file_rmap_ptes: the struct page's cache line and its
	// PageAnonExclusive test and clear (the _mapcount atomic is
	// mapcount_atomics).
	RmapPageDups

	// PageCacheLookups counts filemap_fault's page-cache lookups: the
	// xarray walk for the faulting index, and the folio reference and
	// lock taken on what it finds (or allocates).
	PageCacheLookups
	// PageMkwriteBlocks counts the file blocks a filesystem's
	// page_mkwrite prepares and commits on a write fault of a shared
	// mapping: block_page_mkwrite (ext4, with 4 KiB blocks) walks every
	// block of the faulting folio, so a large folio costs as many blocks
	// as it has pages on every fault into it.
	PageMkwriteBlocks
	// TLBIRemote counts broadcast TLBI instructions as received by the
	// other CPUs that are running an address space (arm64 DVM): each
	// such CPU stops to carry out the invalidation, time its own work
	// loses. Idle CPUs are not counted. One TLBI reaching 127 busy CPUs
	// counts 127.
	TLBIRemote
	// UserMisses counts user loads and stores whose cache line comes
	// from DRAM. The machine keeps no data caches, so the model cannot
	// tell a hit from a miss: a workload whose accesses are known to miss
	// counts them (page_fault3 stores to a page it has not touched since
	// its last pass over 128 MiB).
	UserMisses

	// MoveVMAs counts calls of mremap's move_vma: the fixed work of one
	// move besides the VMA operations (vma_ops) and the page-table moves
	// it counts apart: copy_vma's anon_vma_clone and accounting, the
	// source unmap's lru_add_drain, tlb_gather_mmu and tlb_finish_mmu,
	// vm_stat_account, vm_unacct_memory and hiwater updates, the
	// MMU-notifier range and userfaultfd hooks.
	MoveVMAs

	// Shared per-fault resources of an anonymous write fault, amortised
	// as Linux batches them (counted by the spf simulation, whose threads
	// contend for them; see package spf):
	//
	// PCPRefills counts rmqueue_bulk calls: zone->lock taken to refill a
	// CPU's per-CPU page list with pcp->batch pages (the lock and the
	// batch's fixed work; the pages are buddy_pages).
	PCPRefills
	// BuddyPages counts pages moved from the buddy free lists to a
	// per-CPU list under zone->lock (__rmqueue_smallest, expand,
	// list_add_tail).
	BuddyPages
	// LRUAddBatches counts __pagevec_lru_add calls: lruvec->lru_lock
	// taken to put a full per-CPU pagevec (15 pages) on the LRU lists.
	LRUAddBatches
	// LRUAddPages counts pages put on an LRU list under lru_lock
	// (SetPageLRU, list_add, the LRU size update).
	LRUAddPages
	// PageCounterCharges counts page_counter_try_charge's atomic charges
	// of one memory cgroup level (a batch of MEMCG_CHARGE_BATCH pages is
	// charged to the cgroup and to each ancestor up to the root).
	PageCounterCharges
	// PercpuFolds counts folds of a per-CPU counter delta into its shared
	// atomic: vmstat node/zone items past their stat_threshold, memcg
	// statistics and events past MEMCG_CHARGE_BATCH, and a task's split
	// RSS counters synced into the mm every TASK_RSS_EVENTS_THRESH
	// faults.
	PercpuFolds

	// NumEvents is the number of events.
	NumEvents
)

var eventNames = [NumEvents]string{
	PTEMoves:             "pte_moves",
	PMDMoves:             "pmd_moves",
	PUDMoves:             "pud_moves",
	HugePMDMoves:         "huge_pmd_moves",
	PTESets:              "pte_sets",
	PTEClears:            "pte_clears",
	PTAllocs:             "pt_allocs",
	PTFrees:              "pt_frees",
	TLBFlushPage:         "tlb_flush_page",
	TLBFlushRange:        "tlb_flush_range",
	TLBFlushMM:           "tlb_flush_mm",
	TLBFlushAll:          "tlb_flush_all",
	TLBFlushKernel:       "tlb_flush_kernel",
	TLBInvalidated:       "tlb_invalidated",
	TLBIPIs:              "tlb_ipis",
	TLBHits:              "tlb_hits",
	TLBMisses:            "tlb_misses",
	DcacheFlushes:        "dcache_flushes",
	Faults:               "faults",
	FaultsAnon:           "faults_anon",
	FaultsCOW:            "faults_cow",
	ForkBatches:          "fork_batches",
	ForkPTEs:             "fork_ptes",
	ForkPageCopies:       "fork_page_copies",
	ContpteFolds:         "contpte_folds",
	ContpteUnfolds:       "contpte_unfolds",
	ContpteConverts:      "contpte_converts",
	VmemmapSplits:        "vmemmap_splits",
	VmemmapPagesFreed:    "vmemmap_pages_freed",
	VmemmapPagesRestored: "vmemmap_pages_restored",
	SPFAttempts:          "spf_attempts",
	SPFSuccess:           "spf_success",
	SPFRetries:           "spf_retries",
	EntryReads:           "entry_reads",
	UpperSets:            "upper_sets",
	UpperClears:          "upper_clears",
	WalkSteps:            "walk_steps",
	WalkCacheHits:        "walk_cache_hits",
	TLBFills:             "tlb_fills",
	ADUpdates:            "ad_updates",
	Invlpg:               "invlpg",
	LocalFullFlushes:     "local_full_flushes",
	TLBIOps:              "tlbi_ops",
	TLBSyncs:             "tlb_syncs",
	IPTEOps:              "ipte_ops",
	IDTEOps:              "idte_ops",
	TLBDemaps:            "tlb_demaps",
	HostSyscalls:         "host_syscalls",
	PTLocks:              "pt_locks",
	RmapLocks:            "rmap_locks",
	MmapLocks:            "mmap_locks",
	RefAtomics:           "ref_atomics",
	MapcountAtomics:      "mapcount_atomics",
	PageZeroes:           "page_zeroes",
	PageCopies:           "page_copies",
	FolioAllocs:          "folio_allocs",
	FolioFrees:           "folio_frees",
	VMAOps:               "vma_ops",
	Syscalls:             "syscalls",
	RSSUpdates:           "rss_updates",
	ContextSwitches:      "context_switches",
	IPIVMExits:           "ipi_vm_exits",
	FolioLookups:         "folio_lookups",
	CopyPTEIters:         "copy_pte_iters",
	PTEBatchCompares:     "pte_batch_compares",
	LineTransfers:        "line_transfers",
	SeqReads:             "seq_reads",
	RCUReadSections:      "rcu_read_sections",
	VMALocks:             "vma_locks",
	SPFAbortOdd:          "spf_abort_odd",
	SPFAbortUnmapped:     "spf_abort_unmapped",
	SPFAbortNoSpeculate:  "spf_abort_no_speculate",
	SPFAbortVMACopy:      "spf_abort_vma_copy",
	SPFAbortAccessError:  "spf_abort_access_error",
	SPFAbortPUD:          "spf_abort_pud",
	SPFAbortPMD:          "spf_abort_pmd",
	SPFAbortAnonVMA:      "spf_abort_anon_vma",
	SPFAbortMapSeq1:      "spf_abort_pte_map_lock_seq1",
	SPFAbortMapPMD:       "spf_abort_pte_map_lock_pmd",
	SPFAbortMapPTL:       "spf_abort_pte_map_lock_ptl",
	SPFAbortMapSeq2:      "spf_abort_pte_map_lock_seq2",
	VMALockMiss:          "vma_lock_miss",
	VMALockAbort:         "vma_lock_abort",
	SPFPTLFreed:          "spf_ptl_freed",
	StructPageInits:      "struct_page_inits",
	RemoteInvlpg:         "remote_invlpg",
	RemoteFullFlushes:    "remote_full_flushes",
	PTEBatchCalls:        "pte_batch_calls",
	RmapPageDups:         "rmap_page_dups",
	PageCacheLookups:     "page_cache_lookups",
	PageMkwriteBlocks:    "page_mkwrite_blocks",
	TLBIRemote:           "tlbi_remote",
	UserMisses:           "user_misses",
	MoveVMAs:             "move_vmas",
	PCPRefills:           "pcp_refills",
	BuddyPages:           "buddy_pages",
	LRUAddBatches:        "lru_add_batches",
	LRUAddPages:          "lru_add_pages",
	PageCounterCharges:   "page_counter_charges",
	PercpuFolds:          "percpu_folds",
}

// String returns the counter name of the event, as scripts spell it.
func (e Event) String() string {
	if e < NumEvents {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// machineWide lists the events that belong to the machine rather than to
// the address space that was current when they happened (SCENARIOS.md).
var machineWide = [NumEvents]bool{
	TLBFlushAll:          true,
	TLBFlushKernel:       true,
	VmemmapSplits:        true,
	VmemmapPagesFreed:    true,
	VmemmapPagesRestored: true,
}

// MachineWide reports whether scripts read the event's counter from the
// machine rather than from the current address space.
func (e Event) MachineWide() bool { return e < NumEvents && machineWide[e] }

// EventByName returns the event whose counter name is name.
func EventByName(name string) (Event, bool) {
	for e, n := range eventNames {
		if n == name {
			return Event(e), true
		}
	}
	return 0, false
}
