package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// maxFaultRetries bounds how often one access may fault before the model
// reports a bug instead of looping.
const maxFaultRetries = 4

// Access performs one memory access by CPU cpu at addr, as the hardware
// and kernel do it: TLB lookup; on a miss a hardware walk that fills the
// TLB and sets the access and dirty bits where the MMU does so; on a
// missing or insufficient translation a page fault and its handler, then
// a retry. It returns the frame reached. Errors: EINVAL for a bad CPU or
// access kind or an address space torn down, EFAULT for an access no
// mapping allows, ENOMEM when a fault runs out of memory.
func (mm *MM) Access(cpu int, addr uint64, kind AccessKind) (phys.PFN, error) {
	if cpu < 0 || cpu >= mm.m.cpus {
		return 0, fmt.Errorf("access %#x: cpu %d of %d: %w", addr, cpu, mm.m.cpus, EINVAL)
	}
	if mm.dead {
		return 0, fmt.Errorf("access %#x: address space %s is gone: %w", addr, mm.name, EINVAL)
	}
	if kind > Exec {
		return 0, fmt.Errorf("access %#x: unknown access kind %d: %w", addr, kind, EINVAL)
	}
	c := mm.m.tlb.CPU(cpu)
	// The faults and flushes below run on this CPU.
	if err := mm.m.tlb.SetLocalCPU(cpu); err != nil {
		return 0, fmt.Errorf("access %#x: %w", addr, err)
	}
	// Kernel accesses use global translations from whatever mm the CPU
	// runs; user accesses run the mm first (switch_mm).
	if !mm.kernel && c.Current() != mm.tlb {
		c.Switch(mm.tlb)
	}
	for try := 0; try < maxFaultRetries; try++ {
		if pfn, ok := mm.translate(c, addr, kind); ok {
			return pfn, nil
		}
		if err := mm.HandleFault(addr, kind); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("access %#x: still faulting after %d faults (model bug): %w", addr, maxFaultRetries, EFAULT)
}

// Read loads the content value of the page at addr.
func (mm *MM) Read(cpu int, addr uint64) (uint64, error) {
	pfn, err := mm.Access(cpu, addr, Read)
	if err != nil {
		return 0, err
	}
	return mm.m.mem.Content(pfn), nil
}

// Write stores val as the content value of the page at addr.
func (mm *MM) Write(cpu int, addr, val uint64) error {
	pfn, err := mm.Access(cpu, addr, Write)
	if err != nil {
		return err
	}
	mm.m.mem.SetContent(pfn, val)
	return nil
}

// permits reports whether a cached translation allows the access. A write
// through an x86 entry cached clean re-walks so the MMU can set dirty.
func permits(e tlb.Entry, kind AccessKind) bool {
	switch kind {
	case Write:
		return e.Perm&tlb.PermWrite != 0 && e.Perm&tlb.PermDirty != 0
	case Exec:
		return e.Perm&tlb.PermExec != 0
	}
	return e.Perm&tlb.PermRead != 0
}

// translate looks addr up in the TLB, walking the tables on a miss. It
// reports false when the access must fault.
func (mm *MM) translate(c *tlb.CPU, addr uint64, kind AccessKind) (phys.PFN, bool) {
	if e, ok := c.Lookup(mm.tlb, addr); ok {
		if permits(e, kind) {
			return e.PFN + phys.PFN((addr-e.VA)>>mm.pageShift()), true
		}
		// Stricter than the tables now allow, or clean: drop and walk.
		c.Drop(mm.tlb, addr)
	}
	return mm.hardwareWalk(c, addr, kind)
}

// hardwareWalk walks the page tables as the MMU does: from the deepest
// table the walk cache holds, one memory reference per level, filling the
// walk cache and, for a usable leaf, the TLB. An address outside the
// table's space faults before any walk, as the MMU refuses it (x86's
// non-canonical #GP, arm64's translation fault beyond TxSZ, s390's
// exception beyond the ASCE's reach): its index bits would wrap onto
// another address's entries.
func (mm *MM) hardwareWalk(c *tlb.CPU, addr uint64, kind AccessKind) (phys.PFN, bool) {
	pt := mm.pt
	if !pt.Space().Contains(addr, 1) {
		return 0, false
	}
	fm := &mm.m.arch.Format
	t := mm.walkStart(c, addr)
	for {
		i := pt.IndexOf(t, addr)
		mm.meter.Add(cost.WalkSteps, 1)
		if child := t.Child(i); child != nil {
			c.WalkCacheInsert(mm.tlb, addr, child.Level(), child)
			t = child
			continue
		}
		l := t.Level()
		e := t.Entry(i)
		if !fm.IsLeaf(e, l) || !fm.User(e, l) && !mm.kernel {
			return 0, false
		}
		if !hwAllows(fm, e, l, kind) {
			return 0, false
		}
		p := pgtable.Ptr{T: t, I: i}
		e = mm.hardwareAD(addr, p, e, l, kind)
		return mm.fill(c, addr, t, i, e), true
	}
}

// walkStart returns the deepest table on addr's path that the walk cache
// holds, counting the levels it skips, or the root.
func (mm *MM) walkStart(c *tlb.CPU, addr uint64) *pgtable.Table {
	geo := &mm.m.arch.Geometry
	root := mm.pt.Root()
	n := len(geo.Tables)
	for gi := n - 1; gi > n-mm.pt.Levels(); gi-- {
		if t, ok := c.WalkCacheLookup(mm.tlb, addr, geo.Tables[gi].Level); ok {
			mm.meter.Add(cost.WalkCacheHits, uint64(gi-(n-mm.pt.Levels())))
			return t
		}
	}
	return root
}

// hwAllows reports whether the MMU can complete the access through leaf e
// without a fault.
func hwAllows(fm *pgtable.Format, e pgtable.Entry, l pgtable.Level, kind AccessKind) bool {
	if !fm.Present(e, l) || !fm.HWReadable(e, l) {
		return false
	}
	switch kind {
	case Write:
		return fm.HWWritable(e, l)
	case Exec:
		return fm.Exec(e, l)
	}
	return true
}

// hardwareAD sets the access and dirty bits as the MMU does, where it does.
func (mm *MM) hardwareAD(addr uint64, p pgtable.Ptr, e pgtable.Entry, l pgtable.Level, kind AccessKind) pgtable.Entry {
	fm := &mm.m.arch.Format
	n := e
	if fm.HWYoung && !fm.Young(n, l) {
		n = fm.MkYoung(n, l)
	}
	if kind == Write && fm.HWDirty && !fm.Dirty(n, l) {
		n = fm.HWMkDirty(n, l)
	}
	if n != e {
		mm.pt.HWUpdate(addr, p, n)
	}
	return n
}

// fill inserts the translation of leaf i of t into the TLB and returns the
// frame of addr. A contiguous arm64 block is cached as one entry.
func (mm *MM) fill(c *tlb.CPU, addr uint64, t *pgtable.Table, i int, e pgtable.Entry) phys.PFN {
	fm := &mm.m.arch.Format
	l := t.Level()
	shift := mm.pt.Geometry().Shift(l)
	pfn := fm.PFN(e, l)
	cont := l == pgtable.PTE && fm.Cont(e, l) && mm.m.arch.Caps.ContPTEs > 1
	if cont {
		n := mm.m.arch.Caps.ContPTEs
		shift += log2u(uint64(n))
		pfn -= phys.PFN(i & (n - 1))
	}
	va := addr &^ (1<<shift - 1)
	perm := tlb.PermRead
	if fm.HWWritable(e, l) {
		perm |= tlb.PermWrite
	}
	if fm.Dirty(e, l) {
		perm |= tlb.PermDirty
	}
	if fm.Exec(e, l) {
		perm |= tlb.PermExec
	}
	if fm.User(e, l) {
		perm |= tlb.PermUser
	}
	if mm.kernel {
		perm |= tlb.PermGlobal
	}
	c.Insert(mm.tlb, tlb.Entry{VA: va, Shift: uint8(shift), PFN: pfn, Perm: perm, Level: l, Cont: cont})
	return pfn + phys.PFN((addr-va)>>mm.pageShift())
}

func log2u(x uint64) uint {
	n := uint(0)
	for x > 1 {
		x >>= 1
		n++
	}
	return n
}

// Translate returns the frame that addr maps to in the page tables,
// without touching TLBs, counters or anything else: the debugger's view.
func (mm *MM) Translate(addr uint64) (pgtable.Translation, bool) { return mm.pt.Lookup(addr) }

// Content returns the content value at addr as a reader would see it,
// without side effects: the mapped page's value, or for an unmapped page
// of a VMA what a fault would bring (zero for anonymous memory, the page
// cache's value for a file). ok is false outside any VMA.
func (mm *MM) Content(addr uint64) (val uint64, ok bool) {
	if tr, ok := mm.pt.Lookup(addr); ok {
		return mm.m.mem.Content(tr.PFN), true
	}
	v := mm.FindVMA(addr)
	if v == nil {
		return 0, false
	}
	if v.File != nil {
		if pfn, ok := v.File.Cached(v.PgOffAt(addr, mm.pageShift())); ok {
			return mm.m.mem.Content(pfn), true
		}
	}
	return 0, true
}
