// Package spf models page faults that do not take mmap_lock: Michel
// Lespinasse's speculative page faults (v2, 2022, never merged) and the
// per-VMA locks that landed in Linux 6.4 instead, against the classic
// fault under mmap_lock, with simulated threads interleaved by the
// deterministic scheduler of package sched.
//
// A Sim runs simulated threads on one address space of an mmu.Machine.
// Each thread runs on its own simulated CPU with its own clock; the work
// a thread does is counted on the machine's meters and priced with the
// arch's one cost table, and the time it waits (for a lock, for a cache
// line another CPU holds) moves its clock forward. Three fault paths:
//
//   - off (mmu.SPFOff): mmap_read_lock, find_vma, handle_mm_fault,
//     mmap_read_unlock. mmap_lock is a reader/writer semaphore in
//     simulated time, fair to writers (readers queue behind a waiting
//     writer and sleep), and its count word is one cache line that every
//     faulting CPU bounces.
//   - seq (mmu.SPFSeq), after Michel Lespinasse's v2: read the per-mm
//     sequence count (odd: abort, never spin), find and copy the VMA
//     locklessly and check the count, walk the existing tables without
//     allocating (abort at an empty or huge pud or pmd), allocate and zero
//     the page, then commit as pte_map_lock does — count, pmd_same, PTE
//     lock trylock (never a blocking spin), count again — and set the PTE.
//     Any abort counts its reason and falls back to the classic fault.
//     As in v2, an mm with one user (one thread alive in the Sim) does
//     not speculate: its faults take mmap_lock and count no attempt.
//   - vma (mmu.SPFVMA), as in Linux 6.4: lock_vma_under_rcu (lockless
//     lookup; anonymous VMAs with an anon_vma only; vma_start_read fails
//     when vm_lock_seq equals mm_lock_seq, and re-checks after taking the
//     VMA's read lock), the fault under the VMA lock, vma_end_read; any
//     failure falls back to mmap_lock. Writers vma_start_write every VMA
//     they change, waiting for its readers; mmap_write_unlock releases
//     them all by bumping mm_lock_seq.
//
// Shared resources. Besides mmap_lock (or the VMA's lock) and the PTE
// table's lock, every anonymous write fault touches state that all
// CPUs share, and Linux amortises each over a per-CPU batch (see
// shared.go; batch sizes of Linux 5.12-5.17, the kernels of the
// published pft runs):
//
//   - zone->lock, taken by rmqueue_bulk to refill a CPU's page list with
//     pcp->batch pages (zone_batchsize(): 63 for a zone of 1 GiB or
//     more): the lock word's line, the free lists' line and the work of
//     moving the pages (pcp_refills, buddy_pages), all while others wait;
//   - the memcg page counters, charged MEMCG_CHARGE_BATCH (32) pages at a
//     time on the cgroup and each ancestor (page_counter_charges; four
//     levels, a systemd login session's depth);
//   - lruvec->lru_lock, taken by __pagevec_lru_add every PAGEVEC_SIZE (15)
//     pages (lru_add_batches, lru_add_pages), with the lruvec's lists;
//   - per-CPU counters folded into shared atomics (percpu_folds): vmstat
//     items past stat_threshold (calculate_normal_threshold), memcg
//     statistics and the PGFAULT event past MEMCG_CHARGE_BATCH, a task's
//     RSS counts every TASK_RSS_EVENTS_THRESH (64) faults.
//
// Each shared line is a line in the MESI sense (transfers serialise);
// each lock is a line held for its critical section, waiters spinning.
// All three fault paths pay them, so they bound the speculative path's
// throughput too. mmap_lock's writers spin on a running writer owner
// (rwsem optimistic spinning) and sleep behind readers; readers sleep.
//
// Workloads: PFT is Linux's pft (threads faulting slices of one mapped
// range while a writer maps and unmaps); MapFault is Suren
// Baghdasaryan's spf_test and the app-launch shape of the per-VMA-lock
// series: threads mapping their own areas with mmap(NULL) (placed next
// to each other top-down, merging as vma_merge would unless a guard page
// separates them) and faulting them, and optionally a working set in a
// shared VMA. Under per-VMA locks a mapping that merges write-locks the
// VMA it expands (vma_start_write), waiting for that VMA's readers.
//
// Counters: spf_attempts counts speculative attempts (in vma mode, calls
// of lock_vma_under_rcu), spf_success those that completed without
// mmap_lock, spf_retries those that fell back to it; the spf_abort_*
// counters give the reasons in seq mode; in vma mode vma_lock_abort counts
// lock_vma_under_rcu's fallbacks (no VMA, not lockable) and vma_lock_miss
// the VMAs it locked but found detached, after which it looks again, as
// Linux counts VMA_LOCK_ABORT and VMA_LOCK_MISS.
//
// David Hildenbrand's objection is a switch (mmu.SPFPTLModel, `config
// spf_ptl=`): with free_early, munmap's free_pte_range frees each PTE
// table's lock at once while the table page waits for the TLB flush, so a
// speculative commit whose trylock comes after it touches a freed lock;
// the Sim records that as a violation that Machine.Check reports, with
// the schedule's seed. With table_lifetime (the lock dies with the table,
// after an IPI that waits for walkers with IRQs off) or rcu (tables and
// locks freed after the walkers' RCU read sections end), the same
// schedules run clean.
//
// Everything is deterministic: the same machine, options and seed give
// the same schedule, counters and times, byte for byte.
package spf
