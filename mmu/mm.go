package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// RSSKind names one of an address space's resident-set counters.
type RSSKind uint8

// The RSS counters, as Linux's MM_* counters.
const (
	MMFilePages RSSKind = iota
	MMAnonPages
	MMSwapEnts
	MMShmemPages
	numRSS
)

// MM is an address space (mm_struct): VMAs, page tables, a TLB context,
// RSS counters and the sequence counts that speculative faults and per-VMA
// locks read.
type MM struct {
	// m is the machine the address space lives in.
	m *Machine
	// name identifies the address space in scripts and traces.
	name string
	// kernel is set for init_mm.
	kernel bool
	// dead is set once the address space has been torn down.
	dead bool
	// pt is the page table (mm->pgd).
	pt *pgtable.PageTable
	// tlb is the address space as the TLBs see it (ASID, cpumask).
	tlb *tlb.Context
	// meter counts the work done for this address space.
	meter cost.Meter
	// vmas are the mappings, sorted.
	vmas vmaList
	// rss are the MM_* counters.
	rss [numRSS]int64
	// hasPinned is MMF_HAS_PINNED: a page of this mm was ever pinned.
	hasPinned bool
	// mmapSeq is the mmap sequence count: odd while a writer holds
	// mmap_lock (Michel Lespinasse's mmap_seq).
	mmapSeq uint64
	// lockSeq is mm_lock_seq: bumped when the writer unlocks, releasing
	// every VMA write lock at once (vma_end_write_all).
	lockSeq uint64
	// writers counts nested mmap write sections.
	writers int
	// deposits are PTE tables preallocated for THP mappings
	// (pgtable_trans_huge_deposit), withdrawn when a huge PMD is split or
	// zapped.
	deposits []*pgtable.Table
	// pendingPuts are folio references a gather drops after its flush.
	pendingPuts []folioRefs
}

// usable refuses system calls on init_mm (it has no user mappings) and
// on an address space that has been torn down (its tables are freed).
func (mm *MM) usable(op string, addr uint64) error {
	switch {
	case mm.dead:
		return fmt.Errorf("%s %#x: address space %s is gone: %w", op, addr, mm.name, EINVAL)
	case mm.kernel:
		return fmt.Errorf("%s %#x: init_mm has no user mappings: %w", op, addr, EINVAL)
	}
	return nil
}

// Name returns the address space's name.
func (mm *MM) Name() string { return mm.name }

// Machine returns the machine the address space lives in.
func (mm *MM) Machine() *Machine { return mm.m }

// PageTable returns the address space's page table.
func (mm *MM) PageTable() *pgtable.PageTable { return mm.pt }

// TLBContext returns the address space as the TLBs see it.
func (mm *MM) TLBContext() *tlb.Context { return mm.tlb }

// Meter returns the meter that counts this address space's work.
func (mm *MM) Meter() *cost.Meter { return &mm.meter }

// IsKernel reports whether this is init_mm.
func (mm *MM) IsKernel() bool { return mm.kernel }

// Dead reports whether the address space has been torn down.
func (mm *MM) Dead() bool { return mm.dead }

// RSS returns one RSS counter.
func (mm *MM) RSS(k RSSKind) int64 {
	if k >= numRSS {
		return 0
	}
	return mm.rss[k]
}

// AddRSS adds n pages to an RSS counter (add_mm_counter).
func (mm *MM) AddRSS(k RSSKind, n int64) {
	if n != 0 && k < numRSS {
		mm.rss[k] += n
		mm.meter.Add(cost.RSSUpdates, 1)
	}
}

// HasPinned reports MMF_HAS_PINNED.
func (mm *MM) HasPinned() bool { return mm.hasPinned }

// SetHasPinned sets MMF_HAS_PINNED (fork's child inherits nothing; pins do).
func (mm *MM) SetHasPinned() { mm.hasPinned = true }

// MmapSeq returns the mmap sequence count.
func (mm *MM) MmapSeq() uint64 { return mm.mmapSeq }

// LockSeq returns mm_lock_seq.
func (mm *MM) LockSeq() uint64 { return mm.lockSeq }

// WriteLocked reports whether a writer holds mmap_lock.
func (mm *MM) WriteLocked() bool { return mm.writers > 0 }

// MmapWriteLock takes mmap_lock for writing: the sequence count goes odd.
func (mm *MM) MmapWriteLock() {
	mm.meter.Add(cost.MmapLocks, 1)
	if mm.writers == 0 {
		mm.mmapSeq++
	}
	mm.writers++
}

// MmapWriteUnlock releases mmap_lock: the sequence count goes even and
// every VMA write lock is released (vma_end_write_all).
func (mm *MM) MmapWriteUnlock() {
	mm.writers--
	if mm.writers == 0 {
		mm.mmapSeq++
		mm.lockSeq++
	}
}

// VMAStartWrite write-locks a VMA for per-VMA locking (vma_start_write).
// Precondition: the caller holds mmap_lock for writing.
func (mm *MM) VMAStartWrite(v *VMA) {
	if v != nil {
		v.LockSeq = mm.lockSeq
	}
}

// VMAWriteLocked reports whether v is write-locked in the current mmap
// write section.
func (mm *MM) VMAWriteLocked(v *VMA) bool {
	return v != nil && mm.writers > 0 && v.LockSeq == mm.lockSeq
}

// pageShift and pageSize give the base page geometry.
func (mm *MM) pageShift() uint  { return mm.m.arch.Geometry.PageShift }
func (mm *MM) pageSize() uint64 { return mm.m.arch.Geometry.PageSize() }

// limitUser limits the page table to what its levels can map (s390
// starts with three levels and 4 TiB).
func (mm *MM) limitUser() error {
	if mm.kernel || !mm.m.arch.Caps.GrowLevels {
		return nil
	}
	space := mm.m.arch.User
	root := mm.m.arch.Geometry.Tables[len(mm.m.arch.Geometry.Tables)-mm.pt.Levels()]
	if span := root.Span(); span != 0 && (space.End == 0 || span < space.End) {
		space.End = span
	}
	if err := mm.pt.SetSpace(space); err != nil {
		return fmt.Errorf("%s user space: %w", mm.m.arch.Name, err)
	}
	return nil
}

// growFor adds table levels until [addr, addr+size) fits, as s390's
// crst_table_upgrade does, and reloads the address space on every CPU.
func (mm *MM) growFor(addr, size uint64) error {
	if !mm.m.arch.Caps.GrowLevels || mm.pt.Space().Contains(addr, size) {
		return nil
	}
	if !mm.m.arch.User.Contains(addr, size) {
		return fmt.Errorf("range %#x+%#x beyond the user address space: %w", addr, size, ENOMEM)
	}
	geo := &mm.m.arch.Geometry
	for levels := mm.pt.Levels() + 1; levels <= len(geo.Tables); levels++ {
		root := geo.Tables[len(geo.Tables)-levels]
		if span := root.Span(); span == 0 || addr+size-1 < span {
			if err := mm.pt.Grow(levels); err != nil {
				return err
			}
			if err := mm.limitUser(); err != nil {
				return err
			}
			mm.reloadEverywhere()
			return nil
		}
	}
	return fmt.Errorf("range %#x+%#x beyond the user address space: %w", addr, size, ENOMEM)
}

// reloadEverywhere makes every CPU running the address space reload its
// root and flush its local TLB for it, as crst_table_upgrade does on s390
// after adding a level (__crst_table_upgrade on each CPU).
func (mm *MM) reloadEverywhere() {
	for _, id := range mm.tlb.CPUMask() {
		mm.meter.Add(cost.LocalFullFlushes, 1)
		mm.m.tlb.CPU(id).DropASID(&mm.meter, mm.tlb)
	}
}
