package mremap

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// moveVMA is move_vma after prep_move_vma (which the callers run before
// they change anything): the destination VMA is created (or merged into a
// neighbour) by copy_vma, the page tables move, and the source range is
// unmapped, or with DontUnmap left in place, empty. If the move falls
// short (no memory for a destination table) what moved is moved back
// with the rmap locks held, the new range is unmapped instead and ENOMEM
// returned. The unmap is best effort (unmap_source_vma): a VMA split
// that runs out of memory leaves the range mapped, and the call's result
// stands.
func (r *vrm) moveVMA() (uint64, error) {
	mm := r.mm
	// vma_start_write: no fault may race with the move.
	mm.VMAStartWrite(r.vma)
	src := r.vma
	newPgoff := src.PgOff + (r.addr-src.Start)>>r.pageShift()
	nv, needRmap, deferMerge, err := copyVMA(mm, src, r.newAddr, r.newLen, newPgoff, r.pageShift())
	if err != nil {
		return 0, err
	}
	// The rest of move_vma's fixed work, once per move whatever the path
	// or outcome: copy_vma's anon_vma_clone and accounting, the source
	// unmap's lru_add_drain and tlb_gather_mmu/tlb_finish_mmu,
	// vm_stat_account, vm_unacct_memory, the notifier and uffd hooks.
	mm.Meter().Add(cost.MoveVMAs, 1)
	mv := &Move{Old: src, New: nv, OldAddr: r.addr, NewAddr: r.newAddr, Len: r.oldLen, NeedRmapLocks: needRmap}
	moved := MovePageTables(mm, mv)
	unmapAddr, unmapLen := r.addr, r.oldLen
	var moveErr error
	if moved < r.oldLen {
		moveErr = fmt.Errorf("moved %#x of %#x bytes, out of memory for a page table: %w: %w", moved, r.oldLen, ErrShortMove, mmu.ENOMEM)
		// The rollback cannot fail for want of memory: every table it
		// needs at the old side is still there.
		back := &Move{Old: nv, New: src, OldAddr: r.newAddr, NewAddr: r.addr, Len: moved, NeedRmapLocks: true}
		MovePageTables(mm, back)
		unmapAddr, unmapLen = r.newAddr, r.newLen
	} else if nv.Flags&mmu.VMUffdWP != 0 {
		// mremap_userfaultfd_prep without UFFD_FEATURE_EVENT_REMAP:
		// the new VMA is no longer registered.
		nv.Flags &^= mmu.VMUffdWP
	}
	if moveErr == nil && r.flags&DontUnmap != 0 {
		dontunmapComplete(src, nv, r.addr, r.oldLen)
	} else if unmapLen > 0 {
		// unmap_source_vma is best effort: when splitting a VMA runs
		// out of memory, the range stays mapped (its entries have
		// moved: it refaults) and the call still succeeds, or still
		// fails with the move's own error.
		_ = mm.UnmapRange(unmapAddr, unmapAddr+unmapLen)
	}
	if deferMerge && !nv.Detached {
		mm.MergeAround(nv)
	}
	if moveErr != nil {
		return 0, moveErr
	}
	return r.newAddr, nil
}

// copyVMA is copy_vma: the VMA for [addr, addr+length) with src's
// flags, backing and anonymous pages, starting at file page pgoff. It
// merges into an adjacent compatible VMA where Linux would, and reports
// need_rmap_locks: false for a fresh VMA (it sorts after the source in
// rmap walks), new_vma->vm_pgoff <= vma->vm_pgoff for a merged one.
//
// A source whose anonymous pages were faulted in never merges: its moved
// file-page offset no longer lines up with any neighbour, which is what
// keeps Linux from merging it (the model's anonymous VMAs carry no
// offset to compare). A merge with the source itself (only possible for
// an anonymous VMA never faulted in) is deferred until the source range
// is unmapped, with the same result. It fails with EEXIST if the range
// is mapped (a caller bug).
func copyVMA(mm *mmu.MM, src *mmu.VMA, addr, length, pgoff uint64, pageShift uint) (nv *mmu.VMA, needRmap, deferMerge bool, err error) {
	if src.Anonymous() && !src.AnonVMA {
		// Not faulted in: take the new location's offset, to merge.
		pgoff = addr >> pageShift
	}
	nv = &mmu.VMA{Start: addr, End: addr + length, Flags: src.Flags, File: src.File, PgOff: pgoff,
		FolioOrder: src.FolioOrder, HugeShift: src.HugeShift, AnonVMA: src.AnonVMA}
	if err := mm.InsertVMA(nv); err != nil {
		return nil, false, false, err
	}
	if src.Anonymous() && src.AnonVMA {
		return nv, false, false, nil
	}
	prev, next := mm.Neighbours(addr, addr+length)
	if (prev == src && prev.End == addr) || (next == src && next.Start == addr+length) {
		return nv, true, true, nil
	}
	start, end := nv.Start, nv.End
	m := mm.MergeAround(nv)
	if m != nv || nv.Start != start || nv.End != end {
		return m, m.PgOff <= src.PgOff, false, nil
	}
	return nv, false, false, nil
}

// dontunmapComplete is dontunmap_complete: the old VMA stays, without
// VM_LOCKED (its pages are gone), and drops its anonymous pages' rmap
// links when it moved whole. It keeps VM_ACCOUNT: the old range stays
// charged to the commit limit, as vrm_calc_charge charged the whole new
// length for a DontUnmap move (Linux 6.17 fixed the refactor of 6.16,
// which cleared it).
func dontunmapComplete(src, nv *mmu.VMA, addr, length uint64) {
	src.Flags &^= mmu.VMLocked
	if nv != src && src.Start == addr && src.End == addr+length {
		src.AnonVMA = false
	}
}

// remapMove is remap_move (Linux 6.17): a fixed move without a resize of
// every VMA in [addr, addr+oldLen), the first of which must start at
// addr; each moves separately to newAddr plus its offset, keeping the
// gaps. A VMA that may not move with others (vma_multi_allowed) must be
// the first and hold the end of the range. Unlike Linux, which checks
// each VMA as it gets to it and may leave a partial move behind, every
// check runs before the first move.
func (r *vrm) remapMove() (uint64, error) {
	mm := r.mm
	start, end := r.addr, r.addr+r.oldLen
	vmas := mm.VMAsIn(start, end)
	if len(vmas) == 0 || vmas[0].Start > start {
		return 0, fmt.Errorf("no mapping at %#x: %w", start, mmu.EFAULT)
	}
	subs := make([]*vrm, len(vmas))
	next := r.newAddr
	for i, v := range vmas {
		// A VMA that cannot move with others may only be the first,
		// and the range must end inside it.
		if !multiAllowed(v) && (i > 0 || v.End < end) {
			return 0, fmt.Errorf("cannot move %s together with other mappings: %w", v, mmu.EFAULT)
		}
		a := max(v.Start, start)
		l := min(end, v.End) - a
		if i > 0 {
			next += v.Start - vmas[i-1].End // keep the gap
		}
		s := &vrm{mm: mm, addr: a, oldLen: l, newLen: l, flags: r.flags, newAddr: next,
			vma: v, pageSize: r.pageSize, taskSize: r.taskSize}
		next += l
		// Validate on a copy: checkPrepVMA adjusts lengths for hugetlb.
		probe := *s
		if err := probe.checkPrepVMA(); err != nil {
			return 0, err
		}
		subs[i] = s
	}
	var res uint64
	for i, s := range subs {
		s.vma = mm.FindVMA(s.addr)
		if err := s.checkPrepVMA(); err != nil {
			return 0, err
		}
		got, err := s.mremapTo()
		if err != nil {
			return 0, err
		}
		if i == 0 {
			res = got
		}
	}
	return res, nil
}

// multiAllowed is vma_multi_allowed: a VMA with userfaultfd armed moves
// alone (its notification drops mmap_lock). Anonymous, shmem, hugetlb
// and file VMAs without a custom get_unmapped_area (the model's files
// have none) obey MREMAP_FIXED and may move together.
func multiAllowed(v *mmu.VMA) bool {
	return v.Flags&mmu.VMUffdWP == 0
}

// mmapGap is the minimum gap Linux keeps between the top of the address
// space and mmap_base (MIN_GAP, 128 MiB, for the stack), without
// randomisation.
const mmapGap = 128 << 20

// getUnmappedArea is get_unmapped_area for a move of length bytes of
// src (whose range starts at srcAddr) without MAP_FIXED: hint when it is
// free, else the highest free range below mmap_base (top-down). An
// anonymous private mapping of a PMD multiple without a hint is placed
// at the same offset in its PMD as srcAddr (thp_get_unmapped_area, with
// the anonymous page offset equal to the address), so that the move can
// go by whole tables. s390 grows its tables to reach the address. It
// fails with ENOMEM when no range is free.
func getUnmappedArea(mm *mmu.MM, hint, length uint64, src *mmu.VMA, srcAddr uint64) (uint64, error) {
	a := mm.Machine().Arch()
	ps := a.PageSize()
	taskSize := a.User.End
	if length > taskSize {
		return 0, fmt.Errorf("length %#x beyond TASK_SIZE: %w", length, mmu.ENOMEM)
	}
	top := taskSize
	if a.DefaultUserTop != 0 && (hint == 0 || hint+length <= a.DefaultUserTop) {
		top = a.DefaultUserTop
	}
	low := max(a.Caps.MmapMinAddr, ps)
	if hint != 0 {
		h, ok := pageAlign(hint, ps)
		if ok && h >= low && length <= top && h <= top-length && len(mm.VMAsIn(h, h+length)) == 0 {
			if err := mm.GrowFor(h, length); err != nil {
				return 0, err
			}
			return h, nil
		}
	}
	base := top
	if base > 2*mmapGap {
		base -= mmapGap
	}
	pmd := a.Geometry.Size(pgtable.PMD)
	thp := hint == 0 && src.Anonymous() && src.Flags&mmu.VMShared == 0 &&
		a.Caps.THPLevels[pgtable.PMD] && length%pmd == 0 && length+pmd > length
	var addr uint64
	found := false
	if thp {
		if addr, found = mm.UnmappedAreaTopDown(length+pmd, low, base); found {
			sub := (srcAddr - addr) & (pmd - 1)
			if sub == 0 {
				addr += pmd
			} else {
				addr += sub
			}
		}
	}
	if !found {
		if addr, found = mm.UnmappedAreaTopDown(length, low, base); !found {
			return 0, fmt.Errorf("no free range of %#x bytes: %w", length, mmu.ENOMEM)
		}
	}
	if err := mm.GrowFor(addr, length); err != nil {
		return 0, err
	}
	return addr, nil
}
