// Package vmemmap is Linux's hugetlb pool and its HugeTLB Vmemmap
// Optimisation (HVO, mm/hugetlb_vmemmap.c) on a simulated machine.
//
// A Pool holds the free hugetlb folios of one size (an hstate): Alloc and
// Free grow and shrink it by N folios in one batch, as one write to
// nr_hugepages does. Every struct page the allocator writes is written
// through the machine's vmemmap with a kernel access (TLB, walk, global
// entries), so the CPUs' TLBs hold kernel vmemmap translations the way
// real CPUs do.
//
// HVO frees the vmemmap pages that only hold identical tail struct pages:
// of the 8 vmemmap pages of a 2 MiB folio (4 KiB pages, 64-byte struct
// page) it keeps one, the head, and remaps the other 7 read-only onto it;
// a 1 GiB folio keeps 1 of 4096. The vmemmap is mapped by PMD leaves, so a
// leaf is first split into a PTE table (vmemmap_split_pmd, which needs a
// page and can fail with ENOMEM; splits are never merged back). Freeing a
// folio back to the buddy allocator first allocates its vmemmap pages
// again (vmemmap_remap_alloc); when that fails with ENOMEM the folio stays
// in the pool, as in Linux.
//
// Two flows, chosen by the hvo_batch knob:
//
//   - batched (Linux 6.7 on, Kravetz and Martins): split the vmemmap PMDs
//     of every folio of the batch (stop at the first ENOMEM), one
//     flush_tlb_all, remap every folio without flushing (on ENOMEM with
//     pages pending: flush_tlb_all, free them, retry that folio once), one
//     flush_tlb_all, free the pages. The optimised flag is set before the
//     remap so the new head page copies it. Restore is batched the same
//     way, with one flush_tlb_all if anything was restored.
//   - unbatched (before 6.7): per folio, the split flushes its PMD range
//     and the remap flushes the folio's vmemmap range: up to two kernel
//     flushes per folio, each an IPI to every other CPU on x86.
//
// HVO runs only where the arch selects ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP
// (arch.Caps.OptimizeVmemmap) and the hvo knob is on
// (vm.hugetlb_optimize_vmemmap; off by default as upstream's Kconfig). A
// size whose vmemmap fits in one page (arm64 with 64 KiB pages and 2 MiB
// folios) or a struct page whose size is not a power of two has nothing
// to optimise. On arm64 the split and the remap store over live entries:
// that breaks break-before-make, which is why Linux disabled HVO on arm64
// in 6.3 (commit 060a2c92d1b6); with BBML2 the split would be allowed but
// the remap still changes live output addresses. A TLB policy that checks
// break-before-make reports both, and Machine.Check with it.
//
// Counters (machine-wide): vmemmap_splits, vmemmap_pages_freed (net pages
// given back) and vmemmap_pages_restored. The work is counted on the
// machine's meter (allocations, frees, struct page writes, copies) and on
// init_mm's (entry writes, table allocations, walks); flushes on the
// kernel meter by the TLB policy.
//
// The model is deterministic: the same calls give the same frames, counts
// and TLB contents on every run.
package vmemmap
