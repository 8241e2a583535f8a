package mremap

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// Flags are mremap's flags, with Linux's values.
type Flags uint

const (
	// MayMove lets the mapping move when it cannot be resized in place
	// (MREMAP_MAYMOVE).
	MayMove Flags = 1 << iota
	// Fixed moves the mapping to exactly the new address, unmapping
	// whatever is there first (MREMAP_FIXED); it needs MayMove.
	Fixed
	// DontUnmap moves the pages but leaves the old mapping in place,
	// empty (MREMAP_DONTUNMAP); it needs MayMove and an unchanged
	// length. Without Fixed the new address is a hint.
	DontUnmap
)

// ErrShortMove is wrapped, with ENOMEM, by the error of a move that ran
// out of memory for a page table: what moved was moved back and the new
// range unmapped, so the source is intact; but a Fixed move's target was
// unmapped first, and a shrink before the move took the tail, as in
// Linux. Every other error leaves the address space unchanged.
var ErrShortMove = errors.New("page tables moved only in part, moved back")

// validFlags are the flags mremap knows.
const validFlags = MayMove | Fixed | DontUnmap

// String spells the flags as scripts and traces show them.
func (f Flags) String() string {
	s := ""
	for _, n := range []struct {
		f    Flags
		name string
	}{{MayMove, "maymove"}, {Fixed, "fixed"}, {DontUnmap, "dontunmap"}} {
		if f&n.f != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
		}
	}
	if rest := f &^ validFlags; rest != 0 {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("%#x", uint(rest))
	}
	if s == "" {
		return "0"
	}
	return s
}

// MaxMapCount is sysctl_max_map_count's default (DEFAULT_MAX_MAP_COUNT):
// mremap refuses with ENOMEM a move that could take an address space past
// it.
const MaxMapCount = 65530

// maxMapCount is the limit in force; tests lower it to reach the check
// without building 65530 VMAs.
var maxMapCount = MaxMapCount

// remapType is vrm_remap_type.
type remapType uint8

const (
	noResize remapType = iota
	shrink
	expand
)

// vrm is vma_remap_struct: one mremap call's state.
type vrm struct {
	mm *mmu.MM
	// addr, oldLen, newLen, flags and newAddr are the arguments, lengths
	// page-aligned.
	addr, oldLen, newLen uint64
	flags                Flags
	newAddr              uint64
	// vma is the source VMA; delta the size difference; typ the kind of
	// resize.
	vma   *mmu.VMA
	delta uint64
	typ   remapType
	// populateExpand is set when an mlock()ed VMA grows: the new part
	// is faulted in once the call is done (populate_expand).
	populateExpand bool
	// pageSize is PAGE_SIZE; taskSize is TASK_SIZE.
	pageSize, taskSize uint64
}

// Mremap is the mremap system call: it resizes and/or moves the mapping
// at addr of oldLen bytes to newLen bytes, as Linux does today, and
// returns the mapping's address afterwards.
//
//   - Same size, no new address: nothing happens.
//   - Shrink: always in place; the tail is unmapped (it may span VMAs).
//   - Grow: in place when [addr, addr+oldLen) ends its VMA and the bytes
//     after it are free (merging with a following VMA where Linux
//     would); else, with MayMove, the mapping moves to a free range
//     (PMD-aligned like the source for anonymous memory, as
//     thp_get_unmapped_area does); else ENOMEM.
//   - Fixed: the mapping moves to newAddr, whatever was mapped there is
//     unmapped first; a shrink happens before the move. With an
//     unchanged length the range may span several VMAs (Linux 6.17):
//     each moves separately, keeping the gaps between them.
//   - DontUnmap: the pages move and the old VMA stays, empty.
//
// The move is MovePageTables; if it runs out of memory for a page table
// the entries already moved are moved back, the new range is unmapped and
// ENOMEM is returned, the source intact.
//
// Errors, all found before anything changes: EINVAL for unknown flags, an
// unaligned addr or newAddr, newLen 0 or beyond TASK_SIZE, Fixed or
// DontUnmap without MayMove, DontUnmap with a size change, overlapping
// old and new ranges, oldLen 0 on a private mapping, DontUnmap on a
// VM_DONTEXPAND or VM_PFNMAP VMA, a file offset that would overflow, a
// hugetlb address not aligned to its page size or a hugetlb expansion;
// EFAULT when no VMA contains addr, when the range runs past its VMA, when
// expanding a VM_DONTEXPAND or VM_PFNMAP VMA, or when a multi-VMA move has
// a gap at its start or a VMA that cannot be moved with others (uffd-wp
// armed) that is not alone; ENOMEM when the mapping cannot grow in place
// without MayMove, no free range is found, or the map count could pass
// MaxMapCount (checked for every call: room for four more VMAs). The
// model has no rlimits, seals or mlock limits, so Linux's EAGAIN and
// EPERM cases cannot arise. Growing an mlock()ed mapping faults the new
// part in afterwards; unmapping the source after a move is best effort,
// as in Linux.
//
// Cost: one syscall and mmap_lock for writing, the VMA work, and the
// page-table move (see MovePageTables); a move also counts move_vmas,
// move_vma's fixed work besides the VMA operations and the tables.
func Mremap(mm *mmu.MM, addr, oldLen, newLen uint64, flags Flags, newAddr uint64) (uint64, error) {
	if mm == nil || mm.Dead() || mm.IsKernel() {
		return 0, fmt.Errorf("mremap %#x: no live user address space: %w", addr, mmu.EINVAL)
	}
	mm.Meter().Add(cost.Syscalls, 1)
	a := mm.Machine().Arch()
	r := &vrm{mm: mm, addr: addr, flags: flags, newAddr: newAddr,
		pageSize: a.PageSize(), taskSize: a.User.End}
	var ok bool
	if r.oldLen, ok = pageAlign(oldLen, r.pageSize); !ok {
		r.oldLen = 0 // PAGE_ALIGN wraps to 0
	}
	if r.newLen, ok = pageAlign(newLen, r.pageSize); !ok {
		r.newLen = 0
	}
	if err := r.checkParams(); err != nil {
		return 0, fmt.Errorf("mremap %#x: %w", addr, err)
	}
	// The call runs in the process, on the CPU that executes kernel
	// code (switch_mm happened when the process was scheduled there).
	if c := mm.Machine().TLB().LocalCPU(); c.Current() != mm.TLBContext() {
		c.Switch(mm.TLBContext())
	}
	mm.MmapWriteLock()
	res, err := r.locked()
	mm.MmapWriteUnlock()
	if err != nil {
		return 0, fmt.Errorf("mremap %#x: %w", addr, err)
	}
	if r.populateExpand {
		// mm_populate of the part that grew, after mmap_lock is
		// dropped, wherever the mapping now is.
		r.populate(res+r.oldLen, res+r.oldLen+r.delta)
	}
	return res, nil
}

// locked is do_mremap's work under mmap_lock.
func (r *vrm) locked() (uint64, error) {
	// check_map_count_against_split_early, under the lock (Linux 6.17):
	// every call, before it looks at a VMA, keeps room for the worst
	// case of its unmaps and its move.
	if !r.checkMapCountAgainstSplit(true) {
		return 0, fmt.Errorf("%d mappings, too close to max_map_count %d: %w", r.mapCount(), maxMapCount, mmu.ENOMEM)
	}
	mm := r.mm
	var res uint64
	var err error
	switch {
	case r.moveOnly():
		res, err = r.remapMove()
	default:
		r.vma = mm.FindVMA(r.addr)
		if err = r.checkPrepVMA(); err != nil {
			break
		}
		if r.impliesNewAddr() {
			res, err = r.mremapTo()
		} else {
			res, err = r.mremapAt()
		}
	}
	return res, err
}

// pageAlign is PAGE_ALIGN, reporting whether it did not wrap.
func pageAlign(n, ps uint64) (uint64, bool) {
	r := (n + ps - 1) &^ (ps - 1)
	return r, r >= n
}

// impliesNewAddr is vrm_implies_new_addr.
func (r *vrm) impliesNewAddr() bool { return r.flags&(Fixed|DontUnmap) != 0 }

// moveOnly is vrm_move_only: a fixed move without a resize, which may
// span several VMAs.
func (r *vrm) moveOnly() bool { return r.flags&Fixed != 0 && r.oldLen == r.newLen }

// overlaps is vrm_overlaps.
func (r *vrm) overlaps() bool {
	return r.addr+r.oldLen > r.newAddr && r.newAddr+r.newLen > r.addr
}

// mapCount returns mm->map_count.
func (r *vrm) mapCount() int { return len(r.mm.VMAs()) }

// checkParams is check_mremap_params: the checks that need no VMA.
func (r *vrm) checkParams() error {
	switch {
	case r.flags&^validFlags != 0:
		return fmt.Errorf("unknown flags %s: %w", r.flags, mmu.EINVAL)
	case r.addr&(r.pageSize-1) != 0:
		return fmt.Errorf("address not page-aligned: %w", mmu.EINVAL)
	case r.newLen == 0:
		return fmt.Errorf("new length 0: %w", mmu.EINVAL)
	case r.newLen > r.taskSize:
		return fmt.Errorf("new length %#x beyond TASK_SIZE: %w", r.newLen, mmu.EINVAL)
	case !r.impliesNewAddr():
		return nil
	case r.newAddr > r.taskSize-r.newLen:
		return fmt.Errorf("new range %#x+%#x beyond TASK_SIZE: %w", r.newAddr, r.newLen, mmu.EINVAL)
	case r.newAddr&(r.pageSize-1) != 0:
		return fmt.Errorf("new address %#x not page-aligned: %w", r.newAddr, mmu.EINVAL)
	case r.flags&MayMove == 0:
		return fmt.Errorf("%s without maymove: %w", r.flags, mmu.EINVAL)
	case r.flags&DontUnmap != 0 && r.oldLen != r.newLen:
		return fmt.Errorf("dontunmap with a size change: %w", mmu.EINVAL)
	case r.overlaps():
		return fmt.Errorf("old %#x+%#x and new %#x+%#x overlap: %w", r.addr, r.oldLen, r.newAddr, r.newLen, mmu.EINVAL)
	}
	return nil
}

// checkMapCountAgainstSplit is __check_map_count_against_split: the move
// may add two VMAs (a copy that does not merge, a source unmap that
// splits one in three), and before it a shrink and a Fixed target unmap
// may each add one more (beforeUnmaps). It reports whether the address
// space stays within max_map_count in the worst case.
func (r *vrm) checkMapCountAgainstSplit(beforeUnmaps bool) bool {
	n := r.mapCount()
	if beforeUnmaps {
		n += 2
	}
	return n+2 <= maxMapCount
}

// checkPrepVMA is check_prep_vma: the checks on the source VMA.
func (r *vrm) checkPrepVMA() error {
	v := r.vma
	if v == nil {
		return fmt.Errorf("no mapping at %#x: %w", r.addr, mmu.EFAULT)
	}
	if v.Flags&mmu.VMHugeTLB != 0 {
		if err := r.alignHugetlb(); err != nil {
			return err
		}
	}
	r.setDelta()
	if !r.impliesNewAddr() {
		r.newAddr = r.addr
	}
	if !r.willMapNew() {
		return nil
	}
	oldLen, newLen := r.oldLen, r.newLen
	switch {
	case oldLen == 0 && v.Flags&(mmu.VMShared|mmu.VMMayShare) == 0:
		return fmt.Errorf("old length 0 duplicates only shared mappings: %w", mmu.EINVAL)
	case r.flags&DontUnmap != 0 && v.Flags&(mmu.VMDontExpand|mmu.VMPFNMap) != 0:
		return fmt.Errorf("dontunmap on a %s mapping: %w", v.Flags, mmu.EINVAL)
	}
	if r.typ == shrink {
		oldLen = newLen // the unmapped tail may cross VMAs
	}
	if oldLen > v.End-r.addr {
		return fmt.Errorf("range %#x+%#x runs past its mapping's end %#x: %w", r.addr, oldLen, v.End, mmu.EFAULT)
	}
	if newLen == oldLen {
		return nil
	}
	// Expanding an mlock()ed VMA: populate the new part afterwards.
	r.populateExpand = v.Flags&mmu.VMLocked != 0
	pgoff := v.PgOff + (r.addr-v.Start)/r.pageSize
	if pgoff+newLen/r.pageSize < pgoff {
		return fmt.Errorf("file offset overflows: %w", mmu.EINVAL)
	}
	if v.Flags&(mmu.VMDontExpand|mmu.VMPFNMap) != 0 {
		return fmt.Errorf("cannot expand a %s mapping: %w", v.Flags, mmu.EFAULT)
	}
	return nil
}

// alignHugetlb is align_hugetlb: lengths round up to the huge page size,
// addresses must be aligned to it, and hugetlb mappings never grow.
func (r *vrm) alignHugetlb() error {
	hs := uint64(1) << r.vma.HugeShift
	r.oldLen = (r.oldLen + hs - 1) &^ (hs - 1)
	r.newLen = (r.newLen + hs - 1) &^ (hs - 1)
	switch {
	case r.addr&(hs-1) != 0 || r.newAddr&(hs-1) != 0:
		return fmt.Errorf("hugetlb address not aligned to %#x: %w", hs, mmu.EINVAL)
	case r.newLen > r.oldLen:
		return fmt.Errorf("hugetlb mappings cannot grow: %w", mmu.EINVAL)
	}
	return nil
}

// setDelta is vrm_set_delta and vrm_remap_type.
func (r *vrm) setDelta() {
	switch {
	case r.oldLen == r.newLen:
		r.delta, r.typ = 0, noResize
	case r.oldLen > r.newLen:
		r.delta, r.typ = r.oldLen-r.newLen, shrink
	default:
		r.delta, r.typ = r.newLen-r.oldLen, expand
	}
}

// willMapNew is vrm_will_map_new.
func (r *vrm) willMapNew() bool { return r.typ == expand || r.impliesNewAddr() }

// mremapAt is mremap_at: resize in place, or move when growing is not
// possible in place.
func (r *vrm) mremapAt() (uint64, error) {
	switch r.typ {
	case shrink:
		if err := r.mm.UnmapRange(r.addr+r.newLen, r.addr+r.oldLen); err != nil {
			return 0, err
		}
		return r.addr, nil
	case expand:
		return r.expandVMA()
	}
	return r.addr, nil
}

// expandVMA is expand_vma: in place when the range ends its VMA and the
// following bytes are free, else a move with MayMove, else ENOMEM.
func (r *vrm) expandVMA() (uint64, error) {
	if r.vma.End-r.addr == r.oldLen && r.expandable() {
		if err := r.mm.GrowFor(r.vma.Start, r.vma.Len()+r.delta); err != nil {
			return 0, err
		}
		v := r.vma
		v.End += r.delta
		r.mm.Meter().Add(cost.VMAOps, 1)
		r.mm.MergeAround(v)
		return r.addr, nil
	}
	if r.flags&MayMove == 0 {
		return 0, fmt.Errorf("cannot grow in place and may not move: %w", mmu.ENOMEM)
	}
	if err := r.prepMoveVMA(); err != nil {
		return 0, err
	}
	if err := r.setNewAddr(); err != nil {
		return 0, err
	}
	return r.moveVMA()
}

// expandable is vma_expandable: the bytes after the VMA are free and
// inside the user address space.
func (r *vrm) expandable() bool {
	end := r.vma.End + r.delta
	if end < r.vma.End || end > r.taskSize {
		return false
	}
	return len(r.mm.VMAsIn(r.vma.End, end)) == 0
}

// populate faults in [start, end) after an mlock()ed mapping grew, as
// mm_populate does once mremap has dropped mmap_lock: a write fault where
// the VMA is private and writable (to break COW now), a read fault
// otherwise. Running out of memory there is not an error, as in Linux.
func (r *vrm) populate(start, end uint64) {
	for a := start; a < end; a += r.pageSize {
		v := r.mm.FindVMA(a)
		if v == nil || v.Flags&mmu.VMPFNMap != 0 {
			continue
		}
		kind := mmu.Read
		if v.Flags&(mmu.VMWrite|mmu.VMShared) == mmu.VMWrite {
			kind = mmu.Write
		}
		if err := r.mm.HandleFault(a, kind); err != nil {
			return
		}
	}
}

// mremapTo is mremap_to: a move to a new address (Fixed, or DontUnmap
// with a hint).
func (r *vrm) mremapTo() (uint64, error) {
	mm := r.mm
	if err := r.prepMoveVMA(); err != nil {
		return 0, err
	}
	// s390 grows its tables for a high target before anything changes
	// (get_unmapped_area's crst_table_upgrade).
	if r.flags&Fixed != 0 {
		if err := mm.GrowFor(r.newAddr, r.newLen); err != nil {
			return 0, err
		}
		if err := mm.UnmapRange(r.newAddr, r.newAddr+r.newLen); err != nil {
			return 0, err
		}
		if r.vma = mm.FindVMA(r.addr); r.vma == nil {
			return 0, fmt.Errorf("source vanished: %w", mmu.EFAULT)
		}
	}
	if r.typ == shrink {
		if err := mm.UnmapRange(r.addr+r.newLen, r.addr+r.oldLen); err != nil {
			return 0, err
		}
		r.oldLen = r.newLen
		r.vma = mm.FindVMA(r.addr)
	}
	if err := r.setNewAddr(); err != nil {
		return 0, err
	}
	return r.moveVMA()
}

// setNewAddr is vrm_set_new_addr: get_unmapped_area for the new range,
// with MAP_FIXED for Fixed and newAddr as a hint otherwise.
func (r *vrm) setNewAddr() error {
	var hint uint64
	if r.impliesNewAddr() {
		hint = r.newAddr
	}
	if r.flags&Fixed != 0 {
		r.newAddr = hint
		return nil
	}
	addr, err := getUnmappedArea(r.mm, hint, r.newLen, r.vma, r.addr)
	if err != nil {
		return err
	}
	r.newAddr = addr
	return nil
}

// prepMoveVMA is prep_move_vma: refuse a move that could take the map
// count past the limit (the copy may add a VMA, the source unmap split
// one in three).
func (r *vrm) prepMoveVMA() error {
	if !r.checkMapCountAgainstSplit(false) {
		return fmt.Errorf("%d mappings, too close to max_map_count %d: %w", r.mapCount(), maxMapCount, mmu.ENOMEM)
	}
	return nil
}

// pageShift returns PAGE_SHIFT.
func (r *vrm) pageShift() uint { return r.mm.Machine().Arch().Geometry.PageShift }
