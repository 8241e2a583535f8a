package arm64

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// TLB constants of arch/arm64/include/asm/tlbflush.h.
const (
	// MaxTLBIRangePages is MAX_TLBI_RANGE_PAGES, __TLBI_RANGE_PAGES(31,
	// 3): the most pages range invalidations may cover before a flush
	// falls back to the whole ASID. One range TLBI covers
	// (NUM+1) << (5*SCALE+1) pages, NUM 0..31, SCALE 0..3.
	MaxTLBIRangePages = 32 << 16
)

// MaxDVMOps returns MAX_DVM_OPS for a granule of 1<<pageShift bytes:
// PTRS_PER_PTE (512, 2048, 8192 for 4K, 16K, 64K). A range of that many
// strides or more is flushed by ASID instead, "to avoid soft lock-ups on
// large TLB flushing ranges and not necessarily a performance
// improvement" (tlbflush.h). It applies only without range TLBI.
func MaxDVMOps(pageShift uint) uint64 { return 1 << (pageShift - 3) }

// TLBPolicy is arm64's TLB behaviour (asm/tlbflush.h, asm/tlb.h). Every
// invalidation is a TLBI of the inner-shareable domain: the hardware
// broadcasts it to every CPU, so the mm_cpumask plays no part, every CPU
// drops what the instruction names, and no IPI is sent (tlb_ipis stays
// 0). Each flush issues its TLBIs after a DSB ISHST and completes with a
// DSB ISH, counted as tlbi_ops and tlb_syncs on the flushed mm's meter
// (the kernel meter for kernel flushes):
//
//   - flush_tlb_page: TLBI VALE1IS (last level, by VA and ASID), DSB ISH.
//   - flush_tlb_mm: TLBI ASIDE1IS (every entry of the ASID, walk caches
//     included), DSB ISH.
//   - flush_tlb_range and flush_tlb_mm_range, through
//     __flush_tlb_range(start, end, stride, last_level): the range is
//     rounded out to the stride; without FEAT_TLBIRANGE, a range of
//     MAX_DVM_OPS strides or more, and with it a range of more than
//     MAX_TLBI_RANGE_PAGES pages, falls back to flush_tlb_mm (one TLBI,
//     and two DSB ISH: flush_tlb_mm's own and __flush_tlb_range's, which
//     runs after __flush_tlb_range_nosync returns). Otherwise
//     __flush_tlb_range_op issues one TLBI VAE1IS per stride (VALE1IS
//     when last_level), or, with range TLBI, RVAE1IS ops from scale 3
//     down to 0, each covering as many pages as fit, and a last non-range
//     op for an odd page. VAE1IS drops the walk-cache entries of the
//     address too; VALE1IS leaves them. flush_tlb_range always passes
//     last_level false.
//   - tlb_flush (the mmu_gather): __flush_tlb_range over the gathered
//     range with the gather's stride and last_level = !freed_tables; a
//     full-mm gather flushes only when it freed tables, with
//     flush_tlb_mm, since an exiting mm's ASID is never reused without a
//     flush.
//   - flush_tlb_kernel_range: the same limit test with a page stride,
//     falling back to flush_tlb_all; otherwise TLBI VAALE1IS ops (by VA,
//     every ASID, last level) or their range forms. The model's
//     flush_tlb_kernel_range also stands for __flush_tlb_kernel_pgtable
//     (TLBI VAAE1IS, walk caches included), which Linux issues after
//     freeing kernel tables: a request with FreedTables (which the
//     System's FlushTLBKernelRange always sets) drops walk-cache entries.
//   - flush_tlb_all: TLBI VMALLE1IS, DSB ISH.
//
// Entry writes are checked for break-before-make (CheckBreakBeforeMake,
// relaxed by BBML2): a live entry whose output address, contiguous bit
// or block-versus-table kind changes without an invalid entry and a
// flush in between is recorded as a violation. The model assumes no
// KPTI (a CPU with CSV3 does not unmap the kernel at EL0), so no second
// TLBI is issued for the user ASID, and no LPA2, so range operations
// need no 64 KiB alignment. The ASID allocator's rollover flush is not
// modelled: switch_mm does no TLB work.
type TLBPolicy struct {
	tlb.BasePolicy
	// RangeTLBI is FEAT_TLBIRANGE (system_supports_tlb_range()).
	RangeTLBI bool
	// BBML2 is BBML2 without conflict aborts: block-size and
	// contiguous-bit changes need no break-before-make flush.
	BBML2 bool
	// PageShift is PAGE_SHIFT of the granule.
	PageShift uint
}

// NewTLBPolicy returns the arm64 policy for platform p and a granule of
// 1<<pageShift bytes (12, 14 or 16).
func NewTLBPolicy(p arch.Platform, pageShift uint) *TLBPolicy {
	return &TLBPolicy{RangeTLBI: p.RangeTLBI, BBML2: p.BBML2, PageShift: pageShift}
}

// Name returns "arm64".
func (p *TLBPolicy) Name() string { return "arm64" }

// MaxDVMOps returns MAX_DVM_OPS for the policy's granule.
func (p *TLBPolicy) MaxDVMOps() uint64 { return MaxDVMOps(p.PageShift) }

// Flush carries out one flush API call.
func (p *TLBPolicy) Flush(s *tlb.System, r *tlb.Request) {
	switch r.Kind {
	case tlb.FlushPage:
		// __flush_tlb_page_nosync: TLBI VALE1IS of the page, DSB ISH.
		p.tlbi(s, r.Meter, r.Start, 1)
		p.dropRange(s, r.Meter, r.Ctx, r.Start, r.End, p.PageShift, tlb.LeafOnly, false)
		p.dsb(s, r.Meter, r.Start)
	case tlb.FlushMM:
		p.flushMM(s, r.Meter, r.Ctx)
	case tlb.FlushAll:
		p.flushAll(s, r.Meter)
	case tlb.FlushKernelRange:
		p.flushKernelRange(s, r)
	default:
		p.flushRange(s, r)
	}
}

// TLBFlush is arm64's tlb_flush (asm/tlb.h).
func (p *TLBPolicy) TLBFlush(s *tlb.System, g *tlb.Gather) {
	if g.FullMM() {
		// "If we're tearing down the address space then we only care
		// about invalidating the walk-cache, since the ASID allocator
		// won't reallocate our ASID without invalidating the entire
		// TLB."
		if g.FreedTables() {
			s.FlushTLBMM(g.Context())
		}
		return
	}
	start, end := g.Range()
	s.FlushRequest(&tlb.Request{Kind: tlb.FlushRange, Ctx: g.Context(), Start: start, End: end,
		StrideShift: g.StrideShift(), FreedTables: g.FreedTables(), LastLevel: !g.FreedTables()})
}

// Written checks break-before-make on every entry write.
func (p *TLBPolicy) Written(s *tlb.System, ctx *tlb.Context, addr uint64, ptr pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind) {
	s.CheckBreakBeforeMake(ctx, addr, ptr, old, new, kind, p.BBML2)
}

// tlbi counts n TLBI instructions issued by the local CPU, and their
// reception by every other CPU that is running an address space
// (tlbi_remote): the broadcast reaches every CPU of the inner-shareable
// domain, and a busy CPU loses the time it takes to carry the
// invalidation out ("the latency of the tlbi broadcast instruction
// increases almost linearly with the number of CPUs trying to send tlbi
// broadcasts at the same time", Andrea Arcangeli, "arm64: tlb: skip tlbi
// broadcast"). Idle CPUs cost nothing. Counted on the flushing meter.
func (p *TLBPolicy) tlbi(s *tlb.System, m *cost.Meter, addr uint64, n uint64) {
	if n == 0 {
		return
	}
	local := s.LocalCPU().ID()
	m.Note(cost.TLBIOps, n, addr, uint64(local))
	busy := uint64(0)
	for i := 0; i < s.CPUs(); i++ {
		if i != local && s.CPU(i).Current() != nil {
			busy++
		}
	}
	if busy > 0 {
		m.Note(cost.TLBIRemote, n*busy, addr, busy)
	}
}

// dsb counts one DSB ISH, the completion of broadcast invalidations.
func (p *TLBPolicy) dsb(s *tlb.System, m *cost.Meter, addr uint64) {
	m.Note(cost.TLBSyncs, 1, addr, uint64(s.LocalCPU().ID()))
}

// flushMM is flush_tlb_mm: TLBI ASIDE1IS, DSB ISH.
func (p *TLBPolicy) flushMM(s *tlb.System, m *cost.Meter, ctx *tlb.Context) {
	p.tlbi(s, m, 0, 1)
	for i := 0; i < s.CPUs(); i++ {
		s.CPU(i).DropASID(m, ctx)
	}
	p.dsb(s, m, 0)
}

// flushAll is flush_tlb_all: TLBI VMALLE1IS, DSB ISH.
func (p *TLBPolicy) flushAll(s *tlb.System, m *cost.Meter) {
	p.tlbi(s, m, 0, 1)
	for i := 0; i < s.CPUs(); i++ {
		s.CPU(i).DropAll(m)
	}
	p.dsb(s, m, 0)
}

// rounded rounds [start, end) out to the stride (round_down, round_up);
// ok is false when rounding end up overflows.
func rounded(start, end uint64, stride uint) (s, e uint64, ok bool) {
	mask := uint64(1)<<stride - 1
	s = start &^ mask
	if end > ^uint64(0)-mask {
		return s, 0, false
	}
	e = (end + mask) &^ mask
	return s, e, true
}

// limitExcess is __flush_tlb_range_limit_excess: whether a range of
// strides of 1<<stride bytes covering pages pages must be flushed whole.
func (p *TLBPolicy) limitExcess(start, end uint64, stride uint, pages uint64) bool {
	return (!p.RangeTLBI && (end-start)>>stride >= p.MaxDVMOps()) || pages > MaxTLBIRangePages
}

// flushRange is __flush_tlb_range(vma, start, end, stride, last_level).
func (p *TLBPolicy) flushRange(s *tlb.System, r *tlb.Request) {
	stride := max(r.StrideShift, p.PageShift)
	start, end, ok := rounded(r.Start, r.End, stride)
	if r.End == tlb.TLBFlushAll || !ok || end < start {
		ok = false
	}
	var pages uint64
	if ok {
		pages = (end - start) >> p.PageShift
	}
	if !ok || p.limitExcess(start, end, stride, pages) {
		// __flush_tlb_range_nosync calls flush_tlb_mm and returns;
		// __flush_tlb_range still ends with its own DSB ISH.
		p.flushMM(s, r.Meter, r.Ctx)
		p.dsb(s, r.Meter, r.Start)
		return
	}
	sc := tlb.WalkVA // TLBI VAE1IS
	if r.LastLevel {
		sc = tlb.LeafOnly // TLBI VALE1IS
	}
	p.tlbi(s, r.Meter, start, p.RangeOps(pages, stride))
	p.dropRange(s, r.Meter, r.Ctx, start, end, stride, sc, pages > 1)
	p.dsb(s, r.Meter, start)
}

// dropRange drops what __flush_tlb_range_op invalidates on every CPU:
// per stride without range TLBI (or for a single page), else everything
// the range ops cover, which together span [start, end).
func (p *TLBPolicy) dropRange(s *tlb.System, m *cost.Meter, ctx *tlb.Context, start, end uint64, stride uint, sc tlb.Scope, multi bool) {
	for i := 0; i < s.CPUs(); i++ {
		c := s.CPU(i)
		if p.RangeTLBI && multi {
			c.DropOverlap(m, ctx, start, end, sc)
		} else {
			c.DropRange(m, ctx, start, end, stride, sc)
		}
	}
}

// RangeOps returns the TLBI instructions __flush_tlb_range_op issues
// for pages pages with a stride of 1<<stride bytes: one per stride
// without range TLBI; with it, from scale 3 down to 0 one range op for
// as many pages as (NUM+1) << (5*SCALE+1) covers with NUM at most 31,
// and a non-range op for a last odd page.
// Precondition: pages is a multiple of the stride in pages.
func (p *TLBPolicy) RangeOps(pages uint64, stride uint) uint64 {
	step := uint64(1) << (stride - p.PageShift)
	if !p.RangeTLBI {
		return pages / step
	}
	ops := uint64(0)
	for scale := 3; pages > 0; {
		if pages == 1 || scale < 0 {
			// A non-range op per stride (only a lone page is left
			// once scale 0 has run).
			ops++
			if pages < step {
				break
			}
			pages -= step
			continue
		}
		unit := uint(5*scale + 1)
		n := min(pages, 32<<unit) >> unit // __TLBI_RANGE_NUM + 1
		if n > 0 {
			ops++
			pages -= n << unit
		}
		scale--
	}
	return ops
}

// flushKernelRange is flush_tlb_kernel_range.
func (p *TLBPolicy) flushKernelRange(s *tlb.System, r *tlb.Request) {
	start, end, ok := rounded(r.Start, r.End, p.PageShift)
	if r.End == tlb.TLBFlushAll || !ok || end < start {
		ok = false
	}
	var pages uint64
	if ok {
		pages = (end - start) >> p.PageShift
	}
	if !ok || p.limitExcess(start, end, p.PageShift, pages) {
		p.flushAll(s, r.Meter)
		return
	}
	sc := tlb.LeafOnly | tlb.AllASIDs // TLBI VAALE1IS
	if r.FreedTables {
		sc = tlb.WalkVA | tlb.AllASIDs // TLBI VAAE1IS
	}
	p.tlbi(s, r.Meter, start, p.RangeOps(pages, p.PageShift))
	p.dropRange(s, r.Meter, r.Ctx, start, end, p.PageShift, sc, pages > 1)
	p.dsb(s, r.Meter, start)
}

// tlbPolicyFor returns the descriptor's NewTLBPolicy for a granule of
// 1<<pageShift bytes.
func tlbPolicyFor(pageShift uint) func(arch.Platform) tlb.Policy {
	return func(p arch.Platform) tlb.Policy { return NewTLBPolicy(p, pageShift) }
}
