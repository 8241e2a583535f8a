package spf

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/spf/sched"
)

// Mmap maps [addr, addr+length) as a writer thread does: mmap_write_lock
// (waiting for the readers in, and holding new ones back), the mapping
// (mmu's Mmap, MAP_FIXED_NOREPLACE semantics), mmap_write_unlock. Errors
// are mmu's.
func (t *Thread) Mmap(addr, length uint64, prot mmu.Prot, fl mmu.MapFlags) error {
	s := t.sim
	s.downWrite(t, &s.mmapLock)
	s.yield(t, sched.Step)
	err := s.mm.Mmap(addr, length, prot, fl)
	s.upWrite(t, &s.mmapLock)
	return err
}

// Munmap unmaps [addr, addr+length) as Linux 5.17-6.x does from a
// writer thread: under mmap_write_lock the VMAs are split and
// write-locked (vma_start_write waits for their per-VMA-lock readers);
// then, at one step, pages are zapped (waiting for any PTE lock a
// speculative commit holds), tables detached, the TLBs flushed and the
// VMAs removed; the lock is downgraded to read; and the detached tables
// are freed as the Sim's PTL model says: after the walkers with IRQs off
// have left (table_lifetime, free_early — where each PTE table's lock was
// already freed at detach time), or by RCU once their read sections end,
// without waiting (rcu). EINVAL for an unaligned address or a zero length.
func (t *Thread) Munmap(addr, length uint64) error {
	s := t.sim
	mm := s.mm
	ps := s.m.Arch().PageSize()
	if addr&(ps-1) != 0 || length == 0 || addr+length < addr {
		return fmt.Errorf("munmap %#x+%#x: %w", addr, length, mmu.EINVAL)
	}
	end := addr + (length+ps-1)&^(ps-1)
	mm.Meter().Add(cost.Syscalls, 1)
	s.downWrite(t, &s.mmapLock)
	s.vmaStartWriteAll(t, mm.VMAsIn(addr, end))
	if err := mm.SplitEnds(addr, end); err != nil {
		s.upWrite(t, &s.mmapLock)
		return fmt.Errorf("munmap %#x: %w", addr, err)
	}
	s.vmaStartWriteAll(t, mm.VMAsIn(addr, end))
	s.yield(t, sched.Step)
	s.waitPTLRange(t, addr, end)
	walkers := s.openSections()
	tables := mm.UnmapDetach(addr, end, s.opt.PTL == mmu.PTLFreeEarly)
	s.forget(addr, end)
	// mmap_write_downgrade: the sequence count goes even, VMA write locks
	// go, and readers may enter while the tables are freed.
	mm.MmapWriteUnlock()
	s.atomic(t, &s.mmLine)
	s.mmapLock.writer = 0
	s.mmapLock.readers++
	if t.st.Clock > s.mmapLock.releasedAt {
		s.mmapLock.releasedAt = t.st.Clock
	}
	s.yield(t, sched.Step)
	if len(tables) > 0 {
		switch s.opt.PTL {
		case mmu.PTLRCU:
			s.pending = append(s.pending, pendingFree{tables: tables, wait: walkers})
			s.reap(false)
		default:
			// tlb_flush_mmu's IPI waits for every CPU with IRQs off.
			s.block(t, func() bool { return s.ended(walkers) })
			for id := range walkers {
				t.st.WaitUntil(s.sectionEnd[id])
			}
			if err := mm.FreeDetached(tables); err != nil {
				t.Fail(err)
			}
		}
	}
	s.upRead(t, &s.mmapLock)
	return nil
}

// vmaStartWriteAll write-locks vs for per-VMA locking (vma_start_write),
// waiting for their readers; kernels without per-VMA locks (the other
// modes) have no such step.
func (s *Sim) vmaStartWriteAll(t *Thread, vs ...[]*mmu.VMA) {
	if s.opt.Mode != mmu.SPFVMA {
		return
	}
	for _, l := range vs {
		for _, v := range l {
			if v != nil {
				s.vmaStartWrite(t, v)
			}
		}
	}
}

// MmapAnon maps length bytes of private anonymous memory with prot where
// the kernel chooses, as mmap(NULL, ...) does: the highest free range
// below top (top-down, vm_unmapped_area), which lies next to the last
// area mapped there, so that the new area merges with a compatible
// neighbour (vma_merge). Under per-VMA locks the neighbours it expands or
// removes are write-locked first (vma_start_write, waiting for their
// readers). It returns the address; ENOMEM when no range is free,
// EINVAL for a zero or unaligned length.
func (t *Thread) MmapAnon(length uint64, prot mmu.Prot, top uint64) (uint64, error) {
	return t.mmapAnon(length, 0, prot, top)
}

// mmapAnon is MmapAnon with a PROT_NONE guard of guard bytes mapped
// right below the area in the same write section (as pthread stacks
// and bionic's signal stacks have: mmap, then mprotect of the lowest
// pages), so that the area never merges with what lies below it.
func (t *Thread) mmapAnon(length, guard uint64, prot mmu.Prot, top uint64) (uint64, error) {
	s := t.sim
	mm := s.mm
	ps := s.m.Arch().PageSize()
	if length == 0 || length&(ps-1) != 0 || guard&(ps-1) != 0 {
		return 0, fmt.Errorf("mmap NULL+%#x: %w", length, mmu.EINVAL)
	}
	s.downWrite(t, &s.mmapLock)
	lo, ok := mm.UnmappedAreaTopDown(length+guard, s.m.Arch().Caps.MmapMinAddr+ps, top)
	if !ok {
		s.upWrite(t, &s.mmapLock)
		return 0, fmt.Errorf("mmap NULL+%#x below %#x: no free range: %w", length, top, mmu.ENOMEM)
	}
	addr := lo + guard
	prev, next := mm.AnonMergeTargets(addr, length, prot)
	if guard > 0 {
		prev = nil
	}
	s.vmaStartWriteAll(t, []*mmu.VMA{prev, next})
	s.yield(t, sched.Step)
	var err error
	if guard > 0 {
		err = mm.Mmap(lo, guard, 0, mmu.MapFlags{})
	}
	if err == nil {
		err = mm.Mmap(addr, length, prot, mmu.MapFlags{})
	}
	s.upWrite(t, &s.mmapLock)
	return addr, err
}
