package spf

import (
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/spf/sched"
)

// line is one cache line that several CPUs touch, in the MESI manner: an
// atomic needs the line exclusive, so it waits for and pays a transfer
// when another CPU wrote it last or shares it; transfers of one line are
// serialised (the line is in flight to one CPU at a time), so the waiting
// grows with the number of CPUs hammering it. A read of a line another
// CPU wrote since this CPU last read it pays a transfer too, but reads do
// not serialise.
type line struct {
	// owner is the CPU holding the line exclusively, plus one; 0 when it
	// is shared or nobody has it.
	owner int
	// freeAt is when the last transfer of the line completes (ps).
	freeAt uint64
	// ver counts writes; seen records the version each CPU last had.
	ver  uint64
	seen []uint64
}

func newLine(cpus int) line { return line{seen: make([]uint64, cpus)} }

// atomic performs a locked read-modify-write of l by t.
func (s *Sim) atomic(t *Thread, l *line) {
	cpu := t.st.CPU
	// Let every thread whose clock is earlier touch the line first, so
	// that the line moves in simulated-time order.
	s.yield(t, sched.Acquire)
	if l.owner != cpu+1 {
		s.charge(t)
		t.st.WaitUntil(l.freeAt)
		s.mm.Meter().Add(cost.LineTransfers, 1)
		s.charge(t)
		l.freeAt = t.st.Clock
		l.owner = cpu + 1
	}
	l.ver++
	l.seen[cpu] = l.ver
}

// read reads l (a sequence count): a hit when this CPU has the current
// version, else a transfer that leaves the line shared.
func (s *Sim) read(t *Thread, l *line) {
	cpu := t.st.CPU
	s.mm.Meter().Add(cost.SeqReads, 1)
	if l.seen[cpu] != l.ver {
		s.mm.Meter().Add(cost.LineTransfers, 1)
		l.seen[cpu] = l.ver
		if l.owner != cpu+1 {
			l.owner = 0
		}
	}
}

// rwsem is a reader/writer semaphore in simulated time (struct
// rw_semaphore): fair to writers, so readers arriving while a writer
// waits queue behind it; waiters sleep and are woken, paying a context
// switch out and one back in.
type rwsem struct {
	// readers holds the readers in; writer the writing thread's ID.
	readers int
	writer  int
	// waitingWriters counts writers queued.
	waitingWriters int
	// releasedAt is when the lock last became free for a waiter (ps).
	releasedAt uint64
	// line is the count word's cache line.
	line line
}

// sleep accounts a waiter that slept and was woken.
func (s *Sim) sleep(t *Thread, at uint64) {
	t.st.WaitUntil(at)
	s.mm.Meter().Add(cost.ContextSwitches, 2)
	s.charge(t)
}

// downRead is mmap_read_lock.
func (s *Sim) downRead(t *Thread, l *rwsem) {
	s.yield(t, sched.Acquire)
	s.mm.Meter().Add(cost.MmapLocks, 1)
	s.atomic(t, &l.line)
	if s.block(t, func() bool { return l.writer == 0 && l.waitingWriters == 0 }) {
		s.sleep(t, l.releasedAt)
	}
	l.readers++
}

// upRead is mmap_read_unlock.
func (s *Sim) upRead(t *Thread, l *rwsem) {
	s.atomic(t, &l.line)
	l.readers--
	if l.readers == 0 && t.st.Clock > l.releasedAt {
		l.releasedAt = t.st.Clock
	}
	s.yield(t, sched.Release)
}

// downWrite is mmap_write_lock: the sequence count goes odd. A writer
// that finds another writer running in the lock spins on it
// (rwsem_optimistic_spin, CONFIG_RWSEM_SPIN_ON_OWNER) and takes the lock
// when it is released, without sleeping; one that finds readers in
// sleeps until they leave.
func (s *Sim) downWrite(t *Thread, l *rwsem) {
	s.yield(t, sched.Acquire)
	s.atomic(t, &l.line)
	if l.readers != 0 || l.writer != 0 {
		spin := l.readers == 0
		l.waitingWriters++
		s.block(t, func() bool { return l.readers == 0 && l.writer == 0 })
		l.waitingWriters--
		l.writer = t.st.ID
		if spin {
			t.st.WaitUntil(l.releasedAt)
			s.atomic(t, &l.line)
		} else {
			s.sleep(t, l.releasedAt)
		}
	}
	l.writer = t.st.ID
	s.mm.MmapWriteLock() // counts mmap_locks

	s.atomic(t, &s.mmLine)
}

// upWrite is mmap_write_unlock: the sequence count goes even and
// mm_lock_seq moves on, releasing every VMA write lock.
func (s *Sim) upWrite(t *Thread, l *rwsem) {
	s.mm.MmapWriteUnlock()
	s.atomic(t, &s.mmLine)
	s.atomic(t, &l.line)
	l.writer = 0
	if t.st.Clock > l.releasedAt {
		l.releasedAt = t.st.Clock
	}
	s.yield(t, sched.Release)
}

// vmaLock is a VMA's lock (struct vma_lock, its own cache line in 6.4).
type vmaLock struct {
	// readers counts the faults holding it for reading.
	readers int
	// writing is set while vma_start_write holds it (down_write).
	writing bool
	// releasedAt is when the last reader left (ps).
	releasedAt uint64
	// line is the lock's cache line.
	line line
}

// vmaLockOf returns v's lock.
func (s *Sim) vmaLockOf(v *mmu.VMA) *vmaLock {
	l := s.vmaLocks[v]
	if l == nil {
		l = &vmaLock{line: newLine(s.m.CPUs())}
		s.vmaLocks[v] = l
	}
	return l
}

// vmaStartWrite is vma_start_write: down_write on the VMA's lock, which
// waits for its readers, then vm_lock_seq = mm_lock_seq and up_write.
// Precondition: t holds mmap_lock for writing.
func (s *Sim) vmaStartWrite(t *Thread, v *mmu.VMA) {
	if s.mm.VMAWriteLocked(v) {
		return
	}
	l := s.vmaLockOf(v)
	s.mm.Meter().Add(cost.VMALocks, 1)
	s.atomic(t, &l.line)
	l.writing = true
	if s.block(t, func() bool { return l.readers == 0 }) {
		s.sleep(t, l.releasedAt)
	}
	s.mm.VMAStartWrite(v)
	l.writing = false
}

// ptlLine returns the cache line of table tb's lock.
func (s *Sim) ptlLine(tb *pgtable.Table) *line {
	l := s.ptl[tb]
	if l == nil {
		nl := newLine(s.m.CPUs())
		l = &nl
		s.ptl[tb] = l
	}
	return l
}

// pteTable returns the PTE table that maps addr now, or nil, without
// counting (the caller counts the work it models).
func (s *Sim) pteTable(addr uint64) *pgtable.Table {
	pt := s.mm.PageTable()
	tb := pt.Root()
	for tb.Level() != pgtable.PTE {
		c := tb.Child(pt.IndexOf(tb, addr))
		if c == nil {
			return nil
		}
		tb = c
	}
	return tb
}

// waitPTL makes t wait while another thread holds the lock of the PTE
// table that maps addr (spin_lock), and charges the lock word's line.
// The handler that follows takes and drops the lock within one step.
func (s *Sim) waitPTL(t *Thread, addr uint64) {
	tb := s.pteTable(addr)
	if tb == nil {
		return
	}
	lk := tb.PTL()
	s.atomic(t, s.ptlLine(tb))
	s.block(t, func() bool { return !lk.Held() || lk.Freed() })
}

// waitPTLRange makes t wait until no other thread holds the lock of a
// PTE table mapping part of [start, end) (zap_pte_range's spin_lock).
func (s *Sim) waitPTLRange(t *Thread, start, end uint64) {
	pt := s.mm.PageTable()
	var held []*pgtable.Lock
	pt.WalkTables(func(tv pgtable.TableVisit) bool {
		tb := tv.Table
		if tb.Level() == pgtable.PTE && tb.PTL().Held() {
			span := uint64(tb.Len()) * pt.EntrySize(tb)
			if tv.Base < end && tv.Base+span > start {
				held = append(held, tb.PTL())
			}
		}
		return true
	})
	for _, lk := range held {
		s.block(t, func() bool { return !lk.Held() })
	}
}
