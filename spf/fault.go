package spf

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/spf/sched"
)

// maxFaults bounds the faults of one access before the model reports a
// bug instead of looping.
const maxFaults = 8

// Write stores val into the page at addr as the thread's CPU does it:
// TLB, walk, and on a fault the fault path of the Sim's mode, then the
// store. It returns an error wrapping EFAULT when no VMA allows the write
// (the thread would get SIGSEGV), ENOMEM when memory runs out.
func (t *Thread) Write(addr, val uint64) error {
	s := t.sim
	pfn, err := s.access(t, addr, mmu.Write)
	if err != nil {
		return err
	}
	s.m.Memory().SetContent(pfn, val)
	s.written[addr&^(s.m.Arch().PageSize()-1)] = val
	return nil
}

// Read loads the page at addr the same way.
func (t *Thread) Read(addr uint64) (uint64, error) {
	s := t.sim
	pfn, err := s.access(t, addr, mmu.Read)
	if err != nil {
		return 0, err
	}
	return s.m.Memory().Content(pfn), nil
}

// access translates addr for t, faulting until the translation allows
// the access.
func (s *Sim) access(t *Thread, addr uint64, kind mmu.AccessKind) (phys.PFN, error) {
	for try := 0; try < maxFaults; try++ {
		pfn, ok, err := s.mm.TryAccess(t.st.CPU, addr, kind)
		if err != nil {
			return 0, err
		}
		if ok {
			return pfn, nil
		}
		if err := s.fault(t, addr, kind); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("access %#x: still faulting after %d faults (model bug): %w", addr, maxFaults, mmu.EFAULT)
}

// fault handles one page fault by the Sim's mode, falling back to the
// classic path.
func (s *Sim) fault(t *Thread, addr uint64, kind mmu.AccessKind) error {
	s.charge(t)
	start := t.st.Clock
	s.mm.Meter().Note(cost.Faults, 1, addr, uint64(kind))
	s.faultCounters(t)
	var err error
	done := false
	switch s.opt.Mode {
	case mmu.SPFSeq:
		// Michel Lespinasse's v2 (28/35, "mm: disable speculative
		// faults for single threaded user space"): with mm_users 1 the
		// fault goes straight to mmap_lock, counting no attempt.
		if s.users > 1 {
			done, err = s.speculativeFault(t, addr, kind)
		}
	case mmu.SPFVMA:
		done, err = s.vmaFault(t, addr, kind)
	}
	if !done && err == nil {
		err = s.classicFault(t, addr, kind)
	}
	s.charge(t)
	if !s.faulted || start < s.firstFault {
		s.firstFault = start
	}
	if t.st.Clock > s.lastFault {
		s.lastFault = t.st.Clock
	}
	s.faulted = true
	if err == nil {
		s.faults++
	}
	return err
}

// classicFault is the fault under mmap_read_lock.
func (s *Sim) classicFault(t *Thread, addr uint64, kind mmu.AccessKind) error {
	s.downRead(t, &s.mmapLock)
	s.waitPTL(t, addr)
	allocs := s.mm.Meter().Count(cost.FolioAllocs)
	err := s.mm.FaultLocked(addr, kind)
	if err == nil {
		s.checkMapped(addr)
	}
	s.newAnonPages(t, s.mm.Meter().Count(cost.FolioAllocs)-allocs)
	s.upRead(t, &s.mmapLock)
	return err
}

// checkMapped records a violation if addr is mapped but no VMA holds it
// (a fault mapped into an unmapped VMA).
func (s *Sim) checkMapped(addr uint64) {
	if _, ok := s.mm.Translate(addr); ok && s.mm.FindVMA(addr) == nil {
		s.violate(addr, false, "fault mapped %#x outside every VMA", addr)
	}
}

// abort counts one speculative abort by reason; the fault then retries
// under mmap_lock.
func (s *Sim) abort(reason cost.Event) (bool, error) {
	s.mm.Meter().Add(reason, 1)
	s.mm.Meter().Add(cost.SPFRetries, 1)
	return false, nil
}

// readSeq is mmap_seq_read_start / the read in mmap_seq_read_check.
func (s *Sim) readSeq(t *Thread) uint64 {
	s.read(t, &s.mmLine)
	return s.mm.MmapSeq()
}

// walkBegin is speculative_page_walk_begin: an RCU read section (or IRQs
// off) that table freeing waits for.
func (s *Sim) walkBegin(t *Thread) {
	s.mm.Meter().Add(cost.RCUReadSections, 1)
	s.nextSection++
	s.sections[t.st.ID] = s.nextSection
}

// walkEnd is speculative_page_walk_end; RCU callbacks whose grace
// period it ends run.
func (s *Sim) walkEnd(t *Thread) {
	if s.sections[t.st.ID] == 0 {
		return
	}
	delete(s.sections, t.st.ID)
	s.sectionEnd[t.st.ID] = t.st.Clock
	s.reap(false)
}

// openSections returns the walk sections open now.
func (s *Sim) openSections() map[int]uint64 {
	w := make(map[int]uint64, len(s.sections))
	for id, n := range s.sections {
		w[id] = n
	}
	return w
}

// ended reports whether every section in w has ended.
func (s *Sim) ended(w map[int]uint64) bool {
	for id, n := range w {
		if s.sections[id] == n {
			return false
		}
	}
	return true
}

// reap frees the RCU-deferred tables whose grace period is over (all of
// them when final, at the end of a run, when no walker is left).
func (s *Sim) reap(final bool) {
	kept := s.pending[:0]
	for _, p := range s.pending {
		if final || s.ended(p.wait) {
			if err := s.mm.FreeDetached(p.tables); err != nil && s.err == nil {
				s.err = fmt.Errorf("spf (seed %d): rcu table free: %w", s.opt.Seed, err)
			}
			continue
		}
		kept = append(kept, p)
	}
	s.pending = kept
}

// speculativeFault is Michel Lespinasse's speculative anonymous fault.
// It reports true when it handled the fault; false (with a nil error)
// when it aborted and the fault must retry under mmap_lock.
func (s *Sim) speculativeFault(t *Thread, addr uint64, kind mmu.AccessKind) (bool, error) {
	mm := s.mm
	mm.Meter().Add(cost.SPFAttempts, 1)
	page := addr &^ (s.m.Arch().PageSize() - 1)

	// 1. mmap_seq_read_start: an odd count means a writer is in; never
	// spin, fall back.
	seq := s.readSeq(t)
	if seq&1 != 0 {
		return s.abort(cost.SPFAbortOdd)
	}
	s.yield(t, sched.SeqRead)

	// 2. Lockless find_vma under rcu_read_lock, copy, check.
	mm.Meter().Add(cost.RCUReadSections, 1)
	v := mm.FindVMA(addr)
	if v == nil {
		return s.abort(cost.SPFAbortUnmapped)
	}
	if !v.Anonymous() || v.Flags&(mmu.VMShared|mmu.VMHugeTLB|mmu.VMPFNMap) != 0 || v.FolioOrder != 0 {
		return s.abort(cost.SPFAbortNoSpeculate)
	}
	pvma := *v
	if s.readSeq(t) != seq {
		return s.abort(cost.SPFAbortVMACopy)
	}
	if !mmu.AccessAllowed(&pvma, kind) {
		return s.abort(cost.SPFAbortAccessError)
	}
	s.yield(t, sched.SeqRead)

	// 3. Walk the existing tables: no allocation, no huge pages.
	s.walkBegin(t)
	pt := mm.PageTable()
	tb := pt.Root()
	var pmdp pgtable.Ptr
	var origPMD pgtable.Entry
	for tb.Level() != pgtable.PTE {
		i := pt.IndexOf(tb, addr)
		mm.Meter().Add(cost.EntryReads, 1)
		child := tb.Child(i)
		if child == nil {
			// A pgd, p4d or pud entry none or huge (levels count from
			// the root down: above PMD is below it in value) aborts
			// as SPF_ABORT_PUD; a pmd entry none or huge as _PMD.
			s.walkEnd(t)
			if tb.Level() < pgtable.PMD {
				return s.abort(cost.SPFAbortPUD)
			}
			return s.abort(cost.SPFAbortPMD)
		}
		if child.Level() == pgtable.PTE {
			pmdp, origPMD = pgtable.Ptr{T: tb, I: i}, tb.Entry(i)
		}
		tb = child
		s.yield(t, sched.WalkLevel)
	}
	ptep := pgtable.Ptr{T: tb, I: pt.IndexOf(tb, addr)}
	mm.Meter().Add(cost.EntryReads, 1)
	fm := &s.m.Arch().Format
	if pte := ptep.Peek(); !fm.IsNone(pte, pgtable.PTE) {
		// A page is there: another thread's fault won, or this is a
		// write to a read-only page. v2's speculative COW (wp_page_copy
		// with the mmu_notifier_lock) is not modelled: such faults take
		// the locked path.
		// Only a fault the MMU would no longer take is spurious: where
		// the MMU sets no access or dirty bit itself (s390, sparc64,
		// UML), an old or clean present entry still faults until the
		// locked path's ptep_set_access_flags updates it.
		s.walkEnd(t)
		if fm.Present(pte, pgtable.PTE) && fm.HWReadable(pte, pgtable.PTE) &&
			(kind != mmu.Write || fm.Write(pte, pgtable.PTE) && fm.HWWritable(pte, pgtable.PTE)) {
			mm.Meter().Add(cost.SPFSuccess, 1)
			return true, nil
		}
		return s.abort(cost.SPFAbortNoSpeculate)
	}
	// 4. do_anonymous_page: VM_FAULT_RETRY when an anon_vma is needed;
	// else allocate and zero the page before the commit.
	if !pvma.AnonVMA {
		s.walkEnd(t)
		return s.abort(cost.SPFAbortAnonVMA)
	}
	if kind != mmu.Write {
		// Read faults map the zero page; not modelled speculatively.
		s.walkEnd(t)
		return s.abort(cost.SPFAbortNoSpeculate)
	}
	f, err := mm.PrepareAnonPage()
	if err != nil {
		s.walkEnd(t)
		return s.abort(cost.SPFAbortNoSpeculate)
	}
	s.held = append(s.held, f)
	s.allocAnonPage(t)
	release := func() {
		s.unhold(f)
		mm.ReleasePage(f)
		s.freeAnonPage(t)
		s.walkEnd(t)
	}
	s.yield(t, sched.Step)

	// 5. pte_map_lock: sequence, pmd_same, trylock, sequence again.
	if s.readSeq(t) != seq {
		release()
		return s.abort(cost.SPFAbortMapSeq1)
	}
	s.yield(t, sched.Commit)
	mm.Meter().Add(cost.EntryReads, 1)
	if pmdp.Peek() != origPMD {
		release()
		return s.abort(cost.SPFAbortMapPMD)
	}
	s.yield(t, sched.Commit)
	lk := tb.PTL()
	mm.Meter().Add(cost.PTLocks, 1)
	s.atomic(t, s.ptlLine(tb))
	if lk.Freed() {
		mm.Meter().Add(cost.SPFPTLFreed, 1)
		s.violate(page, true, "speculative fault at %#x: spin_trylock on the freed PTE lock of table pfn %#x (munmap freed the lock before the table; spf_ptl=%s)",
			page, tb.PFN(), s.opt.PTL)
		release()
		return s.abort(cost.SPFAbortMapPTL)
	}
	if !lk.TryLock(int32(t.st.ID)) {
		release()
		return s.abort(cost.SPFAbortMapPTL)
	}
	s.yield(t, sched.Commit)
	if s.readSeq(t) != seq {
		lk.Unlock(int32(t.st.ID))
		release()
		return s.abort(cost.SPFAbortMapSeq2)
	}
	// The PTE lock now serialises against writers: commit.
	if v.Detached {
		s.violate(page, false, "speculative fault at %#x committing into VMA %s after it was unmapped", page, v)
	}
	committed := mm.CommitAnonPage(&pvma, page, ptep, f)
	if !committed {
		mm.ReleasePage(f)
	}
	s.unhold(f)
	// Still under the PTE lock, as do_anonymous_page adds the page to
	// the LRU before set_pte_at.
	if committed {
		s.mapAnonPage(t)
	} else {
		s.freeAnonPage(t)
	}
	lk.Unlock(int32(t.st.ID))
	s.walkEnd(t)
	s.checkMapped(page)
	mm.Meter().Add(cost.SPFSuccess, 1)
	s.yield(t, sched.Release)
	return true, nil
}

// unhold forgets a prepared page.
func (s *Sim) unhold(f phys.Folio) {
	for i, h := range s.held {
		if h == f {
			s.held = append(s.held[:i], s.held[i+1:]...)
			return
		}
	}
}

// vmaFault is the per-VMA-lock fault of Linux 6.4: lock_vma_under_rcu,
// handle_mm_fault with FAULT_FLAG_VMA_LOCK, vma_end_read. It reports
// false when it fell back to mmap_lock.
//
// lock_vma_under_rcu counts VMA_LOCK_ABORT (vma_lock_abort) when it finds
// no VMA, one it may not lock (not anonymous, no anon_vma, write-locked,
// its lock taken by a writer, userfaultfd armed) or one that no longer
// holds the address;
// it counts VMA_LOCK_MISS (vma_lock_miss) when the VMA it locked was
// detached after the lookup found it, and then looks again. An access
// error falls back to mmap_lock without a lock_vma_under_rcu counter.
func (s *Sim) vmaFault(t *Thread, addr uint64, kind mmu.AccessKind) (bool, error) {
	mm := s.mm
	mm.Meter().Add(cost.SPFAttempts, 1)
	fallback := func() (bool, error) {
		mm.Meter().Add(cost.SPFRetries, 1)
		return false, nil
	}
	fail := func() (bool, error) {
		mm.Meter().Add(cost.VMALockAbort, 1)
		return fallback()
	}
	// rcu_read_lock.
	mm.Meter().Add(cost.RCUReadSections, 1)
retry:
	// mas_walk.
	v := mm.FindVMA(addr)
	if v == nil {
		return fail()
	}
	// v6.4: anonymous VMAs with an anon_vma only.
	if !v.Anonymous() || !v.AnonVMA {
		return fail()
	}
	// Under RCU the VMA found may be detached by a writer before it is
	// locked: the writer's vma_start_write finds no reader yet.
	s.yield(t, sched.Acquire)
	// vma_start_read: fail fast when write-locked in this mmap write
	// section, else down_read_trylock and check again.
	mm.Meter().Add(cost.SeqReads, 1)
	s.read(t, &s.mmLine)
	if mm.VMAWriteLocked(v) {
		return fail()
	}
	l := s.vmaLockOf(v)
	mm.Meter().Add(cost.VMALocks, 1)
	s.atomic(t, &l.line)
	if l.writing {
		return fail()
	}
	l.readers++
	unlock := func() {
		mm.Meter().Add(cost.VMALocks, 1)
		s.atomic(t, &l.line)
		l.readers--
		if l.readers == 0 && t.st.Clock > l.releasedAt {
			l.releasedAt = t.st.Clock
		}
	}
	s.yield(t, sched.Acquire)
	mm.Meter().Add(cost.SeqReads, 1)
	// userfaultfd_armed: its handler may drop mmap_lock, which a
	// per-VMA-lock fault does not hold (6.4 falls back).
	if mm.VMAWriteLocked(v) || v.Flags&mmu.VMUffdWP != 0 || !v.Contains(addr) {
		unlock()
		return fail()
	}
	// The VMA was isolated after the lookup found it: count a miss and
	// look again (the area was replaced with another one).
	if v.Detached {
		unlock()
		mm.Meter().Add(cost.VMALockMiss, 1)
		goto retry
	}
	// rcu_read_unlock; access_error falls back to the mmap_lock path.
	if !mmu.AccessAllowed(v, kind) {
		unlock()
		return fallback()
	}
	s.waitPTL(t, addr)
	allocs := mm.Meter().Count(cost.FolioAllocs)
	err := mm.HandleVMAFault(&mmu.Fault{VMA: v, Addr: addr &^ (s.m.Arch().PageSize() - 1), Kind: kind})
	s.newAnonPages(t, mm.Meter().Count(cost.FolioAllocs)-allocs)
	if err == nil {
		s.checkMapped(addr)
		if v.Detached {
			s.violate(addr, false, "per-VMA-lock fault at %#x mapped into VMA %s after it was unmapped", addr, v)
		}
	}
	s.yield(t, sched.Step)
	unlock()
	mm.Meter().Add(cost.SPFSuccess, 1)
	s.yield(t, sched.Release)
	return true, err
}
