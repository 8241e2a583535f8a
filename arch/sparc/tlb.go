package sparc

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// TLB constants (asm/tlbflush_64.h, asm/page_64.h, asm/pgtable_64.h).
const (
	// TLBBatchNR is TLB_BATCH_NR: the addresses one CPU's tlb_batch
	// holds before it flushes.
	TLBBatchNR = 192
	// RealHPageSize is REAL_HPAGE_SIZE, the 4 MiB TTE: an 8 MiB huge
	// PMD is two of them.
	RealHPageSize = 1 << RealHPageShift
	// KernelRangeDemapAllShift: __cheetah_flush_tlb_kernel_range demaps
	// page by page below 1<<18 bytes (256 KiB) and demaps every unlocked
	// entry of the TLB from there on (the srlx 18 test in
	// arch/sparc/mm/ultra.S).
	KernelRangeDemapAllShift = 18
	// LowOBPAddress and HiOBPAddress bound the firmware (OBP) mappings
	// that flush_tlb_kernel_range leaves alone.
	LowOBPAddress = 0xf000_0000
	HiOBPAddress  = 0x1_0000_0000
)

// TLBPolicy is sparc64's TLB behaviour (arch/sparc/mm/tlb.c, tsb.c,
// kernel/smp_64.c, asm/tlbflush_64.h, asm/mmu_context_64.h) on a sun4u
// Cheetah+ machine:
//
//   - flush_tlb_page, flush_tlb_range and flush_tlb_mm are empty. The
//     flush happens at the entry write: __set_pte_at over a pte whose
//     _PAGE_VALID bit was set (pte_accessible) calls tlb_batch_add for a
//     user mm. Outside lazy-MMU mode, the address is flushed at once
//     (flush_tsb_user_page, global_flush_tlb_page). Inside it, the
//     address joins the issuing CPU's batch of up to TLBBatchNR (192)
//     addresses, flushed when it is full, when an address of another mm
//     or another page size comes, when the lazy section ends
//     (arch_leave_lazy_mmu_mode), when the mmu_gather flushes
//     (tlb_flush is flush_tlb_pending) and when the CPU switches tasks
//     (prepare_arch_switch). set_pmd_at over a huge PMD batches its two
//     4 MiB TTEs.
//   - A flush of n addresses (smp_flush_tlb_page for one,
//     smp_flush_tlb_pending for more) demaps them on the issuing CPU and
//     cross-calls every other CPU of the mm's cpumask to demap them
//     there: one tlb_ipis per other CPU per flush, one tlb_demaps per
//     address per CPU (the local count includes the invalidation of the
//     address's TSB entry, flush_tsb_user). When the mm is the issuing
//     CPU's current mm and has one user, there is no cross-call and the
//     cpumask shrinks to the issuing CPU; the other CPUs' entries become
//     unreachable, since switch_mm flushes the mm's context on a CPU
//     that joins the cpumask again. The model takes "one user" to mean
//     that no other CPU runs the mm now.
//   - tlb_batch_add also flushes a dirty page-cache page from the
//     D-cache of every CPU (flush_dcache_folio_all, one dcache_flushes)
//     when the colour of its kernel address (PAGE_OFFSET + pa, bit 13)
//     differs from the user address's. The memory needed to tell a file
//     page comes from PTEOps.
//   - flush_tlb_kernel_range flushes the kernel TSB and cross-calls
//     every other CPU; each CPU demaps the range page by page in the
//     nucleus context, or, from 256 KiB on, demaps every unlocked TLB
//     entry (local_full_flushes); the firmware range
//     [LowOBPAddress, HiOBPAddress) is skipped. sparc64 has no
//     flush_tlb_all of its own; the model's is __flush_tlb_all on every
//     CPU by cross-call.
//
// The UltraSPARC MMU has no hardware table walk: TLB misses are served
// by a trap handler from the TSB and the Linux tables, so no
// intermediate table is ever cached ("hardware TLB fill does not use the
// Linux page-tables", asm/tlb_64.h) and the policy turns the walk caches
// off.
type TLBPolicy struct {
	tlb.BasePolicy
}

// NewTLBPolicy returns the sparc64 policy; no platform parameter changes
// it.
func NewTLBPolicy(p arch.Platform) *TLBPolicy { return &TLBPolicy{} }

// newTLBPolicy is the descriptor's NewTLBPolicy.
func newTLBPolicy(p arch.Platform) tlb.Policy { return NewTLBPolicy(p) }

// Name returns "sparc64".
func (p *TLBPolicy) Name() string { return "sparc64" }

// tlbBatch is one CPU's struct tlb_batch.
type tlbBatch struct {
	// ctx is tb->mm, the mm the batched addresses belong to.
	ctx *tlb.Context
	// shift is tb->hugepage_shift, the page size of the batch.
	shift uint
	// nr is tb->tlb_nr, the addresses batched.
	nr int
	// active is tb->active: the CPU is in lazy-MMU mode.
	active bool
	// vaddrs are the batched addresses.
	vaddrs [TLBBatchNR]uint64
}

// mmState is the sparc64 part of an mm.
type mmState struct {
	// mask is mm_cpumask(mm) as sparc64 keeps it: the CPUs that switched
	// to the mm since it last shrank, whose TLBs may hold its entries.
	mask []bool
	// mem is physical memory, for the D-cache rule; nil when unknown.
	mem *phys.Memory
}

// state returns ctx's sparc64 state, creating it on first use.
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

// batch returns c's tlb_batch.
func batch(c *tlb.CPU) *tlbBatch {
	if b, ok := c.PolicyState().(*tlbBatch); ok {
		return b
	}
	b := &tlbBatch{}
	c.SetPolicyState(b)
	return b
}

// Pending returns how many addresses CPU cpu's batch holds.
func Pending(s *tlb.System, cpu int) int {
	if c := s.CPU(cpu); c != nil {
		return batch(c).nr
	}
	return 0
}

// CPUMask returns sparc64's mm_cpumask of ctx, sorted.
func CPUMask(s *tlb.System, ctx *tlb.Context) []int {
	var out []int
	for i, in := range state(s, ctx).mask {
		if in {
			out = append(out, i)
		}
	}
	return out
}

// Attach gives every CPU an empty batch and turns the walk caches off.
func (p *TLBPolicy) Attach(s *tlb.System) {
	for i := 0; i < s.CPUs(); i++ {
		s.CPU(i).SetPolicyState(&tlbBatch{})
	}
	_ = s.SetWalkCacheEntries(0) // 0 is always accepted
}

// Flush carries out one flush API call: only the kernel's and the
// model's flush_tlb_all do anything.
func (p *TLBPolicy) Flush(s *tlb.System, r *tlb.Request) {
	switch r.Kind {
	case tlb.FlushKernelRange:
		p.flushKernelRange(s, r)
	case tlb.FlushAll:
		local := s.LocalCPU().ID()
		for i := 0; i < s.CPUs(); i++ {
			if i != local {
				r.Meter.Note(cost.TLBIPIs, 1, 0, uint64(i))
			}
			r.Meter.Note(cost.LocalFullFlushes, 1, 0, uint64(i))
			s.CPU(i).DropAll(r.Meter)
		}
	}
}

// TLBFlush is sparc64's tlb_flush: flush_tlb_pending. No flush API call
// is made.
func (p *TLBPolicy) TLBFlush(s *tlb.System, g *tlb.Gather) {
	p.flushPending(s, s.LocalCPU())
}

// Written is __set_pte_at's maybe_tlb_batch_add and set_pmd_at's
// __set_pmd_acct, for user mms.
func (p *TLBPolicy) Written(s *tlb.System, ctx *tlb.Context, addr uint64, ptr pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind) {
	if ctx.Kernel() || !ptr.Valid() || ctx.PageTable() == nil {
		return // init_mm: flush_tlb_kernel_range handles it
	}
	f := ctx.PageTable().Format()
	switch l := ptr.Level(); {
	case l == pgtable.PTE:
		if old&Valid != 0 {
			p.tlbBatchAdd(s, ctx, addr, old)
		}
	case l == pgtable.PMD && f.IsLeaf(old, l):
		haddr := addr &^ (1<<HPageShift - 1)
		p.tlbBatchAddOne(s, ctx, haddr, RealHPageShift)
		p.tlbBatchAddOne(s, ctx, haddr+RealHPageSize, RealHPageShift)
	}
}

// tlbBatchAdd is tlb_batch_add for a pte that was valid.
func (p *TLBPolicy) tlbBatchAdd(s *tlb.System, ctx *tlb.Context, vaddr uint64, orig pgtable.Entry) {
	if orig&Modified != 0 {
		p.maybeFlushDcache(s, ctx, vaddr, orig)
	}
	p.tlbBatchAddOne(s, ctx, vaddr, PageShift)
}

// maybeFlushDcache flushes a dirty page-cache page from every D-cache
// when its kernel alias has another colour than vaddr.
func (p *TLBPolicy) maybeFlushDcache(s *tlb.System, ctx *tlb.Context, vaddr uint64, orig pgtable.Entry) {
	st := state(s, ctx)
	pfn := phys.PFN((orig & PAddr) >> PageShift)
	if st.mem == nil || !st.mem.Valid(pfn) || !st.mem.IsAllocated(pfn) {
		return
	}
	pg := st.mem.Page(pfn)
	if pg.Has(phys.FlagReserved) {
		return
	}
	// A real file page? (folio_flush_mapping: anonymous and swap-cache
	// folios have none.)
	folio := st.mem.FolioOf(pfn)
	if !st.mem.Test(folio, phys.FlagPageCache) || st.mem.Test(folio, phys.FlagAnon) {
		return
	}
	kaddr := PageOffset + uint64(pfn)<<PageShift // page_address(page)
	if (kaddr^vaddr)&ColourBit != 0 {
		ctx.Meter().Note(cost.DcacheFlushes, 1, vaddr, uint64(pfn))
	}
}

// tlbBatchAddOne is tlb_batch_add_one on the issuing CPU.
func (p *TLBPolicy) tlbBatchAddOne(s *tlb.System, ctx *tlb.Context, vaddr uint64, shift uint) {
	c := s.LocalCPU()
	b := batch(c)
	vaddr &^= 1<<PageShift - 1
	if b.nr != 0 && b.ctx != ctx {
		p.flushPending(s, c)
	}
	if !b.active {
		// flush_tsb_user_page, global_flush_tlb_page.
		p.flushPages(s, c, ctx, []uint64{vaddr})
		return
	}
	if b.nr == 0 {
		b.ctx, b.shift = ctx, shift
	}
	if b.shift != shift {
		p.flushPending(s, c)
		b.ctx, b.shift = ctx, shift
	}
	b.vaddrs[b.nr] = vaddr
	b.nr++
	if b.nr >= TLBBatchNR {
		p.flushPending(s, c)
	}
}

// flushPending is flush_tlb_pending on CPU c.
func (p *TLBPolicy) flushPending(s *tlb.System, c *tlb.CPU) {
	b := batch(c)
	if b.nr == 0 {
		return
	}
	if !b.ctx.Released() {
		p.flushPages(s, c, b.ctx, b.vaddrs[:b.nr])
	}
	b.nr = 0
}

// flushPages is smp_flush_tlb_page (one address) and
// smp_flush_tlb_pending (several) issued by CPU c, with the TSB flush
// before them.
func (p *TLBPolicy) flushPages(s *tlb.System, c *tlb.CPU, ctx *tlb.Context, vaddrs []uint64) {
	st := state(s, ctx)
	m := ctx.Meter()
	if c.Current() == ctx && ctx.MaskWeight() == 1 {
		// mm == current->mm && mm_users == 1: the cpumask becomes
		// this CPU; no cross-call.
		for i := range st.mask {
			st.mask[i] = i == c.ID()
		}
	} else {
		for i, in := range st.mask {
			if in && i != c.ID() {
				m.Note(cost.TLBIPIs, 1, vaddrs[0], uint64(i))
				demap(s.CPU(i), m, ctx, vaddrs)
			}
		}
	}
	demap(c, m, ctx, vaddrs)
}

// demap demaps vaddrs of ctx on c (__flush_tlb_pending, or the
// cross-called xcall_flush_tlb_pending).
func demap(c *tlb.CPU, m *cost.Meter, ctx *tlb.Context, vaddrs []uint64) {
	m.Note(cost.TLBDemaps, uint64(len(vaddrs)), vaddrs[0], uint64(c.ID()))
	for _, va := range vaddrs {
		c.DropVA(m, ctx, va, tlb.LeafOnly)
	}
}

// LazyMMU is arch_enter_lazy_mmu_mode and arch_leave_lazy_mmu_mode on
// the issuing CPU. Sections nest as lazy_mmu_mode_enable and _disable
// nest them: only the outermost leave flushes the batch and leaves the
// mode (a nested one is arch_flush_lazy_mmu_mode, a no-op on sparc64).
func (p *TLBPolicy) LazyMMU(s *tlb.System, ctx *tlb.Context, enter bool) {
	c := s.LocalCPU()
	b := batch(c)
	if enter {
		b.active = true
		return
	}
	if ctx.PageTable() != nil && ctx.PageTable().Lazy() {
		return
	}
	p.flushPending(s, c)
	b.active = false
}

// Switch is prepare_arch_switch (flush the switching CPU's batch) and
// switch_mm (a CPU that joins the mm's cpumask flushes the mm's context
// from its TLB, counted as local_full_flushes on the mm's meter).
func (p *TLBPolicy) Switch(s *tlb.System, c *tlb.CPU, prev, next *tlb.Context) {
	if prev == next {
		return
	}
	p.flushPending(s, c)
	if next == nil {
		return
	}
	st := state(s, next)
	if !st.mask[c.ID()] {
		st.mask[c.ID()] = true
		next.Meter().Note(cost.LocalFullFlushes, 1, 0, uint64(c.ID()))
		c.DropASID(next.Meter(), next)
	}
}

// Reachable reports whether c can use its entries of ctx: a CPU outside
// the mm's cpumask flushes the mm's context before it runs it again.
func (p *TLBPolicy) Reachable(s *tlb.System, c *tlb.CPU, ctx *tlb.Context, va uint64) bool {
	if ctx.Kernel() {
		return true
	}
	st, ok := ctx.PolicyState().(*mmState)
	return !ok || c.ID() >= len(st.mask) || st.mask[c.ID()]
}

// Released forgets the batches of a torn-down mm.
func (p *TLBPolicy) Released(s *tlb.System, ctx *tlb.Context) {
	for i := 0; i < s.CPUs(); i++ {
		if b := batch(s.CPU(i)); b.ctx == ctx {
			b.nr, b.ctx = 0, nil
		}
	}
}

// flushKernelRange is flush_tlb_kernel_range: the firmware range is
// skipped, the rest flushed from the kernel TSB and, by
// smp_flush_tlb_kernel_range, from every CPU's TLB.
func (p *TLBPolicy) flushKernelRange(s *tlb.System, r *tlb.Request) {
	start, end := r.Start, r.End
	if start < HiOBPAddress && end > LowOBPAddress {
		if start < LowOBPAddress {
			p.smpFlushKernelRange(s, r, start, LowOBPAddress)
		}
		if end > HiOBPAddress {
			p.smpFlushKernelRange(s, r, HiOBPAddress, end)
		}
		return
	}
	p.smpFlushKernelRange(s, r, start, end)
}

// smpFlushKernelRange is smp_flush_tlb_kernel_range: a cross-call to
// every other CPU and the local flush, each __flush_tlb_kernel_range.
func (p *TLBPolicy) smpFlushKernelRange(s *tlb.System, r *tlb.Request, start, end uint64) {
	ps := uint64(1) << PageShift
	start &^= ps - 1
	if end > ^uint64(0)-(ps-1) {
		end = ^uint64(0) &^ (ps - 1)
	} else {
		end = (end + ps - 1) &^ (ps - 1)
	}
	if start >= end {
		return
	}
	local := s.LocalCPU().ID()
	all := (end-start)>>KernelRangeDemapAllShift != 0
	for i := 0; i < s.CPUs(); i++ {
		c := s.CPU(i)
		if i != local {
			r.Meter.Note(cost.TLBIPIs, 1, start, uint64(i))
		}
		if all {
			r.Meter.Note(cost.LocalFullFlushes, 1, start, uint64(i))
			c.DropAll(r.Meter)
			continue
		}
		r.Meter.Note(cost.TLBDemaps, (end-start)>>PageShift, start, uint64(i))
		c.DropRange(r.Meter, r.Ctx, start, end, PageShift, tlb.LeafOnly)
	}
}
