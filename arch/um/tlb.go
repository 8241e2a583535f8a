package um

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// TLBPolicy is UML's TLB behaviour (arch/um/kernel/tlb.c,
// asm/tlbflush.h, asm/pgtable.h). UML's "TLB" is the host address
// space of the process that runs the mm: a guest page is usable once the
// host maps it, with the protection the pte allows.
//
//   - Nothing is invalidated when the flush API is called: set_ptes,
//     flush_tlb_page and flush_tlb_range only widen the mm's pending
//     sync range (um_tlb_mark_sync, mm->context.sync_tlb_range_from/to),
//     and flush_tlb_mm marks every VMA, which the model does by marking
//     the whole user address space (the sync visits only existing
//     tables, and outside the VMAs no entry waits for a sync). The
//     policy widens the range on every entry write too, as set_ptes does
//     and as the flush that follows a clear would.
//   - um_tlb_sync runs before the mm is next used: the model runs it
//     when a CPU looks the mm up (AccessHook), before the TLB answers.
//     It walks the tables over the pending range. Each pte carrying
//     _PAGE_NEEDSYNC (every pte write sets it, a clear leaves it) costs
//     one host syscall: mmap of the page if present, munmap if not; an
//     upper-level entry with the bit and no table beneath costs one
//     munmap of its span. Then the bit is cleared
//     (pgtable.MkUptodate), the range reset. The host mapping's
//     protection comes from the pte with young and dirty emulated: an
//     old page is mapped with no access and a clean one without write,
//     so the first read and the first write fault (Format.HWYoung and
//     HWDirty are false, and the machine's walk grants what the host
//     mapping would).
//   - flush_tlb_kernel_range marks init_mm and syncs it at once
//     (os_map_memory and os_unmap_memory from the kernel, one host
//     syscall each, counted on the kernel meter). flush_tlb_all is
//     flush_tlb_mm of the issuing CPU's current mm.
//
// The model keeps the host mapping in the per-CPU TLBs: an entry cached
// for the mm stands for the host mapping of that page, which every CPU
// running the mm shares, since they run in one host address space. A
// sync that changes a page's host mapping drops the page's entries on
// every CPU (counted as tlb_invalidated on the mm's meter); no IPI is
// sent. Entries inside a pending range are unreachable, since the next
// access syncs them first. The host has no walk cache for guest tables,
// so the policy turns walk caches off.
//
// Current UML stubs queue the host syscalls and merge an mmap or munmap
// with the previous one when the ranges are adjacent (and protections
// and file offsets match), which makes a sync of a contiguous run
// cheaper than one syscall per entry; the model counts one per entry
// needing sync, as older UML issued them.
type TLBPolicy struct {
	tlb.BasePolicy
}

// NewTLBPolicy returns the UML policy; no platform parameter changes it.
func NewTLBPolicy(p arch.Platform) *TLBPolicy { return &TLBPolicy{} }

// newTLBPolicy is the descriptor's NewTLBPolicy.
func newTLBPolicy(p arch.Platform) tlb.Policy { return NewTLBPolicy(p) }

// Name returns "um".
func (p *TLBPolicy) Name() string { return "um" }

// syncRange is mm->context's sync_tlb_range_from/to.
type syncRange struct {
	// pending is set while [from, to) waits for a sync (Linux uses
	// to == 0 for none; the model's ranges may end at the top).
	pending bool
	// from and to delimit the range; to == 0 is the top of the space.
	from, to uint64
}

// state returns ctx's pending sync range, creating it on first use.
func state(ctx *tlb.Context) *syncRange {
	if st, ok := ctx.PolicyState().(*syncRange); ok {
		return st
	}
	st := &syncRange{}
	ctx.SetPolicyState(st)
	return st
}

// mark is um_tlb_mark_sync: widen the pending range to cover
// [start, end) (end 0: the top).
func (st *syncRange) mark(start, end uint64) {
	if !st.pending {
		st.pending, st.from, st.to = true, start, end
		return
	}
	st.from = min(st.from, start)
	if st.to != 0 && (end == 0 || end > st.to) {
		st.to = end
	}
}

// contains reports whether va lies in the pending range.
func (st *syncRange) contains(va uint64) bool {
	return st.pending && va >= st.from && (st.to == 0 || va < st.to)
}

// PendingSync returns ctx's pending sync range; ok is false when
// nothing waits (end 0 is the top of the space).
func PendingSync(ctx *tlb.Context) (start, end uint64, ok bool) {
	st := state(ctx)
	return st.from, st.to, st.pending
}

// Attach turns the walk caches off.
func (p *TLBPolicy) Attach(s *tlb.System) {
	_ = s.SetWalkCacheEntries(0) // 0 is always accepted
}

// markAll marks the whole address space of ctx.
func markAll(ctx *tlb.Context) {
	space := pgtable.Range{}
	if pt := ctx.PageTable(); pt != nil {
		space = pt.Space()
	}
	state(ctx).mark(space.Start, space.End)
}

// Flush carries out one flush API call.
func (p *TLBPolicy) Flush(s *tlb.System, r *tlb.Request) {
	switch r.Kind {
	case tlb.FlushMM:
		markAll(r.Ctx)
	case tlb.FlushAll:
		if cur := s.LocalCPU().Current(); cur != nil && !cur.Kernel() {
			markAll(cur)
		}
	case tlb.FlushKernelRange:
		if r.Ctx == nil {
			return
		}
		state(r.Ctx).mark(r.Start, r.End)
		p.sync(s, r.Ctx, r.Meter)
	default:
		end := r.End
		if end == tlb.TLBFlushAll {
			end = 0
		}
		state(r.Ctx).mark(r.Start, end)
	}
}

// Written widens the pending range over the entry written, as set_ptes
// does (and the flush after a clear would).
func (p *TLBPolicy) Written(s *tlb.System, ctx *tlb.Context, addr uint64, ptr pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind) {
	pt := ctx.PageTable()
	if pt == nil || !ptr.Valid() {
		return
	}
	size := pt.EntrySize(ptr.T)
	base := addr &^ (size - 1)
	state(ctx).mark(base, base+size)
	// A table populated into an upper entry whose clear still waits for
	// its sync (pmd_clear and friends store _PAGE_NEEDSYNC: the host must
	// munmap the span) would hide that munmap from the next sync, which
	// walks the new, zeroed table instead. Linux syncs when the syscall
	// that cleared the entry returns to user space, before a later one
	// can populate it; the model syncs at the next access, so it does
	// that munmap now: one host syscall, the span's entries dropped.
	if ptr.T.Level() != pgtable.PTE && old&NeedSync != 0 && ptr.Child() != nil {
		m := ctx.Meter()
		m.Note(cost.HostSyscalls, 1, base, size)
		for cpu := 0; cpu < s.CPUs(); cpu++ {
			if c := s.CPU(cpu); c.Live() > 0 {
				c.DropOverlap(m, ctx, base, base+size, tlb.LeafOnly)
			}
		}
	}
}

// BeforeAccess syncs a user mm's pending range before a CPU uses it.
func (p *TLBPolicy) BeforeAccess(s *tlb.System, c *tlb.CPU, ctx *tlb.Context, va uint64) {
	if ctx.Kernel() {
		return
	}
	if st, ok := ctx.PolicyState().(*syncRange); ok && st.pending {
		p.sync(s, ctx, ctx.Meter())
	}
}

// Reachable reports false inside the pending range: the next access
// syncs it before any CPU uses its entries.
func (p *TLBPolicy) Reachable(s *tlb.System, c *tlb.CPU, ctx *tlb.Context, va uint64) bool {
	st, ok := ctx.PolicyState().(*syncRange)
	return !ok || !st.contains(va)
}

// Sync runs um_tlb_sync on ctx now, counting on its meter.
func (p *TLBPolicy) Sync(s *tlb.System, ctx *tlb.Context) { p.sync(s, ctx, ctx.Meter()) }

// sync is um_tlb_sync: every entry of the pending range that needs a
// sync gets its host syscall, then the range is reset.
func (p *TLBPolicy) sync(s *tlb.System, ctx *tlb.Context, m *cost.Meter) {
	st := state(ctx)
	if !st.pending {
		return
	}
	from, to := st.from, st.to
	*st = syncRange{}
	pt := ctx.PageTable()
	if pt == nil {
		return
	}
	root := pt.Root()
	p.syncTable(s, ctx, m, pt, root, root.Base(), from, to)
}

// syncTable is update_pmd_range, update_pte_range and friends over table
// t, which maps from base, clipped to [from, to) (to 0: the top).
func (p *TLBPolicy) syncTable(s *tlb.System, ctx *tlb.Context, m *cost.Meter, pt *pgtable.PageTable, t *pgtable.Table, base, from, to uint64) {
	size := pt.EntrySize(t)
	first := 0
	if from > base {
		first = int((from - base) / size)
	}
	for i := first; i < t.Len(); i++ {
		a := base + uint64(i)*size
		if to != 0 && a >= to {
			break
		}
		lo, hi := max(a, from), a+size
		if hi < a {
			hi = 0 // the entry ends at the top of the space
		}
		if to != 0 && (hi == 0 || hi > to) {
			hi = to
		}
		m.Add(cost.EntryReads, 1)
		if child := t.Child(i); child != nil {
			p.syncTable(s, ctx, m, pt, child, a, lo, hi)
			continue
		}
		e := t.Entry(i)
		if e&NeedSync == 0 {
			continue
		}
		// mmap of a present pte (with the protection the pte and the
		// young/dirty emulation give), munmap of anything else: one
		// host syscall (trace: the address and the length).
		m.Note(cost.HostSyscalls, 1, lo, hi-lo)
		for cpu := 0; cpu < s.CPUs(); cpu++ {
			c := s.CPU(cpu)
			if c.Live() == 0 {
				continue
			}
			if t.Level() == pgtable.PTE {
				c.DropVA(m, ctx, a, tlb.LeafOnly)
			} else {
				c.DropOverlap(m, ctx, lo, hi, tlb.LeafOnly)
			}
		}
		pt.MkUptodate(pgtable.Ptr{T: t, I: i})
	}
}
