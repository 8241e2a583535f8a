// Package mremap implements Linux's mremap system call on the simulated
// machine, with the page-table moving that makes large moves cheap.
//
// Mremap follows mm/mremap.c as it is today (Linux 6.17): shrink in place,
// grow in place when the bytes after the mapping are free, otherwise move
// (MREMAP_MAYMOVE), to a fixed address (MREMAP_FIXED, which may move several
// VMAs at once when the size is unchanged) or leaving the old mapping empty
// behind (MREMAP_DONTUNMAP). Every error Linux returns for bad arguments is
// found before anything changes; running out of memory for a page table in
// the middle of a move moves back what was moved, unmaps the new range and
// returns ENOMEM with the source intact.
//
// MovePageTables is move_page_tables. Per extent it decides, in Linux's
// order, between moving a huge PUD, a whole PMD table (one PUD entry), a
// huge PMD, a whole PTE table (one PMD entry), and moving the PTEs one by
// one (move_ptes). Whole-table moves happen only where the arch selects
// HAVE_MOVE_PMD / HAVE_MOVE_PUD (x86-64 and arm64; the `move_pmd` and
// `move_pud` knobs can switch them off there and refuse to switch them on
// elsewhere), when the extent is a whole entry on both sides, and when the
// destination entry is empty; a non-empty destination falls back to the
// level below and is never overwritten. The per-PTE path is the slow twin
// of the table moves: both end with the same translations, contents,
// refcounts, mapcounts and RSS, which the tests check on every arch.
//
// What the review of the 2018 patch asked for is here: s390 never moves
// tables (a live segment entry must not be cleared with a plain store);
// sparc64 moves PTE by PTE so that move_pte can flush the D-cache when
// virtual address bit 13, the cache colour, changes (dcache_flushes);
// UML with two levels has no PMD to move; table moves flush the old range,
// which also drops cached walk entries that point at the moved table.
//
// The knob mremap_latency_limit=N models the kernel before 4.18: move_ptes
// handles at most N pages at a time and flushes each such extent when it
// moved a dirty PTE, and table moves leave one flush for the end. That is
// why the 2018 seed measured 500x on arm64 while the merged patch reported
// 20x on x86 (see examples/mremap).
//
// Counters: pte_moves, pmd_moves (PTE tables moved whole), pud_moves (PMD
// tables moved whole, and huge PUDs), huge_pmd_moves, dcache_flushes, plus
// the primitives every path counts (entry reads and writes, page-table and
// rmap locks, table allocations, TLB flushes).
//
// The package is deterministic and drives the model from one goroutine, as
// every package of the simulator does.
package mremap
