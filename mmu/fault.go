package mmu

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// AccessKind is the kind of a memory access.
type AccessKind uint8

const (
	// Read is a load.
	Read AccessKind = iota
	// Write is a store.
	Write
	// Exec is an instruction fetch.
	Exec
)

func (k AccessKind) String() string {
	if k <= Exec {
		return [...]string{"read", "write", "exec"}[k]
	}
	return fmt.Sprintf("access(%d)", uint8(k))
}

// Fault describes one page fault for the handlers.
type Fault struct {
	// VMA is the area the address lies in; Addr the page-aligned address.
	VMA  *VMA
	Addr uint64
	// Kind is the access that faulted.
	Kind AccessKind
	// Unshare asks for an exclusive anonymous page without write access
	// (FAULT_FLAG_UNSHARE, as GUP's FOLL_PIN needs).
	Unshare bool
}

func (f *Fault) write() bool { return f.Kind == Write }

// errFallback is returned by huge-page handlers that split the huge
// mapping and want the PTE-level handler to finish (VM_FAULT_FALLBACK).
var errFallback = errors.New("fall back to PTE level")

// HandleFault handles a page fault at addr (handle_mm_fault under
// mmap_lock). It fails with EFAULT when no VMA allows the access (SIGSEGV),
// with ENOMEM when memory runs out (VM_FAULT_OOM), and with EINVAL for an
// unknown access kind or an address space torn down.
func (mm *MM) HandleFault(addr uint64, kind AccessKind) error {
	if mm.dead {
		return fmt.Errorf("fault at %#x: address space %s is gone: %w", addr, mm.name, EINVAL)
	}
	if kind > Exec {
		return fmt.Errorf("fault at %#x: unknown access kind %d: %w", addr, kind, EINVAL)
	}
	mm.meter.Note(cost.Faults, 1, addr, uint64(kind))
	mm.meter.Add(cost.MmapLocks, 1)
	vma := mm.FindVMA(addr)
	if vma == nil {
		return fmt.Errorf("%s fault at %#x: no mapping: %w", kind, addr, EFAULT)
	}
	if !accessOK(vma, kind) {
		return fmt.Errorf("%s fault at %#x: %s mapping forbids it: %w", kind, addr, vma.Flags, EFAULT)
	}
	return mm.HandleVMAFault(&Fault{VMA: vma, Addr: addr &^ (mm.pageSize() - 1), Kind: kind})
}

// accessOK reports whether the VMA's protection allows the access
// (access_error).
func accessOK(v *VMA, kind AccessKind) bool {
	switch kind {
	case Write:
		return v.Flags&VMWrite != 0
	case Exec:
		return v.Flags&VMExec != 0
	}
	return v.Flags&(VMRead|VMWrite|VMExec) != 0
}

// HandleVMAFault runs the fault handlers for a fault whose VMA is known
// and allowed (__handle_mm_fault). The speculative and per-VMA-lock paths
// call it after their own validation. It fails with EINVAL for a fault
// without a VMA that contains its address or with an unknown kind.
func (mm *MM) HandleVMAFault(f *Fault) error {
	if f == nil {
		return fmt.Errorf("fault: none given: %w", EINVAL)
	}
	// The fields are formatted one by one: handing f itself to fmt would
	// make every caller's Fault escape to the heap, a garbage allocation
	// per fault.
	if f.VMA == nil || !f.VMA.Contains(f.Addr) || f.Kind > Exec {
		return fmt.Errorf("fault at %#x (%v): no VMA containing the address, or a bad kind: %w", f.Addr, f.Kind, EINVAL)
	}
	pmdp, err := mm.pt.WalkAlloc(f.Addr, pgtable.PMD)
	if err != nil {
		return fmt.Errorf("fault at %#x: %w", f.Addr, err)
	}
	if pmdp.Level() < pgtable.PMD {
		return mm.hugeUpperFault(f, pmdp)
	}
	if pmdp.Child() == nil {
		pmd := mm.pt.RawGet(pmdp)
		switch {
		case mm.pt.IsNone(pmd, pgtable.PMD):
			if mm.thpEligible(f.VMA, f.Addr) {
				done, err := mm.doHugePMDAnonymous(f, pmdp)
				if err != nil || done {
					return err
				}
			}
		case mm.m.arch.Format.IsLeaf(pmd, pgtable.PMD):
			err := mm.hugePMDFault(f, pmdp, pmd)
			if err != errFallback {
				return err
			}
		}
	}
	ptep, err := mm.pt.WalkAlloc(f.Addr, pgtable.PTE)
	if err != nil {
		return fmt.Errorf("fault at %#x: %w", f.Addr, err)
	}
	if ptep.Level() != pgtable.PTE {
		return fmt.Errorf("fault at %#x: huge mapping appeared: %w", f.Addr, EAGAIN)
	}
	return mm.handlePTEFault(f, ptep)
}

// handlePTEFault is handle_pte_fault under the page-table lock.
func (mm *MM) handlePTEFault(f *Fault, ptep pgtable.Ptr) error {
	mm.meter.Add(cost.PTLocks, 1)
	fm := &mm.m.arch.Format
	e := mm.pt.PtepGet(f.Addr, ptep)
	if fm.IsNone(e, pgtable.PTE) {
		if f.VMA.Anonymous() {
			return mm.doAnonymousPage(f, ptep)
		}
		return mm.doFault(f, ptep)
	}
	if !fm.Present(e, pgtable.PTE) {
		return fmt.Errorf("fault at %#x: non-present entry %#x: %w", f.Addr, e, EFAULT)
	}
	if f.write() || f.Unshare {
		if !fm.Write(e, pgtable.PTE) || f.Unshare {
			return mm.doWPPage(f, ptep, e)
		}
		e = fm.MkDirty(e, pgtable.PTE)
	}
	e = fm.MkYoung(e, pgtable.PTE)
	// A spurious fault (another CPU fixed it, or a stale stricter TLB
	// entry) changes nothing.
	mm.pt.PtepSetAccessFlags(f.Addr, ptep, e, f.write())
	return nil
}

// anonProt returns the first PTE of a new anonymous mapping.
func (mm *MM) newAnonPTE(v *VMA, pfn phys.PFN) pgtable.Entry {
	fm := &mm.m.arch.Format
	e := fm.MkYoung(fm.MkPTE(pfn, v.Flags.Prot()), pgtable.PTE)
	if v.Flags&VMWrite != 0 {
		e = fm.MkWrite(fm.MkDirty(e, pgtable.PTE), pgtable.PTE)
	}
	return e
}

// doAnonymousPage handles a fault on an empty PTE of anonymous memory: the
// shared zero page for a read, else a new zeroed folio of the VMA's folio
// order where it fits, falling back to one page (do_anonymous_page).
func (mm *MM) doAnonymousPage(f *Fault, ptep pgtable.Ptr) error {
	fm := &mm.m.arch.Format
	mm.meter.Add(cost.FaultsAnon, 1)
	if !f.write() && !f.Unshare && f.VMA.Flags&VMShared == 0 {
		e := fm.MkSpecial(fm.MkYoung(fm.MkPTE(mm.m.zero, f.VMA.Flags.Prot()), pgtable.PTE), pgtable.PTE)
		mm.pt.SetPTEAt(f.Addr, ptep, e)
		return nil
	}
	f.VMA.AnonVMA = true
	order := mm.anonOrder(f.VMA, f.Addr, ptep)
	folio, err := mm.allocFolio(order, true)
	if err != nil {
		return fmt.Errorf("anonymous fault at %#x: %w", f.Addr, err)
	}
	nr := int(folio.NrPages())
	off := int((f.Addr >> mm.pageShift()) & uint64(nr-1))
	addr := f.Addr - uint64(off)<<mm.pageShift()
	mm.RefAdd(folio, nr-1)
	mm.AddNewAnonRmap(folio, folio.PFN, nr, true)
	mm.AddRSS(MMAnonPages, int64(nr))
	mm.pt.SetPTEs(addr, ptep.Add(-off), mm.newAnonPTE(f.VMA, folio.PFN), nr)
	return nil
}

// allocFolio allocates a zeroed folio of the given order, falling back to
// smaller orders down to one page when allowed (alloc_anon_folio).
func (mm *MM) allocFolio(order uint8, fallback bool) (phys.Folio, error) {
	for {
		pfn, err := mm.m.mem.Alloc(uint(order), phys.KindFolio)
		if err == nil {
			f := phys.Folio{PFN: pfn, Order: order}
			mm.meter.Add(cost.FolioAllocs, 1)
			mm.meter.Add(cost.PageZeroes, f.NrPages())
			return f, nil
		}
		if !fallback || order == 0 {
			return phys.Folio{}, err
		}
		order = 0
	}
}

// pmdOrder returns the folio order of one PMD mapping.
func (mm *MM) pmdOrder() uint8 {
	return uint8(mm.m.arch.Geometry.Shift(pgtable.PMD) - mm.pageShift())
}

// anonOrder returns the order of the folio an anonymous fault at addr
// allocates: the VMA's folio order when its naturally aligned range lies
// in the VMA and in one PTE table and every PTE of it is empty, else 0.
// A PMD-sized order is used at the PTE level only with thp=never (a
// PTE-mapped THP).
func (mm *MM) anonOrder(v *VMA, addr uint64, ptep pgtable.Ptr) uint8 {
	o := v.FolioOrder
	if o == 0 || v.Flags&VMShared != 0 {
		return 0
	}
	if o >= mm.pmdOrder() && (o > mm.pmdOrder() || mm.m.knobs.THP) {
		return 0
	}
	n := uint64(1) << o
	size := n << mm.pageShift()
	start := addr &^ (size - 1)
	if start < v.Start || start+size > v.End {
		return 0
	}
	first := ptep.I - int((addr-start)>>mm.pageShift())
	if first < 0 || first+int(n) > ptep.T.Len() {
		return 0
	}
	if !mm.ptesNone(ptep.T, first, int(n)) {
		return 0
	}
	return o
}

// ptesNone reports whether n PTEs from index first are all empty
// (pte_range_none).
func (mm *MM) ptesNone(t *pgtable.Table, first, n int) bool {
	fm := &mm.m.arch.Format
	for i := first; i < first+n; i++ {
		if !fm.IsNone(t.Entry(i), pgtable.PTE) {
			return false
		}
	}
	return true
}

// thpEligible reports whether an anonymous fault at addr may map a
// PMD-sized folio with one PMD entry.
func (mm *MM) thpEligible(v *VMA, addr uint64) bool {
	if !v.Anonymous() || v.Flags&VMShared != 0 || !mm.m.knobs.THP || v.FolioOrder != mm.pmdOrder() {
		return false
	}
	if !mm.m.arch.Caps.THPLevels[pgtable.PMD] {
		return false
	}
	size := mm.m.arch.Geometry.Size(pgtable.PMD)
	h := addr &^ (size - 1)
	return h >= v.Start && h+size <= v.End
}

// doHugePMDAnonymous maps a new PMD-sized folio with one PMD entry
// (do_huge_pmd_anonymous_page), depositing a preallocated PTE table for a
// later split. It reports false when the folio cannot be allocated, so
// the fault falls back to the PTE level.
func (mm *MM) doHugePMDAnonymous(f *Fault, pmdp pgtable.Ptr) (bool, error) {
	fm := &mm.m.arch.Format
	folio, err := mm.allocFolio(mm.pmdOrder(), false)
	if err != nil {
		return false, nil
	}
	dep, err := mm.pt.AllocTable(pgtable.PTE)
	if err != nil {
		mm.RefSub(folio, 1)
		return false, fmt.Errorf("huge fault at %#x: %w", f.Addr, err)
	}
	mm.meter.Add(cost.FaultsAnon, 1)
	mm.meter.Add(cost.PTLocks, 1)
	f.VMA.AnonVMA = true
	e := fm.MkYoung(fm.MkHugeAt(pgtable.PMD, folio.PFN, f.VMA.Flags.Prot()), pgtable.PMD)
	if f.VMA.Flags&VMWrite != 0 {
		e = fm.MkWrite(fm.MkDirty(e, pgtable.PMD), pgtable.PMD)
	}
	mm.AddEntireRmap(folio, true, true)
	mm.AddRSS(MMAnonPages, int64(folio.NrPages()))
	mm.deposits = append(mm.deposits, dep)
	size := mm.m.arch.Geometry.Size(pgtable.PMD)
	if err := mm.pt.SetLeaf(f.Addr&^(size-1), pmdp, e); err != nil {
		return false, err
	}
	return true, nil
}

// hugePMDFault handles a fault on a present huge PMD: access-bit update,
// write-fault reuse of an exclusive folio, or a split that lets the PTE
// level copy one page (do_huge_pmd_wp_page, huge_pmd_set_accessed).
func (mm *MM) hugePMDFault(f *Fault, pmdp pgtable.Ptr, pmd pgtable.Entry) error {
	fm := &mm.m.arch.Format
	mm.meter.Add(cost.PTLocks, 1)
	size := mm.m.arch.Geometry.Size(pgtable.PMD)
	haddr := f.Addr &^ (size - 1)
	if !fm.Present(pmd, pgtable.PMD) {
		return fmt.Errorf("fault at %#x: non-present huge entry: %w", f.Addr, EFAULT)
	}
	if (f.write() && !fm.Write(pmd, pgtable.PMD)) || f.Unshare {
		folio := mm.Folio(fm.PFN(pmd, pgtable.PMD))
		mem := mm.m.mem
		head := mem.Page(folio.PFN)
		if mem.Test(folio, phys.FlagAnon) && (head.Has(phys.FlagAnonExclusive) || mem.Refcount(folio) == 1) {
			head.Set(phys.FlagAnonExclusive)
			if f.Unshare {
				return nil
			}
			pmd = fm.MkWrite(fm.MkDirty(pmd, pgtable.PMD), pgtable.PMD)
		} else {
			if err := mm.SplitHugePMD(f.VMA, haddr, pmdp); err != nil {
				return err
			}
			return errFallback
		}
	} else if f.write() {
		pmd = fm.MkDirty(pmd, pgtable.PMD)
	}
	pmd = fm.MkYoung(pmd, pgtable.PMD)
	if mm.pt.RawGet(pmdp) != pmd {
		// pmdp_set_access_flags: an exchange (s390 IDTE), never a plain
		// store over the live entry.
		mm.pt.ExchangeLeaf(haddr, pmdp, pmd)
	}
	return nil
}

// hugeUpperFault handles a fault that reached a leaf above the PMD level.
func (mm *MM) hugeUpperFault(f *Fault, p pgtable.Ptr) error {
	fm := &mm.m.arch.Format
	e := mm.pt.RawGet(p)
	l := p.Level()
	if !fm.Present(e, l) || (f.write() && !fm.Write(e, l)) {
		return fmt.Errorf("fault at %#x on a %s leaf: %w", f.Addr, l, EFAULT)
	}
	n := fm.MkYoung(e, l)
	if f.write() {
		n = fm.MkDirty(n, l)
	}
	if n != e {
		mm.pt.ExchangeLeaf(f.Addr&^(mm.m.arch.Geometry.Size(l)-1), p, n)
	}
	return nil
}

// doWPPage handles a write (or unshare) fault on a present PTE without
// write permission: reuse an exclusive anonymous page, make a shared page
// writable, or copy (do_wp_page).
func (mm *MM) doWPPage(f *Fault, ptep pgtable.Ptr, e pgtable.Entry) error {
	fm := &mm.m.arch.Format
	mem := mm.m.mem
	pfn := fm.PFN(e, pgtable.PTE)
	if fm.Special(e, pgtable.PTE) || pfn == mm.m.zero {
		return mm.wpPageCopy(f, ptep, e, false)
	}
	folio := mm.Folio(pfn)
	if f.VMA.Flags&VMShared != 0 {
		if f.Unshare {
			return nil
		}
		mm.pageMkwrite(f.VMA, folio)
		mem.SetFlags(folio, phys.FlagDirty)
		n := fm.MkYoung(fm.MkWrite(fm.MkDirty(e, pgtable.PTE), pgtable.PTE), pgtable.PTE)
		mm.pt.PtepSetAccessFlags(f.Addr, ptep, n, true)
		return nil
	}
	if !mem.Test(folio, phys.FlagAnon) {
		return mm.wpPageCopy(f, ptep, e, true)
	}
	page := mem.Page(pfn)
	reuse := page.Has(phys.FlagAnonExclusive) || (!folio.Large() && mem.Refcount(folio) == 1)
	if !reuse {
		return mm.wpPageCopy(f, ptep, e, true)
	}
	page.Set(phys.FlagAnonExclusive)
	if f.Unshare {
		return nil
	}
	n := fm.MkYoung(fm.MkWrite(fm.MkDirty(e, pgtable.PTE), pgtable.PTE), pgtable.PTE)
	mm.pt.PtepSetAccessFlags(f.Addr, ptep, n, true)
	return nil
}

// wpPageCopy gives the faulting address a private copy of its page
// (wp_page_copy): a new exclusive anonymous page, the old PTE cleared and
// flushed before the new one is set, the old page's mapping and reference
// dropped.
func (mm *MM) wpPageCopy(f *Fault, ptep pgtable.Ptr, old pgtable.Entry, copyData bool) error {
	fm := &mm.m.arch.Format
	mem := mm.m.mem
	nf, err := mm.allocFolio(0, false)
	if err != nil {
		return fmt.Errorf("cow fault at %#x: %w", f.Addr, err)
	}
	oldPFN := fm.PFN(old, pgtable.PTE)
	zero := fm.Special(old, pgtable.PTE) || oldPFN == mm.m.zero
	if copyData && !zero {
		mem.CopyContent(nf.PFN, oldPFN, 1)
		mm.meter.Add(cost.PageCopies, 1)
	}
	mm.meter.Add(cost.FaultsCOW, 1)
	f.VMA.AnonVMA = true
	mm.AddNewAnonRmap(nf, nf.PFN, 1, true)
	e := fm.MkYoung(fm.MkPTE(nf.PFN, f.VMA.Flags.Prot()), pgtable.PTE)
	if f.Unshare {
		if fm.SoftDirty(old, pgtable.PTE) {
			e = fm.MkSoftDirty(e, pgtable.PTE)
		}
	} else {
		e = fm.MkWrite(fm.MkDirty(e, pgtable.PTE), pgtable.PTE)
	}
	mm.ptepClearFlush(f.Addr, ptep)
	mm.pt.SetPTEAt(f.Addr, ptep, e)
	switch {
	case zero:
		mm.AddRSS(MMAnonPages, 1)
	default:
		of := mm.Folio(oldPFN)
		if !mem.Test(of, phys.FlagAnon) {
			mm.AddRSS(mm.fileRSS(f.VMA), -1)
			mm.AddRSS(MMAnonPages, 1)
		}
		mm.RemoveRmap(of, oldPFN, 1)
		mm.RefSub(of, 1)
	}
	return nil
}

// fileRSS returns the RSS counter of a file VMA's page-cache pages.
func (mm *MM) fileRSS(v *VMA) RSSKind {
	if v.File != nil {
		return v.File.rssKind()
	}
	return MMFilePages
}

// doFault handles a fault on an empty PTE of a file mapping: a read maps
// the page-cache page (after fault-around), a private write copies it, a
// shared write maps it writable and dirties it.
func (mm *MM) doFault(f *Fault, ptep pgtable.Ptr) error {
	v := f.VMA
	idx := v.PgOffAt(f.Addr, mm.pageShift())
	switch {
	case !f.write() && !f.Unshare:
		if mm.faultAround(f, ptep) {
			return nil
		}
		pfn, err := mm.getFolio(v.File, idx, v.FolioOrder)
		if err != nil {
			return fmt.Errorf("file fault at %#x: %w", f.Addr, err)
		}
		mm.finishFault(f, ptep, pfn)
		return nil
	case v.Flags&VMShared == 0:
		return mm.doCOWFault(f, ptep, idx)
	default:
		pfn, err := mm.getFolio(v.File, idx, v.FolioOrder)
		if err != nil {
			return fmt.Errorf("file fault at %#x: %w", f.Addr, err)
		}
		mm.pageMkwrite(v, mm.Folio(pfn))
		mm.finishFault(f, ptep, pfn)
		mm.m.mem.SetFlags(mm.Folio(pfn), phys.FlagDirty)
		return nil
	}
}

// doCOWFault handles a write fault on an empty PTE of a private file
// mapping: copy the page-cache page into a new anonymous page.
func (mm *MM) doCOWFault(f *Fault, ptep pgtable.Ptr, idx uint64) error {
	src, err := mm.getFolio(f.VMA.File, idx, f.VMA.FolioOrder)
	if err != nil {
		return fmt.Errorf("cow fault at %#x: %w", f.Addr, err)
	}
	nf, err := mm.allocFolio(0, false)
	if err != nil {
		return fmt.Errorf("cow fault at %#x: %w", f.Addr, err)
	}
	mm.m.mem.CopyContent(nf.PFN, src, 1)
	mm.meter.Add(cost.PageCopies, 1)
	mm.meter.Add(cost.FaultsCOW, 1)
	f.VMA.AnonVMA = true
	mm.AddNewAnonRmap(nf, nf.PFN, 1, true)
	mm.AddRSS(MMAnonPages, 1)
	mm.pt.SetPTEAt(f.Addr, ptep, mm.newAnonPTE(f.VMA, nf.PFN))
	return nil
}

// finishFault maps the page-cache page pfn at the fault address, or its
// whole folio when fault_whole_folio is on and the folio fits in the VMA
// and the PTE table with every target PTE empty (finish_fault).
func (mm *MM) finishFault(f *Fault, ptep pgtable.Ptr, pfn phys.PFN) {
	folio := mm.Folio(pfn)
	nr, addr, p, first := 1, f.Addr, ptep, pfn
	if mm.m.knobs.FaultWholeFolio && folio.Large() {
		n := int(folio.NrPages())
		idx := int(pfn - folio.PFN)
		vmaOff := int((f.Addr - f.VMA.Start) >> mm.pageShift())
		vmaPages := int(f.VMA.Len() >> mm.pageShift())
		if vmaOff >= idx && vmaOff+n-idx <= vmaPages && ptep.I >= idx && ptep.I+n-idx <= ptep.T.Len() &&
			mm.ptesNone(ptep.T, ptep.I-idx, n) {
			nr, addr, p, first = n, f.Addr-uint64(idx)<<mm.pageShift(), ptep.Add(-idx), folio.PFN
		}
	}
	if nr == 1 && !mm.m.arch.Format.IsNone(mm.pt.RawGet(ptep), pgtable.PTE) {
		return
	}
	mm.setPTERange(f.VMA, folio, first, nr, addr, p, f.write(), false)
}

// setPTERange maps nr pages of a page-cache folio from frame first at addr
// (set_pte_range): one reference and one mapcount per page, RSS, and one
// set_ptes call.
func (mm *MM) setPTERange(v *VMA, folio phys.Folio, first phys.PFN, nr int, addr uint64, p pgtable.Ptr, write, prefault bool) {
	fm := &mm.m.arch.Format
	e := fm.MkPTE(first, v.Flags.Prot())
	if prefault && mm.m.arch.Caps.OldPrefaultedPTEs {
		e = fm.MkOld(e, pgtable.PTE)
	} else {
		e = fm.MkYoung(e, pgtable.PTE)
	}
	if write && v.Flags&VMWrite != 0 {
		e = fm.MkWrite(fm.MkDirty(e, pgtable.PTE), pgtable.PTE)
	}
	mm.RefAdd(folio, nr)
	mm.AddFileRmap(folio, first, nr)
	mm.AddRSS(mm.fileRSS(v), int64(nr))
	mm.pt.SetPTEs(addr, p, e, nr)
}

// faultAround maps the page-cache pages already cached around a read
// fault, in runs per folio (do_fault_around, filemap_map_pages). It
// reports whether the faulting address got mapped.
func (mm *MM) faultAround(f *Fault, ptep pgtable.Ptr) bool {
	nrPages := int(mm.m.knobs.FaultAroundBytes >> mm.pageShift())
	if nrPages <= 1 {
		return false
	}
	v := f.VMA
	ptesPer := ptep.T.Len()
	pteOff := ptep.I
	vmaOff := int((f.Addr - v.Start) >> mm.pageShift())
	vmaPages := int(v.Len() >> mm.pageShift())
	from := pteOff - min(pteOff, vmaOff)
	if a := pteOff &^ (nrPages - 1); a > from {
		from = a
	}
	to := min(from+nrPages, ptesPer, pteOff+vmaPages-vmaOff) - 1
	mapped := false
	base := f.Addr - uint64(pteOff)<<mm.pageShift()
	idx0 := v.PgOffAt(f.Addr, mm.pageShift()) - uint64(pteOff)
	for i := from; i <= to; {
		pfn, ok := v.File.Cached(idx0 + uint64(i))
		if !ok || !mm.m.arch.Format.IsNone(ptep.T.Entry(i), pgtable.PTE) {
			i++
			continue
		}
		folio := mm.Folio(pfn)
		// Extend the run while the next page is the next page of the same
		// folio and its PTE is empty.
		n := 1
		for i+n <= to {
			q, ok := v.File.Cached(idx0 + uint64(i+n))
			if !ok || q != pfn+phys.PFN(n) || !folio.Contains(q) || !mm.m.arch.Format.IsNone(ptep.T.Entry(i+n), pgtable.PTE) {
				break
			}
			n++
		}
		addr := base + uint64(i)<<mm.pageShift()
		hit := i <= pteOff && pteOff < i+n
		mm.setPTERange(v, folio, pfn, n, addr, pgtable.Ptr{T: ptep.T, I: i}, false, !hit)
		mapped = mapped || hit
		i += n
	}
	return mapped
}

// ptepClearFlush clears a PTE and makes sure no TLB still holds it
// (ptep_clear_flush): get-and-clear then flush_tlb_page, or, where live
// entries may only change by an invalidating exchange (s390), one direct
// IPTE that purges as it clears.
func (mm *MM) ptepClearFlush(addr uint64, p pgtable.Ptr) pgtable.Entry {
	if mm.m.arch.Caps.LiveEntriesNeedInvalidate {
		return mm.pt.RawExchange(addr, p, mm.m.arch.Format.None[pgtable.PTE])
	}
	old := mm.pt.PtepGetAndClear(addr, p)
	mm.m.tlb.FlushTLBPage(mm.tlb, addr)
	return old
}
