package pgtable

import "github.com/ptsim/ptsim/cost"

// ArchOps is the arch's implementation of the public PTE functions that
// core code calls (set_ptes, ptep_get, wrprotect_ptes...). Linux lets an
// arch override them; arm64 does so to manage the contiguous bit, s390 to
// invalidate live entries with IPTE, sparc64 to batch TLB flushes. The raw
// functions (RawSet, RawGet...) are the __-prefixed versions underneath.
//
// Every method works on nr consecutive PTEs of one table starting at p,
// which map addr onwards.
type ArchOps interface {
	// SetPTEs writes nr PTEs, the first e, each next mapping the next
	// frame (set_ptes). For nr > 1 the targets must be empty.
	SetPTEs(pt *PageTable, addr uint64, p Ptr, e Entry, nr int)
	// Get reads a PTE as core code sees it (ptep_get).
	Get(pt *PageTable, addr uint64, p Ptr) Entry
	// GetLockless reads a PTE without the page-table lock
	// (ptep_get_lockless).
	GetLockless(pt *PageTable, addr uint64, p Ptr) Entry
	// GetAndClear clears nr PTEs and returns the first, with the young and
	// dirty bits of all of them ORed in (get_and_clear_full_ptes).
	GetAndClear(pt *PageTable, addr uint64, p Ptr, nr int, full bool) Entry
	// Clear clears nr PTEs (clear_full_ptes).
	Clear(pt *PageTable, addr uint64, p Ptr, nr int, full bool)
	// Wrprotect write-protects nr PTEs (wrprotect_ptes).
	Wrprotect(pt *PageTable, addr uint64, p Ptr, nr int)
	// TestAndClearYoung marks nr PTEs old and reports whether any was
	// young (ptep_test_and_clear_young).
	TestAndClearYoung(pt *PageTable, addr uint64, p Ptr, nr int) bool
	// SetAccessFlags relaxes one PTE to e, which differs from it only in
	// access, dirty and write (ptep_set_access_flags); it reports whether
	// the entry changed.
	SetAccessFlags(pt *PageTable, addr uint64, p Ptr, e Entry, dirty bool) bool
	// BatchHint returns how many PTEs from p can be treated as one batch
	// without reading them all (pte_batch_hint).
	BatchHint(pt *PageTable, p Ptr, e Entry) int
	// EnterLazyMMU and LeaveLazyMMU bracket a run of PTE updates
	// (arch_enter_lazy_mmu_mode).
	EnterLazyMMU(pt *PageTable)
	LeaveLazyMMU(pt *PageTable)
}

// GenericOps implements ArchOps with Linux's generic definitions: plain
// stores, no arch bookkeeping. Arches embed it and override what they need.
// Like every ArchOps, its methods do nothing (a read gives 0) for a
// pointer whose entries are not entries of one table (see Misused).
type GenericOps struct{}

// SetPTEs is the generic set_ptes.
func (GenericOps) SetPTEs(pt *PageTable, addr uint64, p Ptr, e Entry, nr int) {
	pt.RawSetPTEs(addr, p, e, nr)
}

// Get is the generic ptep_get.
func (GenericOps) Get(pt *PageTable, addr uint64, p Ptr) Entry { return pt.RawGet(p) }

// GetLockless is the generic ptep_get_lockless.
func (GenericOps) GetLockless(pt *PageTable, addr uint64, p Ptr) Entry { return pt.RawGet(p) }

// GetAndClear is the generic get_and_clear_full_ptes.
func (GenericOps) GetAndClear(pt *PageTable, addr uint64, p Ptr, nr int, full bool) Entry {
	if !p.In(nr) && pt.Misused("get_and_clear_full_ptes", addr, p, nr) {
		return 0
	}
	return pt.getAndClearOR(addr, p, nr)
}

// getAndClearOR clears nr PTEs with plain stores and returns the first
// with the young and dirty bits of all ORed in.
func (pt *PageTable) getAndClearOR(addr uint64, p Ptr, nr int) Entry {
	f := pt.fmt
	first := pt.RawGetAndClear(addr, p)
	ps := uint64(1) << f.PageShift
	for i := 1; i < nr; i++ {
		e := pt.RawGetAndClear(addr+uint64(i)*ps, p.Add(i))
		if f.Dirty(e, PTE) {
			first = f.MkDirty(first, PTE)
		}
		if f.Young(e, PTE) {
			first = f.MkYoung(first, PTE)
		}
	}
	return first
}

// Clear is the generic clear_full_ptes.
func (GenericOps) Clear(pt *PageTable, addr uint64, p Ptr, nr int, full bool) {
	if !p.In(nr) && pt.Misused("clear_full_ptes", addr, p, nr) {
		return
	}
	ps := uint64(1) << pt.fmt.PageShift
	for i := 0; i < nr; i++ {
		pt.RawClear(addr+uint64(i)*ps, p.Add(i))
	}
}

// Wrprotect is the generic wrprotect_ptes: ptep_set_wrprotect on each.
func (GenericOps) Wrprotect(pt *PageTable, addr uint64, p Ptr, nr int) {
	if !p.In(nr) && pt.Misused("wrprotect_ptes", addr, p, nr) {
		return
	}
	if p.T.level == PTE && pt.quiet() {
		pt.bulkWrprotect(p, nr)
		return
	}
	ps := uint64(1) << pt.fmt.PageShift
	for i := 0; i < nr; i++ {
		q := p.Add(i)
		pt.RawSet(addr+uint64(i)*ps, q, pt.fmt.Wrprotect(pt.RawGet(q), PTE))
	}
}

// TestAndClearYoung is the generic ptep_test_and_clear_young over nr PTEs.
func (GenericOps) TestAndClearYoung(pt *PageTable, addr uint64, p Ptr, nr int) bool {
	if !p.In(nr) && pt.Misused("test_and_clear_young", addr, p, nr) {
		return false
	}
	young := false
	ps := uint64(1) << pt.fmt.PageShift
	for i := 0; i < nr; i++ {
		q := p.Add(i)
		e := pt.RawGet(q)
		if pt.fmt.Young(e, PTE) {
			young = true
			pt.RawSet(addr+uint64(i)*ps, q, pt.fmt.MkOld(e, PTE))
		}
	}
	return young
}

// SetAccessFlags is the generic ptep_set_access_flags: write e if it
// differs. Relaxing permissions needs no flush; a CPU still holding the
// stricter translation takes a spurious fault and walks again.
func (GenericOps) SetAccessFlags(pt *PageTable, addr uint64, p Ptr, e Entry, dirty bool) bool {
	if pt.RawGet(p) == e|pt.fmt.SetAlways {
		return false
	}
	pt.RawSet(addr, p, e)
	return true
}

// BatchHint is the generic pte_batch_hint: 1.
func (GenericOps) BatchHint(pt *PageTable, p Ptr, e Entry) int { return 1 }

// EnterLazyMMU is the generic arch_enter_lazy_mmu_mode: it only nests.
func (GenericOps) EnterLazyMMU(pt *PageTable) { pt.lazy++ }

// LeaveLazyMMU is the generic arch_leave_lazy_mmu_mode.
func (GenericOps) LeaveLazyMMU(pt *PageTable) {
	if pt.lazy > 0 {
		pt.lazy--
	}
}

// Lazy reports whether the table is inside a lazy-MMU section.
func (pt *PageTable) Lazy() bool { return pt.lazy > 0 }

// The public PTE functions. Core code calls these; they go through the
// arch's ArchOps.

// SetPTEs writes nr PTEs starting at p (set_ptes).
// Precondition: for nr > 1 the targets are empty. Like every public PTE
// function below, it does nothing (a read gives 0) when p and the nr-1
// entries after it are not entries of one table (see Misuse).
func (pt *PageTable) SetPTEs(addr uint64, p Ptr, e Entry, nr int) {
	if !p.In(nr) && pt.Misused("set_ptes", addr, p, nr) {
		return
	}
	if pt.generic {
		if p.T.level == PTE && pt.quiet() {
			if nr == 1 {
				pt.setOnePTE(p, e)
				return
			}
			pt.bulkSetPTEs(p, e, nr)
			return
		}
		pt.RawSetPTEs(addr, p, e, nr)
		return
	}
	pt.ops.SetPTEs(pt, addr, p, e, nr)
}

// SetPTEAt writes one PTE (set_pte_at).
func (pt *PageTable) SetPTEAt(addr uint64, p Ptr, e Entry) { pt.SetPTEs(addr, p, e, 1) }

// PtepGet reads a PTE (ptep_get).
func (pt *PageTable) PtepGet(addr uint64, p Ptr) Entry {
	if !p.In(1) && pt.Misused("ptep_get", addr, p, 1) {
		return 0
	}
	if pt.generic {
		pt.meter.Add(cost.EntryReads, 1) // RawGet, one call shallower
		return p.T.entries[p.I]
	}
	return pt.ops.Get(pt, addr, p)
}

// PtepGetLockless reads a PTE without the lock (ptep_get_lockless).
func (pt *PageTable) PtepGetLockless(addr uint64, p Ptr) Entry {
	if !p.In(1) && pt.Misused("ptep_get_lockless", addr, p, 1) {
		return 0
	}
	return pt.ops.GetLockless(pt, addr, p)
}

// PtepGetAndClear clears one PTE and returns it (ptep_get_and_clear).
func (pt *PageTable) PtepGetAndClear(addr uint64, p Ptr) Entry {
	if !p.In(1) && pt.Misused("ptep_get_and_clear", addr, p, 1) {
		return 0
	}
	return pt.ops.GetAndClear(pt, addr, p, 1, false)
}

// GetAndClearFullPTEs clears nr PTEs and returns the first with the A/D
// bits of all (get_and_clear_full_ptes).
func (pt *PageTable) GetAndClearFullPTEs(addr uint64, p Ptr, nr int, full bool) Entry {
	if !p.In(nr) && pt.Misused("get_and_clear_full_ptes", addr, p, nr) {
		return 0
	}
	return pt.ops.GetAndClear(pt, addr, p, nr, full)
}

// PTEClear clears one PTE (pte_clear).
func (pt *PageTable) PTEClear(addr uint64, p Ptr) {
	if !p.In(1) && pt.Misused("pte_clear", addr, p, 1) {
		return
	}
	pt.ops.Clear(pt, addr, p, 1, false)
}

// ClearFullPTEs clears nr PTEs (clear_full_ptes).
func (pt *PageTable) ClearFullPTEs(addr uint64, p Ptr, nr int, full bool) {
	if !p.In(nr) && pt.Misused("clear_full_ptes", addr, p, nr) {
		return
	}
	pt.ops.Clear(pt, addr, p, nr, full)
}

// PtepSetWrprotect write-protects one PTE (ptep_set_wrprotect).
func (pt *PageTable) PtepSetWrprotect(addr uint64, p Ptr) { pt.WrprotectPTEs(addr, p, 1) }

// WrprotectPTEs write-protects nr PTEs (wrprotect_ptes).
func (pt *PageTable) WrprotectPTEs(addr uint64, p Ptr, nr int) {
	if !p.In(nr) && pt.Misused("wrprotect_ptes", addr, p, nr) {
		return
	}
	if pt.generic {
		if p.T.level == PTE && pt.quiet() {
			if nr == 1 {
				pt.wrprotectOnePTE(p)
				return
			}
			pt.bulkWrprotect(p, nr)
			return
		}
		GenericOps{}.Wrprotect(pt, addr, p, nr)
		return
	}
	pt.ops.Wrprotect(pt, addr, p, nr)
}

// PtepTestAndClearYoung marks a PTE old, reporting whether it was young.
func (pt *PageTable) PtepTestAndClearYoung(addr uint64, p Ptr) bool {
	if !p.In(1) && pt.Misused("ptep_test_and_clear_young", addr, p, 1) {
		return false
	}
	return pt.ops.TestAndClearYoung(pt, addr, p, 1)
}

// PtepSetAccessFlags relaxes a PTE (ptep_set_access_flags).
func (pt *PageTable) PtepSetAccessFlags(addr uint64, p Ptr, e Entry, dirty bool) bool {
	if !p.In(1) && pt.Misused("ptep_set_access_flags", addr, p, 1) {
		return false
	}
	return pt.ops.SetAccessFlags(pt, addr, p, e, dirty)
}

// PteBatchHint returns pte_batch_hint for the PTE at p.
func (pt *PageTable) PteBatchHint(p Ptr, e Entry) int {
	if pt.generic || !p.Valid() {
		return 1
	}
	return pt.ops.BatchHint(pt, p, e)
}

// EnterLazyMMU enters lazy-MMU mode (arch_enter_lazy_mmu_mode).
func (pt *PageTable) EnterLazyMMU() {
	pt.ops.EnterLazyMMU(pt)
	if lo, ok := pt.observer.(LazyObserver); ok {
		lo.LazyMMU(pt, true)
	}
}

// LeaveLazyMMU leaves lazy-MMU mode (arch_leave_lazy_mmu_mode).
func (pt *PageTable) LeaveLazyMMU() {
	pt.ops.LeaveLazyMMU(pt)
	if lo, ok := pt.observer.(LazyObserver); ok {
		lo.LazyMMU(pt, false)
	}
}
