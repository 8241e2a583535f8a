package tlb

import "github.com/ptsim/ptsim/pgtable"

// Gather is an mmu_gather (include/asm-generic/tlb.h): it collects the
// ranges whose entries were cleared and the page tables detached while
// tearing mappings down, and flushes once. Tables and deferred work (the
// pages the mmu frees) are released only after that flush, so no CPU can
// reach a freed table through its walk cache or a freed page through its
// TLB.
//
// Ordering rule, as in Linux: clear entries, AddRange/RemoveTable, and
// only then Flush; never free a page before the flush that follows its
// unmapping.
type Gather struct {
	// s is the System the gather flushes on.
	s *System
	// ctx is the mm (tlb->mm).
	ctx *Context
	// fullMM is set for a gather that tears the whole mm down
	// (tlb_gather_mmu_fullmm).
	fullMM bool
	// start and end are the range gathered since the last flush
	// (tlb->start, tlb->end); empty when end <= start.
	start, end uint64
	// stride is the smallest stride shift gathered (tlb_get_unmap_shift:
	// cleared_ptes before cleared_pmds...); 0 when nothing was.
	stride uint
	// pending is set when something was gathered since the last flush.
	pending bool
	// freedTables is set when a table was removed since the last flush.
	freedTables bool
	// tables are the detached tables waiting for the flush.
	tables []gatheredTable
	// deferred is the work waiting for the flush.
	deferred []func()
	// err is the first error freeing a table.
	err error
}

// gatheredTable is one table RemoveTable took.
type gatheredTable struct {
	// pt is the page table the table belonged to, which frees it.
	pt *pgtable.PageTable
	// t is the detached table.
	t *pgtable.Table
}

// NewGather starts an mmu_gather on ctx (tlb_gather_mmu, or
// tlb_gather_mmu_fullmm with fullMM when the whole mm is torn down).
func (s *System) NewGather(ctx *Context, fullMM bool) *Gather {
	return &Gather{s: s, ctx: ctx, fullMM: fullMM}
}

// Context returns the gather's mm.
func (g *Gather) Context() *Context { return g.ctx }

// FullMM reports whether the gather tears the whole mm down.
func (g *Gather) FullMM() bool { return g.fullMM }

// Range returns the range gathered since the last flush (tlb->start,
// tlb->end); start >= end when none was.
func (g *Gather) Range() (start, end uint64) { return g.start, g.end }

// StrideShift returns the stride of the gathered range
// (tlb_get_unmap_shift): the smallest stride added, else the page shift.
func (g *Gather) StrideShift() uint {
	if g.stride == 0 {
		return g.s.pageShift
	}
	return g.stride
}

// FreedTables reports whether tables were removed since the last flush
// (tlb->freed_tables).
func (g *Gather) FreedTables() bool { return g.freedTables }

// Pending reports whether anything was gathered since the last flush.
func (g *Gather) Pending() bool { return g.pending }

// PendingTables returns the number of tables waiting for the flush.
func (g *Gather) PendingTables() int { return len(g.tables) }

// Err returns the first error met while freeing a gathered table (a table
// that still maps something is not freed: EINVAL), or nil.
func (g *Gather) Err() error { return g.err }

// AddRange records that entries in [start, end) were cleared, to be
// invalidated every 1<<strideShift bytes (tlb_remove_tlb_entry,
// __tlb_adjust_range with cleared_ptes for a page stride, cleared_pmds for
// PMD_SHIFT...). An empty range is ignored.
func (g *Gather) AddRange(start, end uint64, strideShift uint) {
	if end <= start {
		return
	}
	g.adjust(start, end, strideShift)
}

// adjust widens the gathered range (__tlb_adjust_range).
func (g *Gather) adjust(start, end uint64, shift uint) {
	if !g.pending || start < g.start {
		g.start = start
	}
	if !g.pending || end > g.end {
		g.end = end
	}
	if shift != 0 && (g.stride == 0 || shift < g.stride) {
		g.stride = shift
	}
	g.pending = true
}

// RemoveTable takes a detached, empty table of pt (pte_free_tlb,
// pmd_free_tlb...): it widens the range by the page at the table's base
// with the stride of the entry that pointed at it (tlb_flush_pmd_range for
// a PTE table), sets freed_tables, and keeps the table until the flush.
// It implements pgtable.TableFreer.
func (g *Gather) RemoveTable(pt *pgtable.PageTable, t *pgtable.Table) {
	if pt == nil || t == nil {
		return
	}
	geo := pt.Geometry()
	shift := geo.PageShift
	for i, tg := range geo.Tables {
		if tg.Level == t.Level() && i > 0 {
			shift = geo.Tables[i-1].Shift
		}
	}
	base := t.Base()
	g.adjust(base, base+geo.PageSize(), shift)
	g.freedTables = true
	g.tables = append(g.tables, gatheredTable{pt: pt, t: t})
}

// Defer queues f to run after the next flush (the mmu frees the unmapped
// pages this way: tlb_remove_page).
func (g *Gather) Defer(f func()) {
	if f != nil {
		g.deferred = append(g.deferred, f)
	}
}

// Flush is tlb_flush_mmu: if anything was gathered, one flush of it
// through the policy's TLBFlush (freed_tables passed on); then the
// gathered tables are freed, then the deferred work runs, in the order
// given. The gather is then empty and may go on gathering.
func (g *Gather) Flush() {
	if g.pending && g.s.usable(g.ctx) {
		g.s.policy.TLBFlush(g.s, g)
	}
	g.start, g.end, g.stride, g.pending, g.freedTables = 0, 0, 0, false, false
	tables := g.tables
	g.tables = nil
	for _, gt := range tables {
		if err := gt.pt.FreeTable(gt.t); err != nil && g.err == nil {
			g.err = err
		}
	}
	deferred := g.deferred
	g.deferred = nil
	for _, f := range deferred {
		f()
	}
}

// Finish is tlb_finish_mmu: the final flush. The gather is empty after
// it and may be reused as a new one. It returns Err().
func (g *Gather) Finish() error {
	g.Flush()
	return g.err
}
