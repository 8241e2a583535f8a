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
	for _, v := range mm.VMAsIn(addr, end) {
		s.vmaStartWrite(t, v)
	}
	if err := mm.SplitEnds(addr, end); err != nil {
		s.upWrite(t, &s.mmapLock)
		return fmt.Errorf("munmap %#x: %w", addr, err)
	}
	for _, v := range mm.VMAsIn(addr, end) {
		s.vmaStartWrite(t, v)
	}
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
