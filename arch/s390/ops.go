package s390

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// PTEOps is s390's implementation of the public PTE functions
// (arch/s390/include/asm/pgtable.h, arch/s390/mm/pgtable.c): a live
// entry is never overwritten by a plain store but exchanged, with the
// IPTE that purges it (ptep_xchg_direct) or with ptep_xchg_lazy, which
// defers the purge when only the issuing CPU is attached to the mm.
//
//   - ptep_get_and_clear and clear_full_ptes: ptep_xchg_lazy, or with
//     full (a full-mm teardown) a plain store of _PAGE_INVALID.
//   - ptep_set_wrprotect and wrprotect_ptes: ptep_xchg_lazy, and only
//     for a writable pte.
//   - ptep_test_and_clear_young: ptep_xchg_direct with the pte made old.
//   - ptep_set_access_flags: RDP (reset DAT protection, no
//     invalidation, then a store that changes only software bits) when
//     the change is _PAGE_PROTECT going away and nothing else but
//     _PAGE_INVALID (pte_allow_rdp); otherwise ptep_xchg_direct.
//   - set_ptes, ptep_get: plain, as generic.
//
// The purge itself (IPTE local or global, counted as ipte_ops) is done
// by TLBPolicy when it sees the exchange; segment and region entries
// exchanged by pgtable.ExchangeLeaf get their IDTE the same way. The
// ops tell the policy about the plain stores s390 makes over live
// entries by design, so the live-store check leaves them alone.
//
// Cost: one exchange or store per PTE, as Linux; no allocation.
type PTEOps struct {
	pgtable.GenericOps
	// sys and ctx are the machine's TLBs and the mm's context: the ops
	// read the attached CPUs and share the mm's flush_mm flag and
	// cpumask with TLBPolicy.
	sys *tlb.System
	ctx *tlb.Context
}

// NewPTEOps returns the PTE operations of one user address space.
func NewPTEOps(env arch.Env) pgtable.ArchOps {
	return &PTEOps{sys: env.TLB, ctx: env.Context}
}

// usable reports whether the ops know their mm.
func (o *PTEOps) usable() bool { return o.sys != nil && o.ctx != nil && !o.ctx.Released() }

// plainStore stores e over a live entry as s390 itself does (see
// TLBPolicy), which the live-store check must not flag.
func (o *PTEOps) plainStore(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) {
	if !o.usable() {
		pt.RawSet(addr, p, e)
		return
	}
	st := state(o.sys, o.ctx)
	st.allowStore = true
	pt.RawSet(addr, p, e)
	st.allowStore = false
}

// xchgDirect is ptep_xchg_direct: IPTE (local or global, decided by the
// policy) unless the old pte is invalid already, then the store of new.
// It returns the old pte.
func (o *PTEOps) xchgDirect(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, new pgtable.Entry) pgtable.Entry {
	old := pt.RawGet(p)
	if old&Invalid != 0 {
		pt.RawSet(addr, p, new)
		return old
	}
	pt.RawExchange(addr, p, new)
	return old
}

// xchgLazy is ptep_xchg_lazy: with the mm attached to the issuing CPU
// alone, set the invalid bit in place and defer the purge to the next
// flush of the mm (flush_mm); otherwise a global IPTE. Then the store of
// new. It returns the old pte.
func (o *PTEOps) xchgLazy(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, new pgtable.Entry) pgtable.Entry {
	old := pt.RawGet(p)
	if old&Invalid != 0 || !o.usable() {
		if old&Invalid != 0 {
			pt.RawSet(addr, p, new)
		} else {
			pt.RawExchange(addr, p, new)
		}
		return old
	}
	st := state(o.sys, o.ctx)
	local := o.sys.LocalCPU().ID()
	if o.ctx.MaskWeight() == 1 && o.ctx.InMask(local) {
		o.plainStore(pt, addr, p, old|Invalid)
		st.flushMM = true
		pt.RawSet(addr, p, new)
		return old
	}
	st.globalPurge = true
	pt.RawExchange(addr, p, new)
	st.globalPurge = false
	return old
}

// getAndClearFull is ptep_get_and_clear_full.
func (o *PTEOps) getAndClearFull(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, full bool) pgtable.Entry {
	if full {
		old := pt.RawGet(p)
		o.plainStore(pt, addr, p, PTENone)
		return old
	}
	return o.xchgLazy(pt, addr, p, PTENone)
}

// GetAndClear is get_and_clear_full_ptes: ptep_get_and_clear_full on
// each pte, the young and dirty bits of all ORed into the first.
func (o *PTEOps) GetAndClear(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int, full bool) pgtable.Entry {
	if !p.In(nr) && pt.Misused("get_and_clear_full_ptes", addr, p, nr) {
		return 0
	}
	f := pt.Format()
	ps := pt.Geometry().PageSize()
	first := o.getAndClearFull(pt, addr, p, full)
	for i := 1; i < nr; i++ {
		e := o.getAndClearFull(pt, addr+uint64(i)*ps, p.Add(i), full)
		if f.Dirty(e, pgtable.PTE) {
			first = f.MkDirty(first, pgtable.PTE)
		}
		if f.Young(e, pgtable.PTE) {
			first = f.MkYoung(first, pgtable.PTE)
		}
	}
	return first
}

// Clear is clear_full_ptes: ptep_get_and_clear_full on each pte.
func (o *PTEOps) Clear(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int, full bool) {
	if !p.In(nr) && pt.Misused("clear_full_ptes", addr, p, nr) {
		return
	}
	ps := pt.Geometry().PageSize()
	for i := 0; i < nr; i++ {
		o.getAndClearFull(pt, addr+uint64(i)*ps, p.Add(i), full)
	}
}

// Wrprotect is wrprotect_ptes: ptep_set_wrprotect on each pte, a lazy
// exchange of a writable pte.
func (o *PTEOps) Wrprotect(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int) {
	if !p.In(nr) && pt.Misused("wrprotect_ptes", addr, p, nr) {
		return
	}
	f := pt.Format()
	ps := pt.Geometry().PageSize()
	for i := 0; i < nr; i++ {
		q := p.Add(i)
		e := pt.RawGet(q)
		if f.Write(e, pgtable.PTE) {
			o.xchgLazy(pt, addr+uint64(i)*ps, q, f.Wrprotect(e, pgtable.PTE))
		}
	}
}

// TestAndClearYoung is ptep_test_and_clear_young on each pte: a direct
// exchange with the pte made old (an old pte carries _PAGE_INVALID, so
// only a young one is purged).
func (o *PTEOps) TestAndClearYoung(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int) bool {
	if !p.In(nr) && pt.Misused("ptep_test_and_clear_young", addr, p, nr) {
		return false
	}
	f := pt.Format()
	ps := pt.Geometry().PageSize()
	young := false
	for i := 0; i < nr; i++ {
		q := p.Add(i)
		e := pt.RawGet(q)
		old := o.xchgDirect(pt, addr+uint64(i)*ps, q, f.MkOld(e, pgtable.PTE))
		young = young || f.Young(old, pgtable.PTE)
	}
	return young
}

// AllowRDP is pte_allow_rdp: RDP may replace an IPTE when the change
// only takes _PAGE_PROTECT away (RO to RW), whatever _PAGE_INVALID
// does, and leaves every other bit alone.
func AllowRDP(old, new pgtable.Entry) bool {
	if old&Protect == 0 || new&Protect != 0 {
		return false
	}
	mask := ^(Invalid | Protect)
	return old&mask == new&mask
}

// SetAccessFlags is ptep_set_access_flags: nothing for the same pte;
// RDP when AllowRDP; else a direct exchange.
func (o *PTEOps) SetAccessFlags(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry, dirty bool) bool {
	if !p.In(1) && pt.Misused("ptep_set_access_flags", addr, p, 1) {
		return false
	}
	old := pt.RawGet(p)
	if old == e {
		return false
	}
	if AllowRDP(old, e) {
		// ptep_reset_dat_prot: RDP clears _PAGE_PROTECT in the live
		// entry without invalidating it (a TLB entry still marked
		// read-only only costs a spurious fault), then set_pte stores
		// the new value, which may differ only in software bits.
		o.plainStore(pt, addr, p, e)
		return true
	}
	o.xchgDirect(pt, addr, p, e)
	return true
}
