// Package mmu is the simulated machine that the Linux features operate on:
// physical memory with folios and a page cache, address spaces with VMAs
// and page tables, CPUs with TLBs, and the path every access takes — TLB
// lookup, hardware walk, page fault, fault handler — as Linux and the
// arch's hardware take it.
//
// A Machine owns the memory, the TLBs, the kernel address space (init_mm,
// with a direct map and a vmemmap of struct pages) and the user address
// spaces (MM). Operations on an MM follow the system calls they model:
// Mmap (MAP_FIXED_NOREPLACE semantics), Munmap, Mprotect, Access (a load
// or store by one CPU), Pin and Unpin (FOLL_PIN). The feature packages
// (mremap, fork, vmemmap, spf) build on the exported pieces: VMA editing,
// the rmap helpers, zap and free_pgtables through an mmu_gather.
//
// Every primitive is counted on a cost.Meter: work for an address space
// on its meter, kernel work on the machine's. SimNS turns all counts into
// simulated time with the arch's one cost table.
//
// Errors are Linux's: EINVAL for a bad request, ENOMEM when memory runs
// out or (mprotect) when the range is not mapped, EEXIST when a fixed
// mapping would replace another, EFAULT for an access no VMA allows. The
// system calls of an MM (Mmap, Munmap, Mprotect, Pin, Unpin) fail with
// EINVAL on init_mm and on an address space torn down. On an error the
// model is left as it was. Check audits the whole machine: page
// tables, TLBs, refcounts against mapcounts, mapcounts and RSS against
// what the tables map, and leaked tables or frames.
//
// The model is deterministic and single-goroutine: same calls, same
// results and counts, byte for byte.
package mmu
