package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
)

// Prot is a mapping's protection, as mmap's PROT_* bits.
type Prot uint8

// Protection bits (PROT_READ, PROT_WRITE, PROT_EXEC).
const (
	ProtRead Prot = 1 << iota
	ProtWrite
	ProtExec
)

// ProtNone is PROT_NONE.
const ProtNone Prot = 0

func (p Prot) flags() VMFlags { return VMFlags(p & (ProtRead | ProtWrite | ProtExec)) }

// String spells the protection as scripts do: none, r, rw, rx, rwx...
func (p Prot) String() string {
	if p == 0 {
		return "none"
	}
	s := ""
	for i, c := range "rwx" {
		if p&(1<<i) != 0 {
			s += string(c)
		}
	}
	return s
}

// MapFlags are mmap's flags and the model's folio choice.
type MapFlags struct {
	// File names the backing file; empty for anonymous memory.
	File string
	// Offset is the file offset in bytes (page-aligned).
	Offset uint64
	// Shared maps MAP_SHARED instead of MAP_PRIVATE.
	Shared bool
	// Populate faults every page in (MAP_POPULATE).
	Populate bool
	// FolioSize is the size of the folios faults allocate (anonymous) or
	// the page cache holds (files, with file_large_folios); 0 is one page.
	FolioSize uint64
	// DontCopy and WipeOnFork set VM_DONTCOPY and VM_WIPEONFORK, as the
	// madvise calls would.
	DontCopy, WipeOnFork bool
}

// pageAlign rounds n up to a page, reporting overflow.
func (mm *MM) pageAlign(n uint64) (uint64, bool) {
	ps := mm.pageSize()
	r := (n + ps - 1) &^ (ps - 1)
	return r, r >= n
}

// folioOrder converts a folio size into an order, which must be a power of
// two between one page and one PMD.
func (mm *MM) folioOrder(size uint64) (uint8, error) {
	if size == 0 {
		return 0, nil
	}
	ps := mm.pageSize()
	if size < ps || size&(size-1) != 0 || size > mm.m.arch.Geometry.Size(pgtable.PMD) {
		return 0, fmt.Errorf("folio size %#x: want a power of two from %#x to the PMD size %#x: %w",
			size, ps, mm.m.arch.Geometry.Size(pgtable.PMD), EINVAL)
	}
	return uint8(log2u(size / ps)), nil
}

// Mmap maps [addr, addr+length) exactly there, as mmap with
// MAP_FIXED_NOREPLACE: EEXIST if anything is mapped in the range, EINVAL
// for an unaligned address or offset, a zero length or a bad folio size,
// EPERM below mmap_min_addr, ENOMEM beyond the user address space. The
// new VMA merges with compatible neighbours. With Populate every page is
// faulted in (write faults for a private writable mapping, as
// MAP_POPULATE); running out of memory there is not an error, as in Linux.
func (mm *MM) Mmap(addr, length uint64, prot Prot, fl MapFlags) error {
	if err := mm.usable("mmap", addr); err != nil {
		return err
	}
	mm.meter.Add(cost.Syscalls, 1)
	ps := mm.pageSize()
	switch {
	case length == 0:
		return fmt.Errorf("mmap %#x: length 0: %w", addr, EINVAL)
	case addr&(ps-1) != 0:
		return fmt.Errorf("mmap %#x: address not page-aligned: %w", addr, EINVAL)
	case fl.Offset&(ps-1) != 0:
		return fmt.Errorf("mmap %#x: offset %#x not page-aligned: %w", addr, fl.Offset, EINVAL)
	case prot&^(ProtRead|ProtWrite|ProtExec) != 0:
		return fmt.Errorf("mmap %#x: unknown protection bits %#x: %w", addr, uint8(prot), EINVAL)
	}
	length, ok := mm.pageAlign(length)
	if !ok || addr+length < addr {
		return fmt.Errorf("mmap %#x+%#x: wraps around: %w", addr, length, ENOMEM)
	}
	if addr < mm.m.arch.Caps.MmapMinAddr {
		return fmt.Errorf("mmap %#x: below mmap_min_addr %#x: %w", addr, mm.m.arch.Caps.MmapMinAddr, EPERM)
	}
	order, err := mm.folioOrder(fl.FolioSize)
	if err != nil {
		return fmt.Errorf("mmap %#x: %w", addr, err)
	}
	if !mm.m.arch.User.Contains(addr, length) {
		return fmt.Errorf("mmap %#x-%#x: beyond the user address space: %w", addr, addr+length, ENOMEM)
	}
	if len(mm.vmas.intersecting(addr, addr+length)) > 0 {
		return fmt.Errorf("mmap %#x-%#x: range already mapped: %w", addr, addr+length, EEXIST)
	}
	if err := mm.growFor(addr, length); err != nil {
		return fmt.Errorf("mmap %#x: %w", addr, err)
	}
	mm.MmapWriteLock()
	v := &VMA{Start: addr, End: addr + length, Flags: prot.flags() | VMMayRead | VMMayWrite | VMMayExec, FolioOrder: order}
	switch {
	case fl.File != "":
		v.File = mm.m.File(fl.File)
		v.PgOff = fl.Offset / ps
	case fl.Shared:
		v.File = mm.m.newShmem()
	}
	if fl.Shared {
		v.Flags |= VMShared | VMMayShare
	}
	if fl.DontCopy {
		v.Flags |= VMDontCopy
	}
	if fl.WipeOnFork {
		v.Flags |= VMWipeOnFork
	}
	if err := mm.InsertVMA(v); err != nil {
		mm.MmapWriteUnlock()
		return fmt.Errorf("mmap: %w", err)
	}
	v = mm.MergeAround(v)
	mm.MmapWriteUnlock()
	if fl.Populate {
		mm.populate(addr, addr+length)
	}
	return nil
}

// populate faults in every page of [start, end) (mm_populate): write
// faults for private writable VMAs, read faults otherwise. Pages already
// mapped are skipped; errors stop it quietly.
func (mm *MM) populate(start, end uint64) {
	ps := mm.pageSize()
	for a := start; a < end; a += ps {
		v := mm.FindVMA(a)
		if v == nil {
			continue
		}
		kind := Read
		if v.Flags&(VMWrite|VMShared) == VMWrite {
			kind = Write
		}
		if tr, ok := mm.pt.Lookup(a); ok && (kind == Read || mm.m.arch.Format.Write(tr.Entry, tr.Level)) {
			continue
		}
		if err := mm.HandleFault(a, kind); err != nil {
			return
		}
	}
}

// checkUnmapRange validates munmap's arguments.
func (mm *MM) checkUnmapRange(op string, addr, length uint64) (uint64, error) {
	ps := mm.pageSize()
	if addr&(ps-1) != 0 {
		return 0, fmt.Errorf("%s %#x: address not page-aligned: %w", op, addr, EINVAL)
	}
	if length == 0 {
		return 0, fmt.Errorf("%s %#x: length 0: %w", op, addr, EINVAL)
	}
	length, ok := mm.pageAlign(length)
	if !ok || !mm.m.arch.User.Contains(addr, length) {
		return 0, fmt.Errorf("%s %#x+%#x: outside the user address space: %w", op, addr, length, EINVAL)
	}
	return addr + length, nil
}

// Munmap unmaps [addr, addr+length): VMAs are split at the ends, pages
// zapped, tables that map only the range freed, and the TLB flushed once
// through an mmu_gather. Unmapping nothing succeeds, as in Linux. EINVAL
// for an unaligned address, a zero length or a range outside user space.
func (mm *MM) Munmap(addr, length uint64) error {
	if err := mm.usable("munmap", addr); err != nil {
		return err
	}
	mm.meter.Add(cost.Syscalls, 1)
	end, err := mm.checkUnmapRange("munmap", addr, length)
	if err != nil {
		return err
	}
	mm.MmapWriteLock()
	defer mm.MmapWriteUnlock()
	return mm.UnmapRange(addr, end)
}

// UnmapRange is do_vmi_munmap under mmap_lock: the part of the address
// space in [start, end) goes away.
func (mm *MM) UnmapRange(start, end uint64) error {
	vmas := mm.vmas.intersecting(start, end)
	if len(vmas) == 0 {
		return nil
	}
	if err := mm.splitEnds(start, end); err != nil {
		return err
	}
	vmas = mm.vmas.intersecting(start, end)
	for _, v := range vmas {
		mm.VMAStartWrite(v)
	}
	mm.unmapRegion(vmas)
	for _, v := range vmas {
		mm.RemoveVMA(v)
	}
	return nil
}

// unmapRegion zaps the VMAs (adjacent or not, in order) and frees the
// tables that only they used, with one gather and one flush
// (unmap_region).
func (mm *MM) unmapRegion(vmas []*VMA) {
	start, end := vmas[0].Start, vmas[len(vmas)-1].End
	prev, next := mm.vmas.neighbours(start, end)
	floor, ceiling := uint64(0), uint64(0)
	if prev != nil {
		floor = prev.End
	}
	if next != nil {
		ceiling = next.Start
	}
	g := mm.m.tlb.NewGather(mm.tlb, false)
	for _, v := range vmas {
		mm.ZapRange(g, v, v.Start, v.End)
	}
	mm.pt.FreePgtables(start, end, floor, ceiling, g)
	mm.FinishGather(g)
}

// unmapAll tears down every mapping (exit_mmap).
func (mm *MM) unmapAll() error {
	if len(mm.vmas.v) == 0 {
		return nil
	}
	mm.MmapWriteLock()
	defer mm.MmapWriteUnlock()
	vmas := append([]*VMA(nil), mm.vmas.v...)
	mm.unmapRegion(vmas)
	for _, v := range vmas {
		mm.RemoveVMA(v)
	}
	return nil
}

// Mprotect changes the protection of [addr, addr+length) (mprotect):
// VMAs are split and merged, present entries rewritten with the new
// protection, and the TLB flushed where permissions shrank. EINVAL for an
// unaligned address or unknown bits, ENOMEM when part of the range is not
// mapped (nothing changes then).
func (mm *MM) Mprotect(addr, length uint64, prot Prot) error {
	if err := mm.usable("mprotect", addr); err != nil {
		return err
	}
	mm.meter.Add(cost.Syscalls, 1)
	ps := mm.pageSize()
	if addr&(ps-1) != 0 {
		return fmt.Errorf("mprotect %#x: address not page-aligned: %w", addr, EINVAL)
	}
	if prot&^(ProtRead|ProtWrite|ProtExec) != 0 {
		return fmt.Errorf("mprotect %#x: unknown protection bits %#x: %w", addr, uint8(prot), EINVAL)
	}
	if length == 0 {
		return nil
	}
	length, ok := mm.pageAlign(length)
	end := addr + length
	if !ok || end < addr {
		return fmt.Errorf("mprotect %#x+%#x: wraps around: %w", addr, length, ENOMEM)
	}
	vmas := mm.vmas.intersecting(addr, end)
	at := addr
	for _, v := range vmas {
		if v.Start > at {
			break
		}
		at = v.End
	}
	if len(vmas) == 0 || at < end {
		return fmt.Errorf("mprotect %#x-%#x: range not fully mapped: %w", addr, end, ENOMEM)
	}
	mm.MmapWriteLock()
	defer mm.MmapWriteUnlock()
	if err := mm.splitEnds(addr, end); err != nil {
		return err
	}
	g := mm.m.tlb.NewGather(mm.tlb, false)
	for _, v := range mm.vmas.intersecting(addr, end) {
		mm.VMAStartWrite(v)
		nf := v.Flags&^(VMRead|VMWrite|VMExec) | prot.flags()
		mm.changeProtection(g, v, nf)
		v.Flags = nf
	}
	mm.FinishGather(g)
	for _, v := range mm.vmas.intersecting(addr, end) {
		if !v.Detached {
			mm.MergeAround(v)
		}
	}
	return nil
}

// splitEnds splits the VMAs that straddle start or end, so that every VMA
// overlapping [start, end) lies inside it.
func (mm *MM) splitEnds(start, end uint64) error {
	if v := mm.FindVMA(start); v != nil && v.Start < start {
		if _, err := mm.SplitVMA(v, start); err != nil {
			return err
		}
	}
	if v := mm.FindVMA(end - 1); v != nil && v.End > end {
		if _, err := mm.SplitVMA(v, end); err != nil {
			return err
		}
	}
	return nil
}
