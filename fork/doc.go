// Package fork copies an address space the way Linux's fork() does:
// dup_mmap copies the VMAs and copy_page_range their page tables, level by
// level, sharing every page with the child copy-on-write.
//
// What it models, from mm/memory.c, mm/huge_memory.c and dup_mmap:
//
//   - VMAs: VM_DONTCOPY ones are skipped, VM_WIPEONFORK ones are created
//     empty, shared file and shmem VMAs share their file. Page tables are
//     copied only where a page fault could not rebuild them
//     (vma_needs_copy: the VMA has anonymous pages, is a PFN map, or the
//     child's VMA is uffd-wp); elsewhere the child refaults.
//   - Huge PMDs are shared whole (copy_huge_pmd): one reference and one
//     entire mapping, write-protected in both, with a PTE table deposited
//     in the child. A THP that may be pinned is split and copied at the
//     PTE level instead.
//   - PTE tables (copy_pte_range): the destination lock, then the source
//     lock, lazy-MMU mode, one loop over the entries. Present entries go
//     through copy_present_ptes, which batches a run of PTEs mapping
//     consecutive pages of one large folio (folio_pte_batch: cut at the
//     PMD, the range or the folio end; young ignored; dirty respected for
//     private mappings; soft-dirty respected where tracking is on; write
//     ignored and merged). A batch takes all its references first, then
//     duplicates the anonymous rmap all-or-nothing, so refcount >=
//     mapcount at every step ("Make sure your refcount >= mapcount",
//     David Hildenbrand's review).
//   - Pinned pages: an exclusive anonymous page that may be pinned for
//     DMA in an mm that has pinned (MMF_HAS_PINNED) is copied for the
//     child at once, never shared: the batch fails with EAGAIN, the loop
//     drops its locks, preallocates an order-0 folio and retries at the
//     same address unbatched; copy_present_page then copies the content
//     into a new exclusive page, writable and dirty in the child. The
//     parent keeps its page, exclusive and writable.
//   - PTE rules (__copy_present_ptes): a COW mapping with a writable
//     (merged) PTE write-protects the parent's whole batch with
//     wrprotect_ptes and the child's copy; a shared mapping's child is
//     clean; the child is always old; its uffd-wp bit is cleared unless
//     its VMA is uffd-wp; set_ptes writes the batch. RSS is added to the
//     child once per copy_pte_range pass.
//   - TLB: no flush during the copy (the write-protection of live parent
//     PTEs is made safe by the one flush_tlb_mm of the parent at the end
//     of dup_mmap, before mmap_lock is dropped). A pinned THP's split is
//     the exception Linux has too.
//   - ENOMEM at any table or folio allocation: the half-copied child is
//     torn down (Linux's exit_mmap of the new mm) and nothing leaks; the
//     parent keeps the write-protection already applied and is flushed,
//     as in Linux.
//
// The per-PTE slow twin (config fork_batch=off, Linux before 6.9) copies
// one PTE at a time with a reference and an rmap dup each; both paths end
// in the same state, only the costs differ. arm64's contiguous PTEs work
// through the public PTE functions (ptep_get, wrprotect_ptes, set_ptes,
// pte_batch_hint): batched, full blocks stay folded in the parent and are
// created folded in the child; one PTE at a time, every block unfolds.
//
// Every step is charged to the parent (fork runs in the parent's task):
// the child starts with all counters at zero. Counters: fork_batches
// (copy steps of more than one PTE), fork_ptes (PTEs copied),
// fork_page_copies (pages copied at once because they may be pinned).
package fork
