package x86

import (
	"fmt"
	"math/bits"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// TLB constants of arch/x86/mm/tlb.c.
const (
	// DefaultFlushCeiling is tlb_single_page_flush_ceiling: a range of
	// more pages than this is flushed whole ("covers >= 95% of
	// allocations at ~100 ns per INVLPG", Documentation/arch/x86/tlb.rst).
	DefaultFlushCeiling = 33
	// NrDynASIDs is TLB_NR_DYN_ASIDS: the PCIDs each CPU hands to the
	// mms it runs, round robin.
	NrDynASIDs = 6
	// CeilingTunable names the ceiling for Tune, as debugfs spells it.
	CeilingTunable = "tlb_single_page_flush_ceiling"
)

// TLBPolicy is x86-64's TLB behaviour (arch/x86/mm/tlb.c, without PTI or
// INVLPGB):
//
//   - flush_tlb_mm_range(mm, start, end, stride_shift, freed_tables):
//     when end is TLB_FLUSH_ALL or (end-start) >> stride_shift exceeds
//     the ceiling, the whole mm is flushed; tlb_gen is bumped; every CPU
//     in mm_cpumask runs flush_tlb_func, the others through an IPI each
//     (flush_tlb_multi). flush_tlb_func flushes per stride with INVLPG
//     (which also drops every paging-structure cache entry of the PCID)
//     when the CPU is exactly one generation behind and the flush is
//     partial, else it reloads CR3 (a full flush of the PCID); then the
//     CPU's slot catches up to the mm's tlb_gen. flush_tlb_page and
//     flush_tlb_mm are flush_tlb_mm_range of one page and of everything.
//   - flush_tlb_kernel_range: above the ceiling, flush_tlb_all on every
//     CPU (global entries included), else INVLPG per page on every CPU;
//     on_each_cpu sends an IPI to every other CPU. The other CPUs'
//     invalidations run in parallel with the initiator's and count as
//     remote_invlpg and remote_full_flushes, off its elapsed time.
//   - flush_tlb_all: every CPU flushes everything; IPIs to the others
//     (their flushes count as remote_full_flushes).
//   - switch_mm: each CPU keeps NrDynASIDs PCID slots {mm, tlb_gen}. A
//     matching slot is reused and flushed only if its tlb_gen is behind
//     the mm's (choose_new_asid); otherwise the next slot round robin is
//     taken and flushed, dropping the entries of the mm that held it. A
//     CPU that left an mm's cpumask keeps its entries, unreachable until
//     it switches back and catches up, so the validator skips them.
//
// The initiating CPU is the System's LocalCPU. All work is counted on the
// flushed mm's meter (the kernel meter for kernel flushes): invlpg,
// local_full_flushes, tlb_ipis (one per target CPU; the trace's val is
// the CPU) and, when Virtualized, one ipi_vm_exits per IPI. Kernel
// flushes count the targets' invalidations as remote_invlpg and
// remote_full_flushes; mm flushes still count every CPU's as invlpg and
// local_full_flushes.
type TLBPolicy struct {
	tlb.BasePolicy
	// Ceiling is tlb_single_page_flush_ceiling; 0 makes every flush a
	// full one, as in Linux.
	Ceiling uint64
	// DynASIDs is the number of PCID slots per CPU (TLB_NR_DYN_ASIDS);
	// 1 behaves as a CPU without PCID: every switch to another mm
	// flushes.
	DynASIDs int
	// Virtualized: the machine is a VM, every IPI traps.
	Virtualized bool
	// cpus holds each CPU's PCID slots (cpu_tlbstate).
	cpus []pcidState
}

// pcidState is one CPU's cpu_tlbstate: its PCID slots.
type pcidState struct {
	// slots are cpu_tlbstate.ctxs: which mm each PCID holds and the
	// tlb_gen its entries are up to date with.
	slots []pcidSlot
	// next is cpu_tlbstate.next_asid: the slot to hand out next.
	next int
	// loaded is loaded_mm_asid, -1 before the first switch.
	loaded int
}

// pcidSlot is one PCID of one CPU.
type pcidSlot struct {
	// ctx is the mm the PCID holds (ctx_id), nil for none.
	ctx *tlb.Context
	// tlbGen is the mm's tlb_gen the PCID's entries reflect.
	tlbGen uint64
}

// NewTLBPolicy returns the x86-64 policy for platform p, with Linux's
// defaults: a ceiling of 33 pages and 6 PCID slots per CPU.
func NewTLBPolicy(p arch.Platform) *TLBPolicy {
	return &TLBPolicy{Ceiling: DefaultFlushCeiling, DynASIDs: NrDynASIDs, Virtualized: p.Virtualized}
}

// Name returns "x86_64".
func (p *TLBPolicy) Name() string { return "x86_64" }

// Attach sizes the per-CPU PCID state; a CPU already running an mm gets
// it in slot 0, up to date.
func (p *TLBPolicy) Attach(s *tlb.System) {
	n := max(p.DynASIDs, 1)
	p.cpus = make([]pcidState, s.CPUs())
	for i := range p.cpus {
		st := &p.cpus[i]
		st.slots = make([]pcidSlot, n)
		st.loaded = -1
		if cur := s.CPU(i).Current(); cur != nil {
			st.slots[0] = pcidSlot{ctx: cur, tlbGen: cur.TLBGen()}
			st.loaded, st.next = 0, 1%n
		}
	}
}

// Tune sets tlb_single_page_flush_ceiling.
func (p *TLBPolicy) Tune(name string, v uint64) error {
	if name != CeilingTunable {
		return fmt.Errorf("x86 tlb: unknown tunable %q: %w", name, pgtable.EINVAL)
	}
	p.Ceiling = v
	return nil
}

// Tunables lists the tunables.
func (p *TLBPolicy) Tunables() []string { return []string{CeilingTunable} }

// Flush carries out one flush API call.
func (p *TLBPolicy) Flush(s *tlb.System, r *tlb.Request) {
	switch r.Kind {
	case tlb.FlushAll:
		p.flushAll(s, r)
	case tlb.FlushKernelRange:
		p.flushKernelRange(s, r)
	default:
		p.flushMMRange(s, r)
	}
}

// TLBFlush is x86's tlb_flush (asm/tlb.h): flush_tlb_mm_range over the
// gathered range, or over everything for a full-mm gather.
func (p *TLBPolicy) TLBFlush(s *tlb.System, g *tlb.Gather) {
	start, end := g.Range()
	if g.FullMM() {
		start, end = 0, tlb.TLBFlushAll
	}
	s.FlushTLBMMRange(g.Context(), start, end, g.StrideShift(), g.FreedTables())
}

// ipi counts one IPI to cpu.
func (p *TLBPolicy) ipi(m *cost.Meter, addr uint64, cpu int) {
	m.Note(cost.TLBIPIs, 1, addr, uint64(cpu))
	if p.Virtualized {
		m.Note(cost.IPIVMExits, 1, addr, uint64(cpu))
	}
}

// flushMMRange is flush_tlb_mm_range.
func (p *TLBPolicy) flushMMRange(s *tlb.System, r *tlb.Request) {
	ctx := r.Ctx
	start, end, stride := r.Start, r.End, r.StrideShift
	if r.Kind == tlb.FlushMM {
		start, end, stride = 0, tlb.TLBFlushAll, 0
	}
	// get_flush_tlb_info: too many strides become a full flush.
	if end == tlb.TLBFlushAll || (end-start)>>stride > p.Ceiling {
		start, end = 0, tlb.TLBFlushAll
	}
	newGen := ctx.BumpTLBGen()
	local := s.LocalCPU().ID()
	for w, word := range ctx.MaskWords() {
		for ; word != 0; word &= word - 1 {
			cpu := w*64 + bits.TrailingZeros64(word)
			if cpu != local {
				p.ipi(r.Meter, start, cpu)
			}
			p.flushFunc(s.CPU(cpu), ctx, start, end, stride, newGen, r.Meter)
		}
	}
}

// flushFunc is flush_tlb_func on CPU c.
func (p *TLBPolicy) flushFunc(c *tlb.CPU, ctx *tlb.Context, start, end uint64, stride uint, newGen uint64, m *cost.Meter) {
	st := &p.cpus[c.ID()]
	if c.Current() != ctx || st.loaded < 0 || st.slots[st.loaded].ctx != ctx {
		return
	}
	sl := &st.slots[st.loaded]
	localGen, mmGen := sl.tlbGen, ctx.TLBGen()
	if localGen == mmGen || newGen <= localGen {
		return // already up to date
	}
	if end != tlb.TLBFlushAll && newGen == localGen+1 && newGen == mmGen {
		// Partial flush: flush_tlb_one_user per stride.
		m.Note(cost.Invlpg, tlb.Strides(start, end, stride), start, uint64(c.ID()))
		c.DropRange(m, ctx, start, end, stride, tlb.WalkASID)
	} else {
		m.Note(cost.LocalFullFlushes, 1, 0, uint64(c.ID()))
		c.DropASID(m, ctx)
	}
	sl.tlbGen = mmGen
}

// flushKernelRange is flush_tlb_kernel_range.
func (p *TLBPolicy) flushKernelRange(s *tlb.System, r *tlb.Request) {
	ps := s.PageShift()
	// (end - start) > tlb_single_page_flush_ceiling << PAGE_SHIFT
	limit := p.Ceiling << ps
	if p.Ceiling > tlb.TLBFlushAll>>ps {
		limit = tlb.TLBFlushAll
	}
	full := r.End == tlb.TLBFlushAll || r.End-r.Start > limit
	local := s.LocalCPU().ID()
	for i := 0; i < s.CPUs(); i++ {
		c := s.CPU(i)
		if i != local {
			p.ipi(r.Meter, r.Start, i)
		}
		if full {
			// do_flush_tlb_all: global entries too.
			r.Meter.Note(fullEvent(i == local), 1, 0, uint64(i))
			c.DropAll(r.Meter)
			continue
		}
		// do_kernel_range_flush: flush_tlb_one_kernel per page.
		r.Meter.Note(invlpgEvent(i == local), tlb.Strides(r.Start, r.End, ps), r.Start, uint64(i))
		c.DropRange(r.Meter, r.Ctx, r.Start, r.End, ps, tlb.WalkASID)
	}
}

// flushAll is flush_tlb_all: on_each_cpu(do_flush_tlb_all).
func (p *TLBPolicy) flushAll(s *tlb.System, r *tlb.Request) {
	local := s.LocalCPU().ID()
	for i := 0; i < s.CPUs(); i++ {
		if i != local {
			p.ipi(r.Meter, 0, i)
		}
		r.Meter.Note(fullEvent(i == local), 1, 0, uint64(i))
		s.CPU(i).DropAll(r.Meter)
	}
}

// Kernel flushes run on every CPU at once (on_each_cpu): the initiator
// sends the IPIs, flushes its own TLB and waits for the acknowledgements
// while the targets flush theirs in parallel. Simulated time is elapsed
// time, so only the initiator's work is on it: its own invalidations
// (invlpg, local_full_flushes) and the IPIs (tlb_ipis, priced per target
// as the send and the wait for that target's acknowledgement). The
// targets' invalidations are counted apart (remote_invlpg,
// remote_full_flushes) and cost the initiator nothing.

// invlpgEvent returns the event for INVLPGs executed by the initiator
// (local) or by a shootdown target.
func invlpgEvent(local bool) cost.Event {
	if local {
		return cost.Invlpg
	}
	return cost.RemoteInvlpg
}

// fullEvent returns the event for a full flush of one CPU's TLB by the
// initiator (local) or by a shootdown target.
func fullEvent(local bool) cost.Event {
	if local {
		return cost.LocalFullFlushes
	}
	return cost.RemoteFullFlushes
}

// Switch is switch_mm_irqs_off's PCID handling (choose_new_asid, then a
// CR3 load that flushes when needed). The flush is counted on next's
// meter.
func (p *TLBPolicy) Switch(s *tlb.System, c *tlb.CPU, prev, next *tlb.Context) {
	if next == nil || prev == next {
		return
	}
	st := &p.cpus[c.ID()]
	m := next.Meter()
	i, need := -1, true
	for j := range st.slots {
		if st.slots[j].ctx == next {
			i, need = j, st.slots[j].tlbGen < next.TLBGen()
			break
		}
	}
	if i < 0 {
		i = st.next
		st.next++
		if st.next >= len(st.slots) {
			st.next = 0
		}
		// The PCID changes hands: the flush of the load below drops
		// the entries of the mm that held it.
		if old := st.slots[i].ctx; old != nil && !old.Released() {
			c.DropASID(m, old)
		}
	}
	if need {
		m.Note(cost.LocalFullFlushes, 1, 0, uint64(c.ID()))
		c.DropASID(m, next)
	}
	st.slots[i] = pcidSlot{ctx: next, tlbGen: next.TLBGen()}
	st.loaded = i
}

// Reachable reports whether c can use its cached entries of ctx: ctx is
// the kernel's (its tables are part of every mm, reachable under any
// PCID), c runs ctx (and so receives every flush), or c holds ctx in a
// PCID slot that is up to date with ctx's tlb_gen. A slot that is behind
// is flushed on the next switch to ctx, so its entries are unreachable.
func (p *TLBPolicy) Reachable(s *tlb.System, c *tlb.CPU, ctx *tlb.Context, va uint64) bool {
	if ctx.Kernel() || c.Current() == ctx {
		return true
	}
	for _, sl := range p.cpus[c.ID()].slots {
		if sl.ctx == ctx {
			return sl.tlbGen == ctx.TLBGen()
		}
	}
	return false
}

// Released forgets a torn-down mm in every CPU's slots (its ctx_id can
// never match again).
func (p *TLBPolicy) Released(s *tlb.System, ctx *tlb.Context) {
	for i := range p.cpus {
		for j := range p.cpus[i].slots {
			if p.cpus[i].slots[j].ctx == ctx {
				p.cpus[i].slots[j] = pcidSlot{}
			}
		}
	}
}

// Slots returns the mms held in CPU cpu's PCID slots, in slot order (nil
// for an empty slot), and the loaded slot (-1 before the first switch):
// the inspection view of cpu_tlbstate.
func (p *TLBPolicy) Slots(cpu int) ([]*tlb.Context, int) {
	if cpu < 0 || cpu >= len(p.cpus) {
		return nil, -1
	}
	st := &p.cpus[cpu]
	out := make([]*tlb.Context, len(st.slots))
	for i, sl := range st.slots {
		out[i] = sl.ctx
	}
	return out, st.loaded
}
