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
//   - vma (mmu.SPFVMA), as in Linux 6.4: lock_vma_under_rcu (lockless
//     lookup; anonymous VMAs with an anon_vma only; vma_start_read fails
//     when vm_lock_seq equals mm_lock_seq, and re-checks after taking the
//     VMA's read lock), the fault under the VMA lock, vma_end_read; any
//     failure falls back to mmap_lock. Writers vma_start_write every VMA
//     they change, waiting for its readers; mmap_write_unlock releases
//     them all by bumping mm_lock_seq.
//
// Counters: spf_attempts counts speculative attempts (in vma mode, calls
// of lock_vma_under_rcu), spf_success those that completed without
// mmap_lock, spf_retries those that fell back to it; the spf_abort_*
// counters give the reasons in seq mode, vma_lock_miss and vma_lock_abort
// in vma mode.
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
