package mmu

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
)

// VMFlags are a VMA's flags, named as Linux names them.
type VMFlags uint32

// VMA flags. The first four match Linux's VM_READ..VM_SHARED bit values,
// so that flags&0xf indexes the protection map.
const (
	VMRead VMFlags = 1 << iota
	VMWrite
	VMExec
	VMShared
	VMMayRead
	VMMayWrite
	VMMayExec
	VMMayShare
	// VMDontCopy: fork does not copy the VMA (MADV_DONTFORK).
	VMDontCopy
	// VMWipeOnFork: the child gets the VMA empty (MADV_WIPEONFORK).
	VMWipeOnFork
	// VMHugeTLB: a hugetlb mapping.
	VMHugeTLB
	// VMDontExpand: mremap may not grow the VMA.
	VMDontExpand
	// VMPFNMap: pages are raw frames without struct page semantics.
	VMPFNMap
	// VMAccount: the VMA is charged to the commit limit.
	VMAccount
	// VMLocked: mlock()ed.
	VMLocked
	// VMUffdWP: userfaultfd write-protect is armed.
	VMUffdWP
	// VMSoftDirty: soft-dirty tracking is armed on the VMA (after
	// clear_refs), so its PTEs' soft-dirty bits must be kept page by
	// page (fork's FPB_RESPECT_SOFT_DIRTY). Linux's VM_SOFTDIRTY has the
	// opposite sense (set on every new VMA: tracking off until
	// clear_refs clears it); the model stores the armed state so that a
	// new VMA, untracked in both, carries no flag.
	VMSoftDirty
	// VMStack: a stack that grows down.
	VMStack
)

var vmFlagNames = []struct {
	f    VMFlags
	name string
}{
	{VMRead, "read"}, {VMWrite, "write"}, {VMExec, "exec"}, {VMShared, "shared"},
	{VMDontCopy, "dontcopy"}, {VMWipeOnFork, "wipeonfork"}, {VMHugeTLB, "hugetlb"},
	{VMDontExpand, "dontexpand"}, {VMPFNMap, "pfnmap"}, {VMAccount, "account"},
	{VMLocked, "locked"}, {VMUffdWP, "uffd-wp"}, {VMSoftDirty, "softdirty"}, {VMStack, "stack"},
}

// String lists the set flags (the VM_MAY* bits are left out).
func (f VMFlags) String() string {
	var parts []string
	for _, n := range vmFlagNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Prot returns the page-table protection the flags select
// (vm_get_page_prot).
func (f VMFlags) Prot() pgtable.Prot { return pgtable.Prot(f & (VMRead | VMWrite | VMExec | VMShared)) }

// VMA is a virtual memory area: a range of an address space with one set
// of flags and one backing (vm_area_struct).
type VMA struct {
	// Start and End bound the VMA: [Start, End).
	Start, End uint64
	// Flags are the VMA's flags.
	Flags VMFlags
	// File is the backing file, nil for anonymous memory.
	File *File
	// PgOff is the file offset of Start, in pages.
	PgOff uint64
	// FolioOrder is the order of the folios faults allocate (anonymous
	// memory) or the page cache holds (files, with file_large_folios).
	FolioOrder uint8
	// HugeShift is log2 of the hugetlb page size for VMHugeTLB VMAs.
	HugeShift uint8
	// AnonVMA is set once the VMA has anonymous pages (vma->anon_vma); fork
	// copies page tables only for VMAs that have it or that need copying.
	AnonVMA bool
	// LockSeq is vm_lock_seq: equal to the mm's lock sequence while the
	// VMA is write-locked for per-VMA locking.
	LockSeq uint64
	// Detached is set once the VMA has been removed from its mm.
	Detached bool
}

// Len returns the VMA's size in bytes.
func (v *VMA) Len() uint64 { return v.End - v.Start }

// Contains reports whether addr lies in the VMA.
func (v *VMA) Contains(addr uint64) bool { return addr >= v.Start && addr < v.End }

// Anonymous reports whether the VMA has no file behind it.
func (v *VMA) Anonymous() bool { return v.File == nil }

// IsCOW reports whether writes copy on write (is_cow_mapping: private and
// may write).
func (v *VMA) IsCOW() bool { return v.Flags&(VMShared|VMMayWrite) == VMMayWrite }

// PgOffAt returns the file page index that addr maps.
func (v *VMA) PgOffAt(addr uint64, pageShift uint) uint64 {
	return v.PgOff + (addr-v.Start)>>pageShift
}

// String describes the VMA in one line.
func (v *VMA) String() string {
	if v == nil {
		return "<nil vma>"
	}
	s := fmt.Sprintf("%#x-%#x %s", v.Start, v.End, v.Flags)
	if v.File != nil {
		s += fmt.Sprintf(" file=%s@%#x", v.File.Name, v.PgOff)
	} else {
		s += " anon"
	}
	if v.FolioOrder > 0 {
		s += fmt.Sprintf(" folio-order=%d", v.FolioOrder)
	}
	return s
}

// clone returns a copy of v with the same backing.
func (v *VMA) clone() *VMA {
	c := *v
	c.Detached = false
	return &c
}

// mergeable reports whether b can extend a (a below b, adjacent), as
// Linux's is_mergeable_vma with anon_vma compatibility.
func mergeable(a, b *VMA, pageShift uint) bool {
	if a.End != b.Start || a.Flags != b.Flags || a.File != b.File || a.FolioOrder != b.FolioOrder || a.HugeShift != b.HugeShift {
		return false
	}
	if a.File != nil && a.PgOff+(a.Len()>>pageShift) != b.PgOff {
		return false
	}
	return true
}

// vmaList is an address space's VMAs, sorted by address.
type vmaList struct {
	v []*VMA
}

// find returns the first VMA whose End lies above addr (find_vma), or nil.
func (l *vmaList) find(addr uint64) *VMA {
	i := sort.Search(len(l.v), func(i int) bool { return l.v[i].End > addr })
	if i == len(l.v) {
		return nil
	}
	return l.v[i]
}

// index returns the position of v, or -1.
func (l *vmaList) index(v *VMA) int {
	i := sort.Search(len(l.v), func(i int) bool { return l.v[i].Start >= v.Start })
	if i < len(l.v) && l.v[i] == v {
		return i
	}
	return -1
}

// intersecting returns the VMAs that overlap [start, end), in order.
func (l *vmaList) intersecting(start, end uint64) []*VMA {
	i := sort.Search(len(l.v), func(i int) bool { return l.v[i].End > start })
	var out []*VMA
	for ; i < len(l.v) && l.v[i].Start < end; i++ {
		out = append(out, l.v[i])
	}
	return out
}

// insert adds v, which must not overlap another VMA.
func (l *vmaList) insert(v *VMA) {
	i := sort.Search(len(l.v), func(i int) bool { return l.v[i].Start >= v.End })
	l.v = append(l.v, nil)
	copy(l.v[i+1:], l.v[i:])
	l.v[i] = v
}

// remove takes v out of the list.
func (l *vmaList) remove(v *VMA) {
	if i := l.index(v); i >= 0 {
		l.v = append(l.v[:i], l.v[i+1:]...)
	}
}

// neighbours returns the VMAs just below and just above [start, end).
func (l *vmaList) neighbours(start, end uint64) (prev, next *VMA) {
	i := sort.Search(len(l.v), func(i int) bool { return l.v[i].End > start })
	if i > 0 {
		prev = l.v[i-1]
	}
	j := sort.Search(len(l.v), func(j int) bool { return l.v[j].Start >= end })
	if j < len(l.v) {
		next = l.v[j]
	}
	return prev, next
}

// VMAs returns the address space's VMAs in address order. The slice is a
// copy; the VMAs are live.
func (mm *MM) VMAs() []*VMA { return append([]*VMA(nil), mm.vmas.v...) }

// FindVMA returns the VMA containing addr, or nil.
func (mm *MM) FindVMA(addr uint64) *VMA {
	v := mm.vmas.find(addr)
	if v == nil || v.Start > addr {
		return nil
	}
	return v
}

// FindVMAFrom returns the first VMA ending above addr (Linux's find_vma),
// or nil.
func (mm *MM) FindVMAFrom(addr uint64) *VMA { return mm.vmas.find(addr) }

// VMAsIn returns the VMAs that overlap [start, end), in order.
func (mm *MM) VMAsIn(start, end uint64) []*VMA { return mm.vmas.intersecting(start, end) }

// Neighbours returns the VMAs just below and just above [start, end).
func (mm *MM) Neighbours(start, end uint64) (prev, next *VMA) { return mm.vmas.neighbours(start, end) }

// SplitVMA splits v at addr, which must lie strictly inside it, and
// returns the upper part (__split_vma). Both parts keep v's backing; the
// upper part's file offset moves with it. It fails with EINVAL for a bad
// address and with ENOMEM, changing nothing, when the new VMA cannot be
// allocated (vm_area_dup; phys.KindSlab fault injection).
func (mm *MM) SplitVMA(v *VMA, addr uint64) (*VMA, error) {
	if v == nil || addr <= v.Start || addr >= v.End || addr&(mm.pageSize()-1) != 0 {
		return nil, fmt.Errorf("split vma %v at %#x: %w", v, addr, EINVAL)
	}
	if err := mm.m.mem.AllocSlab(); err != nil {
		return nil, fmt.Errorf("split vma %#x-%#x at %#x: %w", v.Start, v.End, addr, err)
	}
	hi := v.clone()
	hi.Start = addr
	if v.File != nil {
		hi.PgOff = v.PgOff + (addr-v.Start)>>mm.pageShift()
	}
	v.End = addr
	mm.vmas.insert(hi)
	mm.meter.Add(cost.VMAOps, 1)
	return hi, nil
}

// InsertVMA adds a VMA, a new one that its caller has just built (mmap's
// vm_area_alloc, fork's and mremap's vm_area_dup). It fails with EEXIST if
// it overlaps another, EINVAL for an empty or unaligned one, and with
// ENOMEM, changing nothing, when the VMA cannot be allocated
// (phys.KindSlab fault injection).
func (mm *MM) InsertVMA(v *VMA) error {
	if v == nil || v.Start >= v.End || (v.Start|v.End)&(mm.pageSize()-1) != 0 {
		return fmt.Errorf("vma %v: empty or unaligned: %w", v, EINVAL)
	}
	if len(mm.vmas.intersecting(v.Start, v.End)) > 0 {
		return fmt.Errorf("vma %#x-%#x overlaps a mapping: %w", v.Start, v.End, EEXIST)
	}
	if err := mm.m.mem.AllocSlab(); err != nil {
		return fmt.Errorf("vma %#x-%#x: %w", v.Start, v.End, err)
	}
	v.Detached = false
	mm.vmas.insert(v)
	mm.meter.Add(cost.VMAOps, 1)
	return nil
}

// RemoveVMA takes v out of the address space (its pages must be gone).
func (mm *MM) RemoveVMA(v *VMA) {
	if v == nil {
		return
	}
	mm.vmas.remove(v)
	v.Detached = true
	mm.meter.Add(cost.VMAOps, 1)
}

// MergeAround merges v with its neighbours where Linux would (same flags,
// backing, contiguous file offset) and returns the VMA that now covers v's
// range.
func (mm *MM) MergeAround(v *VMA) *VMA {
	prev, next := mm.vmas.neighbours(v.Start, v.End)
	if next != nil && next.Start == v.End && mergeable(v, next, mm.pageShift()) {
		mm.vmas.remove(next)
		v.End = next.End
		v.AnonVMA = v.AnonVMA || next.AnonVMA
		next.Detached = true
		mm.meter.Add(cost.VMAOps, 1)
	}
	if prev != nil && prev.End == v.Start && mergeable(prev, v, mm.pageShift()) {
		mm.vmas.remove(v)
		prev.End = v.End
		prev.AnonVMA = prev.AnonVMA || v.AnonVMA
		v.Detached = true
		mm.meter.Add(cost.VMAOps, 1)
		return prev
	}
	return v
}

// UnmappedAreaTopDown is vm_unmapped_area with VM_UNMAPPED_AREA_TOPDOWN:
// the highest address a with [a, a+length) free of VMAs and inside
// [low, high), and false when there is none. It changes nothing and
// counts nothing. Cost: one pass over the VMAs, from the top.
func (mm *MM) UnmappedAreaTopDown(length, low, high uint64) (uint64, bool) {
	if high < low || high-low < length {
		return 0, false
	}
	vmas := mm.vmas.v
	gapEnd := high
	for i := len(vmas) - 1; i >= 0 && gapEnd > low; i-- {
		v := vmas[i]
		if v.End > gapEnd { // above the gap, or across its end
			gapEnd = min(gapEnd, v.Start)
			continue
		}
		if gs := max(v.End, low); gapEnd-gs >= length {
			return gapEnd - length, true
		}
		gapEnd = v.Start
	}
	if gapEnd > low && gapEnd-low >= length {
		return gapEnd - length, true
	}
	return 0, false
}
