package tlb

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
)

// Policy is an architecture's TLB behaviour: what each call of Linux's
// flush API invalidates on which CPUs and which hardware events it costs,
// what switch_mm does, and which CPUs may still use cached entries. The
// System counts the flush API calls themselves (tlb_flush_range...); the
// policy counts the work (invlpg, tlbi_ops, tlb_ipis, through the CPU
// Drop* helpers tlb_invalidated).
//
// Optional behaviour is expressed by further interfaces a policy may
// implement, resolved once by SetPolicy: WriteHook (react to entry writes:
// s390 purges at the exchange, sparc64 batches addresses, arm64 checks
// break-before-make), LazyHook (lazy-MMU sections: sparc64 flushes its
// batch when one ends), AccessHook (work before every lookup: UML resyncs
// the host mappings), ReleaseHook (an mm torn down) and Tunable (kernel
// tunables such as x86's tlb_single_page_flush_ceiling).
//
// Embed BasePolicy to get Linux's generic behaviour for the methods a
// policy does not override.
type Policy interface {
	// Name names the policy ("x86_64").
	Name() string
	// Attach is called when the policy is installed on s (by New or
	// SetPolicy), with every TLB empty: it sizes its per-CPU state.
	Attach(s *System)
	// Flush carries out one call of the flush API, described by r. The
	// System has already counted the call. r is valid only during the
	// call: the System reuses it.
	Flush(s *System, r *Request)
	// TLBFlush is the arch's tlb_flush(): how an mmu_gather flushes what
	// it gathered, by calling the flush API on s (which counts the call
	// kind the arch's code calls).
	TLBFlush(s *System, g *Gather)
	// Switch is the arch's part of switch_mm on c from prev to next
	// (either may be nil; prev == next when the CPU stays). The System
	// has already moved c between the mm_cpumasks and set c.Current().
	Switch(s *System, c *CPU, prev, next *Context)
	// Reachable reports whether c can still use its cached translations
	// of ctx for va without first dropping them: false for an x86 PCID
	// slot whose tlb_gen is behind (flushed on the next switch), or an
	// address UML will resync before the next access. The validator
	// audits reachable entries only. Global entries are always
	// reachable.
	Reachable(s *System, c *CPU, ctx *Context, va uint64) bool
}

// WriteHook is implemented by policies that react to page-table entry
// writes.
type WriteHook interface {
	// Written is called after entry p of ctx's table, which maps addr,
	// changed from old to new by a write of the given kind.
	Written(s *System, ctx *Context, addr uint64, p pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind)
}

// LazyHook is implemented by policies that act when lazy-MMU mode is
// entered or left (arch_enter/leave_lazy_mmu_mode).
type LazyHook interface {
	// LazyMMU is called after ctx's table entered (enter) or left a
	// lazy-MMU section; ctx.PageTable().Lazy() tells whether sections
	// are still open (they nest).
	LazyMMU(s *System, ctx *Context, enter bool)
}

// AccessHook is implemented by policies with work to do before a CPU
// uses its TLB (UML syncs the host address space).
type AccessHook interface {
	// BeforeAccess runs at the start of every Lookup by c in ctx at va.
	BeforeAccess(s *System, c *CPU, ctx *Context, va uint64)
}

// ReleaseHook is implemented by policies that keep per-context state.
type ReleaseHook interface {
	// Released is called when ctx is torn down, before its entries are
	// dropped and its ASID freed.
	Released(s *System, ctx *Context)
}

// Tunable is implemented by policies with kernel tunables.
type Tunable interface {
	// Tune sets tunable name to v; it fails with EINVAL for an unknown
	// name or a bad value.
	Tune(name string, v uint64) error
	// Tunables lists the tunable names, sorted.
	Tunables() []string
}

// FlushKind is the flush API call a Request carries out.
type FlushKind uint8

// The flush API calls.
const (
	// FlushPage is flush_tlb_page(vma, addr).
	FlushPage FlushKind = iota
	// FlushRange is flush_tlb_range and flush_tlb_mm_range.
	FlushRange
	// FlushMM is flush_tlb_mm.
	FlushMM
	// FlushAll is flush_tlb_all.
	FlushAll
	// FlushKernelRange is flush_tlb_kernel_range.
	FlushKernelRange
	numFlushKinds
)

var flushNames = [numFlushKinds]string{"flush_tlb_page", "flush_tlb_range", "flush_tlb_mm", "flush_tlb_all", "flush_tlb_kernel_range"}

// String returns Linux's name of the call.
func (k FlushKind) String() string {
	if k < numFlushKinds {
		return flushNames[k]
	}
	return fmt.Sprintf("flush(%d)", uint8(k))
}

// flushEvents gives the counter of each call kind.
var flushEvents = [numFlushKinds]cost.Event{cost.TLBFlushPage, cost.TLBFlushRange, cost.TLBFlushMM, cost.TLBFlushAll, cost.TLBFlushKernel}

// TLBFlushAll is Linux's TLB_FLUSH_ALL: as a range end, everything.
const TLBFlushAll = ^uint64(0)

// Request is one call of the flush API, as the policy receives it.
type Request struct {
	// Kind is the call.
	Kind FlushKind
	// Ctx is the mm flushed; for FlushAll and FlushKernelRange, the
	// kernel context (nil if there is none).
	Ctx *Context
	// Start and End delimit the range; End is TLBFlushAll for the whole
	// mm (FlushMM) or everything (FlushAll). FlushPage has the page's
	// range.
	Start, End uint64
	// StrideShift is log2 of the invalidation stride (PAGE_SHIFT, or
	// PMD_SHIFT for huge mappings).
	StrideShift uint
	// FreedTables is set when page tables were freed, so walk caches must
	// go too (flush_tlb_mm_range's freed_tables).
	FreedTables bool
	// LastLevel is set when only leaf entries changed, so walk caches may
	// stay: arm64's tlb_flush passes last_level = !freed_tables. The
	// Flush* methods never set it (Linux's flush_tlb_range invalidates
	// intermediate entries too); a policy's TLBFlush sets it through
	// FlushRequest.
	LastLevel bool
	// Meter is where the policy counts the work: the mm's meter, or the
	// kernel meter for FlushAll and FlushKernelRange.
	Meter *cost.Meter
}

// Pages returns the number of strides in the range (Linux's
// (end - start) >> stride_shift), saturating for TLBFlushAll.
func (r *Request) Pages() uint64 {
	if r.End == TLBFlushAll {
		return TLBFlushAll
	}
	return (r.End - r.Start) >> r.StrideShift
}

// call carries out one call of the flush API: it fills a request field
// by field (cheaper than copying a whole literal into the reused one) and
// hands it to flush.
func (s *System) call(kind FlushKind, ctx *Context, start, end uint64, stride uint, freed bool, m *cost.Meter) {
	r := s.request()
	r.Kind, r.Ctx, r.Start, r.End = kind, ctx, start, end
	r.StrideShift, r.FreedTables, r.LastLevel, r.Meter = stride, freed, false, m
	s.flush(r)
	s.done(r)
}

// request returns a Request for one flush call to fill: the System's
// scratch request, or a fresh one while the scratch is in use (a policy
// that calls the flush API from inside a flush). Flushes are frequent
// (mremap flushes once per table it moves); reusing one request keeps
// them free of allocation. Policies must not keep the request after
// Flush returns.
func (s *System) request() *Request {
	if s.reqBusy {
		return new(Request)
	}
	s.reqBusy = true
	return &s.req
}

// done releases a request from request.
func (s *System) done(r *Request) {
	if r == &s.req {
		s.reqBusy = false
	}
}

// flush counts one call and hands it to the policy.
func (s *System) flush(r *Request) {
	length := r.End - r.Start
	if r.End == TLBFlushAll {
		length = TLBFlushAll
	}
	r.Meter.Note(flushEvents[r.Kind], 1, r.Start, length)
	s.policy.Flush(s, r)
}

// FlushRequest counts one flush API call of kind r.Kind on r.Meter and
// hands r to the policy: for a policy's TLBFlush that needs a request the
// Flush* methods cannot express (arm64's last-level flush of a gather,
// s390's lazy mm flush). A nil Meter is the context's (the kernel meter
// for FlushAll and FlushKernelRange; for those a nil Ctx is the kernel
// context). A request of an unknown kind, or for a missing or released
// context, is ignored.
func (s *System) FlushRequest(r *Request) {
	if r == nil || r.Kind >= numFlushKinds {
		return
	}
	kernel := r.Kind == FlushAll || r.Kind == FlushKernelRange
	switch {
	case kernel && r.Ctx == nil:
		r.Ctx = s.kernel
	case !kernel && !s.usable(r.Ctx):
		return
	}
	if r.Meter == nil {
		r.Meter = s.kmeter
		if !kernel {
			r.Meter = r.Ctx.meter
		}
	}
	if r.StrideShift > 63 {
		r.StrideShift = 63
	}
	s.flush(r)
}

// usable reports whether ctx can be flushed.
func (s *System) usable(ctx *Context) bool { return ctx != nil && ctx.sys == s && !ctx.released }

// FlushTLBPage is flush_tlb_page: the page at va of ctx. Counts
// tlb_flush_page on ctx's meter.
func (s *System) FlushTLBPage(ctx *Context, va uint64) {
	if !s.usable(ctx) {
		return
	}
	ps := uint64(1) << s.pageShift
	va &^= ps - 1
	s.call(FlushPage, ctx, va, va+ps, s.pageShift, false, ctx.meter)
}

// FlushTLBRange is flush_tlb_range: [start, end) of ctx with a base-page
// stride. Counts tlb_flush_range on ctx's meter.
func (s *System) FlushTLBRange(ctx *Context, start, end uint64) {
	s.FlushTLBMMRange(ctx, start, end, s.pageShift, false)
}

// FlushTLBMMRange is flush_tlb_mm_range: [start, end) of ctx (end may be
// TLBFlushAll), invalidating every 1<<strideShift bytes; freedTables says
// page tables were freed. Counts tlb_flush_range on ctx's meter.
func (s *System) FlushTLBMMRange(ctx *Context, start, end uint64, strideShift uint, freedTables bool) {
	if !s.usable(ctx) {
		return
	}
	if strideShift > 63 {
		strideShift = 63
	}
	s.call(FlushRange, ctx, start, end, strideShift, freedTables, ctx.meter)
}

// FlushTLBMM is flush_tlb_mm: everything of ctx. Counts tlb_flush_mm on
// ctx's meter.
func (s *System) FlushTLBMM(ctx *Context) {
	if !s.usable(ctx) {
		return
	}
	s.call(FlushMM, ctx, 0, TLBFlushAll, 0, true, ctx.meter)
}

// FlushTLBAll is flush_tlb_all: every entry of every CPU. Counts
// tlb_flush_all on the kernel meter.
func (s *System) FlushTLBAll() {
	s.call(FlushAll, s.kernel, 0, TLBFlushAll, 0, true, s.kmeter)
}

// FlushTLBKernelRange is flush_tlb_kernel_range: kernel mappings in
// [start, end) on every CPU. Counts tlb_flush_kernel on the kernel meter.
func (s *System) FlushTLBKernelRange(start, end uint64) {
	s.call(FlushKernelRange, s.kernel, start, end, s.pageShift, true, s.kmeter)
}

// BasePolicy gives Linux's generic behaviour for the methods a policy
// does not override. Its Flush drops nothing: a policy must define Flush.
type BasePolicy struct{}

// Name returns "generic".
func (BasePolicy) Name() string { return "generic" }

// Attach does nothing.
func (BasePolicy) Attach(s *System) {}

// Flush does nothing; policies override it.
func (BasePolicy) Flush(s *System, r *Request) {}

// TLBFlush is asm-generic's tlb_flush: flush_tlb_mm for a full-mm gather,
// else flush_tlb_mm_range over the gathered range with its stride and
// freed_tables (the generic code's flush_tlb_range on a VMA built from
// the gather's flags).
func (BasePolicy) TLBFlush(s *System, g *Gather) {
	if g.FullMM() {
		s.FlushTLBMM(g.Context())
		return
	}
	start, end := g.Range()
	s.FlushTLBMMRange(g.Context(), start, end, g.StrideShift(), g.FreedTables())
}

// Switch does nothing.
func (BasePolicy) Switch(s *System, c *CPU, prev, next *Context) {}

// Reachable returns true: every cached entry is usable.
func (BasePolicy) Reachable(s *System, c *CPU, ctx *Context, va uint64) bool { return true }

// GenericPolicy is a simple, configurable policy for tests and for an
// arch without a policy of its own: every flush invalidates on every CPU
// (hardware broadcast, as arm64 TLBI IS), per stride below Ceiling
// strides and by ASID above it; flush_tlb_page and LastLevel requests
// invalidate the last level only; flush_tlb_all and flush_tlb_kernel_range above the ceiling drop
// everything. With IPIs set, invalidations on CPUs other than the local
// one are shootdowns: one tlb_ipis per target CPU in the mm_cpumask (all
// CPUs for kernel flushes), and CPUs outside the mask are left alone.
// CheckBBM and CheckLiveStore turn on the arm64 and s390 write checks.
type GenericPolicy struct {
	BasePolicy
	// Ceiling is the largest number of strides flushed one by one; larger
	// ranges drop the whole ASID. 0 means DefaultGenericCeiling.
	Ceiling uint64
	// IPIs makes remote invalidations IPIs to the mm_cpumask (x86-like)
	// instead of a hardware broadcast to every CPU.
	IPIs bool
	// CheckBBM records break-before-make violations (arm64's rule);
	// BBML2 relaxes it as BBML2 hardware does.
	CheckBBM, BBML2 bool
	// CheckLiveStore records plain stores over live entries (s390's
	// rule).
	CheckLiveStore bool
}

// DefaultGenericCeiling is GenericPolicy's default ceiling: 512 strides,
// arm64's MAX_DVM_OPS with 4 KiB pages.
const DefaultGenericCeiling = 512

// Name returns "generic".
func (p *GenericPolicy) Name() string { return "generic" }

// targets returns whether CPU c takes part in a flush of ctx (kernel:
// every CPU), and counts an IPI when it is a remote shootdown.
func (p *GenericPolicy) target(s *System, c *CPU, r *Request, kernel bool) bool {
	if !p.IPIs {
		return true
	}
	if !kernel && !r.Ctx.InMask(c.id) {
		return false
	}
	if c.id != s.local {
		r.Meter.Note(cost.TLBIPIs, 1, r.Start, uint64(c.id))
	}
	return true
}

// Flush carries out r on every CPU (or, with IPIs, on the mm_cpumask).
func (p *GenericPolicy) Flush(s *System, r *Request) {
	ceiling := p.Ceiling
	if ceiling == 0 {
		ceiling = DefaultGenericCeiling
	}
	kernel := r.Kind == FlushAll || r.Kind == FlushKernelRange
	full := r.End == TLBFlushAll || r.Pages() >= ceiling
	if !kernel {
		r.Ctx.BumpTLBGen()
	}
	for _, c := range s.cpus {
		if !p.target(s, c, r, kernel) {
			continue
		}
		switch {
		case kernel && full:
			c.DropAll(r.Meter)
		case kernel && r.Ctx != nil:
			c.DropRange(r.Meter, r.Ctx, r.Start, r.End, r.StrideShift, WalkVA|AllASIDs)
		case kernel:
			// No kernel context: only global entries can be
			// cached for kernel addresses.
			c.DropRange(r.Meter, nil, r.Start, r.End, r.StrideShift, LeafOnly)
		case full:
			c.DropASID(r.Meter, r.Ctx)
		case r.Kind == FlushPage || r.LastLevel:
			c.DropRange(r.Meter, r.Ctx, r.Start, r.End, r.StrideShift, LeafOnly)
		default:
			c.DropRange(r.Meter, r.Ctx, r.Start, r.End, r.StrideShift, WalkVA)
		}
	}
}

// Written checks break-before-make and live stores when asked to.
func (p *GenericPolicy) Written(s *System, ctx *Context, addr uint64, ptr pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind) {
	if p.CheckLiveStore {
		s.CheckLiveStore(ctx, addr, ptr, old, new, kind)
	}
	if p.CheckBBM {
		s.CheckBreakBeforeMake(ctx, addr, ptr, old, new, kind, p.BBML2)
	}
}
