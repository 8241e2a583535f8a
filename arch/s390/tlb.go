package s390

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// TLBPolicy is s390's TLB behaviour (arch/s390/mm/pgtable.c,
// asm/tlbflush.h, asm/tlb.h, asm/mmu_context.h). Invalidation is bound
// to the entry write, not to the flush API:
//
//   - A live page-table entry is changed by IPTE and a live segment or
//     region entry by IDTE: the instruction invalidates the entry and
//     purges its translations from the TLBs as part of the write (a
//     pgtable.WriteExchange). The purge is global, or local to the
//     issuing CPU when the mm's cpumask holds only that CPU (TLB-LC,
//     ptep_ipte_local), except after ptep_flush_lazy's decision, which
//     is always global. IPTE drops the page's TLB entries; IDTE drops
//     every translation formed through the entry, walk-cache entries
//     included. Each counts ipte_ops or idte_ops on the mm's meter. An
//     entry whose invalid bit is already set needs no purge.
//   - ptep_flush_lazy, when the mm is attached to the issuing CPU only,
//     sets the invalid bit in place with a plain store and sets the mm's
//     flush_mm flag instead of purging: the old translation stays in
//     that CPU's TLB until the deferred flush (PTEOps does this).
//   - flush_tlb_page and flush_tlb_all are no-ops. flush_tlb_range and
//     flush_tlb_mm are __tlb_flush_mm_lazy: only if flush_mm is set, an
//     IDTE of the address space (clear by ASCE) purges the mm's entries
//     on every CPU (idte_ops 1) and the mm's cpumask is reset to the
//     CPUs attached now. tlb_flush (the mmu_gather) is the same call;
//     pte_free_tlb and friends set flush_mm, so a gather that freed
//     tables always purges. flush_tlb_kernel_range is an IDTE of the
//     kernel ASCE: every kernel translation and kernel walk-cache entry
//     goes on every CPU.
//   - switch_mm adds the CPU to the mm's cpumask, and
//     finish_arch_post_lock_switch runs __tlb_flush_mm_lazy, so a CPU
//     never uses an mm with a deferred flush pending: while flush_mm is
//     set, the entries of CPUs not attached to the mm are unreachable.
//
// No IPIs are sent: IPTE and IDTE are broadcast by the hardware. The
// policy's mm_cpumask is s390's: a CPU joins it at switch_mm and leaves
// it only when a flush of the whole mm resets it to cpu_attach_mask (the
// CPUs running the mm now, the System's mask), since TLB entries tagged
// with the mm's ASCE outlive a switch away. Plain stores over live leaf
// entries are violations (tlb.CheckLiveStore), except the stores s390
// itself makes: the in-place invalid bit of a lazy flush, the store
// after RDP that changes only software bits, and the clears of a
// full-mm teardown. The model assumes the IDTE, TLB-LC and RDP
// facilities (z13 and later for the first two, z16 for RDP), and no
// KVM guest ASCEs or PGSTEs.
type TLBPolicy struct {
	tlb.BasePolicy
}

// NewTLBPolicy returns the s390 policy; no platform parameter changes
// it (IPTE and IDTE need no IPIs, virtualised or not).
func NewTLBPolicy(p arch.Platform) *TLBPolicy { return &TLBPolicy{} }

// Name returns "s390x".
func (p *TLBPolicy) Name() string { return "s390x" }

// mmState is the s390 part of an mm's context (mm->context).
type mmState struct {
	// flushMM is mm->context.flush_mm: a lazy invalidation left
	// translations in a TLB, to be purged by the next
	// __tlb_flush_mm_lazy.
	flushMM bool
	// mask is mm_cpumask(mm) as s390 keeps it: the CPUs that attached
	// to the mm since the last flush of the whole mm, whose TLBs may
	// hold its translations.
	mask []bool
	// allowStore is set by PTEOps around a plain store that s390 makes
	// over a live entry by design (see TLBPolicy).
	allowStore bool
	// globalPurge is set by PTEOps around ptep_flush_lazy's IPTE, which
	// is global whatever the cpumask.
	globalPurge bool
}

// state returns ctx's s390 state, creating it on first use.
func state(s *tlb.System, ctx *tlb.Context) *mmState {
	if st, ok := ctx.PolicyState().(*mmState); ok && len(st.mask) == s.CPUs() {
		return st
	}
	st := &mmState{mask: make([]bool, s.CPUs())}
	for cpu := range ctx.EachCPU() {
		st.mask[cpu] = true
	}
	ctx.SetPolicyState(st)
	return st
}

// FlushPending reports whether ctx has a deferred flush pending
// (flush_mm).
func FlushPending(s *tlb.System, ctx *tlb.Context) bool { return state(s, ctx).flushMM }

// CPUMask returns s390's mm_cpumask of ctx: the CPUs whose TLBs may hold
// its translations, sorted.
func CPUMask(s *tlb.System, ctx *tlb.Context) []int {
	var out []int
	for i, in := range state(s, ctx).mask {
		if in {
			out = append(out, i)
		}
	}
	return out
}

// onlyLocal reports whether st's cpumask is exactly the local CPU.
func (st *mmState) onlyLocal(local int) bool {
	for i, in := range st.mask {
		if in != (i == local) {
			return false
		}
	}
	return true
}

// Flush carries out one flush API call.
func (p *TLBPolicy) Flush(s *tlb.System, r *tlb.Request) {
	switch r.Kind {
	case tlb.FlushPage, tlb.FlushAll:
		// Both are "do { } while (0)": the exchange purged already.
	case tlb.FlushKernelRange:
		p.flushKernel(s, r)
	default:
		p.flushMMLazy(s, r.Ctx, r.Meter)
	}
}

// TLBFlush is s390's tlb_flush: __tlb_flush_mm_lazy, counted as the
// flush_tlb_mm it is. pte_free_tlb, pmd_free_tlb and pud_free_tlb set
// flush_mm, so a gather that freed tables purges the whole mm.
func (p *TLBPolicy) TLBFlush(s *tlb.System, g *tlb.Gather) {
	if g.FreedTables() {
		state(s, g.Context()).flushMM = true
	}
	s.FlushTLBMM(g.Context())
}

// flushMMLazy is __tlb_flush_mm_lazy: if flush_mm is set, clear it and
// flush the mm (__tlb_flush_mm).
func (p *TLBPolicy) flushMMLazy(s *tlb.System, ctx *tlb.Context, m *cost.Meter) {
	st := state(s, ctx)
	if !st.flushMM {
		return
	}
	st.flushMM = false
	// __tlb_flush_mm: reset the flush mask to the attached CPUs, then
	// IDTE of the ASCE, which purges on every CPU.
	for i := range st.mask {
		st.mask[i] = ctx.InMask(i)
	}
	m.Note(cost.IDTEOps, 1, 0, uint64(s.LocalCPU().ID()))
	for i := 0; i < s.CPUs(); i++ {
		s.CPU(i).DropASID(m, ctx)
	}
}

// flushKernel is flush_tlb_kernel_range: __tlb_flush_kernel, an IDTE of
// init_mm's ASCE. Kernel translations are the model's global entries.
func (p *TLBPolicy) flushKernel(s *tlb.System, r *tlb.Request) {
	r.Meter.Note(cost.IDTEOps, 1, r.Start, uint64(s.LocalCPU().ID()))
	for i := 0; i < s.CPUs(); i++ {
		c := s.CPU(i)
		c.DropGlobal(r.Meter)
		if r.Ctx != nil {
			c.DropASID(r.Meter, r.Ctx)
		}
	}
}

// Switch is switch_mm and finish_arch_post_lock_switch: the CPU joins
// the mm's cpumask, and a deferred flush is carried out before the CPU
// uses the mm.
func (p *TLBPolicy) Switch(s *tlb.System, c *tlb.CPU, prev, next *tlb.Context) {
	if next == nil {
		return
	}
	st := state(s, next)
	st.mask[c.ID()] = true
	p.flushMMLazy(s, next, next.Meter())
}

// Reachable reports whether c can use its entries of ctx: not when a
// deferred flush of ctx is pending and c is not attached to ctx, since
// c runs that flush before it attaches again.
func (p *TLBPolicy) Reachable(s *tlb.System, c *tlb.CPU, ctx *tlb.Context, va uint64) bool {
	if ctx.Kernel() {
		return true
	}
	st, ok := ctx.PolicyState().(*mmState)
	return !ok || !st.flushMM || ctx.InMask(c.ID())
}

// Written purges at an invalidating exchange and checks plain stores.
func (p *TLBPolicy) Written(s *tlb.System, ctx *tlb.Context, addr uint64, ptr pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind) {
	switch kind {
	case pgtable.WriteExchange:
		p.purge(s, ctx, addr, ptr, old)
	case pgtable.WritePlain:
		if st, ok := ctx.PolicyState().(*mmState); ok && st.allowStore {
			return
		}
		s.CheckLiveStore(ctx, addr, ptr, old, new, kind)
	}
}

// purge is the IPTE or IDTE of an exchange over old at ptr
// (ptep_flush_direct, pmdp_flush_direct, pudp_flush_direct).
func (p *TLBPolicy) purge(s *tlb.System, ctx *tlb.Context, addr uint64, ptr pgtable.Ptr, old pgtable.Entry) {
	if !ptr.Valid() || ctx.PageTable() == nil {
		return
	}
	l := ptr.Level()
	pt := ctx.PageTable()
	if pt.IsNone(old, l) {
		return
	}
	// _PAGE_INVALID for a pte, _SEGMENT_ENTRY_INVALID or
	// _REGION_ENTRY_INVALID (both 0x20) above: nothing to purge.
	if (l == pgtable.PTE && old&Invalid != 0) || (l != pgtable.PTE && old&SegInvalid != 0) {
		return
	}
	st := state(s, ctx)
	local := s.LocalCPU().ID()
	ev := cost.IDTEOps
	if l == pgtable.PTE {
		ev = cost.IPTEOps
	}
	m := ctx.Meter()
	m.Note(ev, 1, addr, uint64(local))
	size := pt.EntrySize(ptr.T)
	base := addr &^ (size - 1)
	drop := func(c *tlb.CPU) {
		if l == pgtable.PTE {
			c.DropVA(m, ctx, base, tlb.LeafOnly)
		} else {
			c.DropOverlap(m, ctx, base, base+size, tlb.WalkVA)
		}
	}
	if !st.globalPurge && st.onlyLocal(local) {
		drop(s.LocalCPU())
		return
	}
	for i := 0; i < s.CPUs(); i++ {
		drop(s.CPU(i))
	}
}

// newTLBPolicy is the descriptor's NewTLBPolicy.
func newTLBPolicy(p arch.Platform) tlb.Policy { return NewTLBPolicy(p) }
