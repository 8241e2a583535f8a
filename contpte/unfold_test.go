package contpte_test

import (
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// row is one row of contpte.md's unfold-trigger table (plus the
// neighbouring public functions): an operation on two folded blocks at
// base (block a0) and base+CONT_PTE_SIZE (block a1), all entries young,
// dirty and writable, and the facts it must leave.
type row struct {
	name string
	// op runs the operation (and any set-up it needs first) and returns
	// what the operation alone counted.
	op func(e *env) cost.Counts
	// want are the contpte counters of the operation.
	want convertCounts
	// blockFlushes counts the block flushes contpte issues (each one
	// CONT_PTES-page last-level range: TLBI VALE1IS per page, or one
	// range TLBI, then a DSB); otherTLBI and otherSyncs are what the
	// caller's own flush adds: an mmu_gather flushing gatherPages
	// pages (one TLBI VALE1IS for one page; for a block's worth, as a
	// block flush).
	blockFlushes int
	gatherPages  int
	// after checks the raw entries and restores what the operation took
	// away behind mmu's back, so the checker can run.
	after func(e *env)
}

// unfoldRows returns the table. Expected TLBI counts follow Linux's
// __flush_tlb_range: one TLBI per page of the block without
// FEAT_TLBIRANGE, one range TLBI with it.
func unfoldRows() []row {
	return []row{
		{
			name: "set_pte_at mid-block (unfold, write, no fold)",
			op: func(e *env) cost.Counts {
				a := e.page(base, 3)
				r := e.raw(a)
				return e.delta(func() { e.pt.SetPTEAt(a, e.ptr(a), e.f.Wrprotect(e.f.MkNonCont(r), pgtable.PTE)) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{cont: 0, young: e.n, dirty: e.n, write: e.n - 1, present: e.n}, e.state(base))
				isTrue(e.t, e.folded(base+e.block), "the neighbouring block stays folded")
				// The caller flushes the page it write-protected; with
				// BBML2 the convert did not, and the old contiguous
				// entry is still cached until this flush.
				e.m.TLB().FlushTLBPage(e.mm.TLBContext(), e.page(base, 3))
			},
		},
		{
			name: "set_pte_at last entry, same value (unfold, write, fold)",
			op: func(e *env) cost.Counts {
				a := e.page(base, e.n-1)
				r := e.raw(a)
				return e.delta(func() { e.pt.SetPTEAt(a, e.ptr(a), e.f.MkNonCont(r)) })
			},
			want:         convertCounts{folds: 1, unfolds: 1, converts: 2},
			blockFlushes: 2,
			after: func(e *env) {
				isTrue(e.t, e.folded(base))
				equal(e.t, blockState{cont: e.n, young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
			},
		},
		{
			name: "pte_clear",
			op: func(e *env) cost.Counts {
				a := e.page(base, 5)
				return e.delta(func() { e.pt.PTEClear(a, e.ptr(a)) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n - 1, dirty: e.n - 1, write: e.n - 1, present: e.n - 1}, e.state(base))
				e.restore(e.page(base, 5), 1)
			},
		},
		{
			name: "ptep_get_and_clear",
			op: func(e *env) cost.Counts {
				a := e.page(base, 5)
				var got pgtable.Entry
				d := e.delta(func() { got = e.pt.PtepGetAndClear(a, e.ptr(a)) })
				isFalse(e.t, e.f.Cont(got, pgtable.PTE), "the unfold ran before the clear")
				isTrue(e.t, e.f.Dirty(got, pgtable.PTE) && e.f.Young(got, pgtable.PTE))
				return d
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, e.n-1, e.state(base).present)
				zero(e.t, e.state(base).cont)
				e.restore(e.page(base, 5), 1)
			},
		},
		{
			name: "clear_full_ptes, whole block (cleared raw)",
			op: func(e *env) cost.Counts {
				a := base + e.block
				return e.delta(func() { e.pt.ClearFullPTEs(a, e.ptr(a), e.n, true) })
			},
			after: func(e *env) {
				zero(e.t, e.state(base+e.block).present)
				isTrue(e.t, e.folded(base), "the other block is untouched")
				e.restore(base+e.block, e.n)
			},
		},
		{
			name: "clear_full_ptes, cutting both blocks (unfold both edges)",
			op: func(e *env) cost.Counts {
				a := e.page(base, e.n/2)
				return e.delta(func() { e.pt.ClearFullPTEs(a, e.ptr(a), e.n, true) })
			},
			want:         convertCounts{unfolds: 2, converts: 2},
			blockFlushes: 2,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n / 2, dirty: e.n / 2, write: e.n / 2, present: e.n / 2}, e.state(base))
				equal(e.t, blockState{young: e.n / 2, dirty: e.n / 2, write: e.n / 2, present: e.n / 2}, e.state(base+e.block))
				e.restoreEach(e.page(base, e.n/2), e.n)
			},
		},
		{
			name: "get_and_clear_full_ptes, whole block (cleared raw, no convert)",
			op: func(e *env) cost.Counts {
				a := base + e.block
				var got pgtable.Entry
				d := e.delta(func() { got = e.pt.GetAndClearFullPTEs(a, e.ptr(a), e.n, true) })
				isTrue(e.t, e.f.Cont(got, pgtable.PTE), "PTE_CONT shows through the getter")
				isTrue(e.t, e.f.Dirty(got, pgtable.PTE) && e.f.Young(got, pgtable.PTE))
				return d
			},
			after: func(e *env) {
				zero(e.t, e.state(base+e.block).present)
				e.restore(base+e.block, e.n)
			},
		},
		{
			name: "get_and_clear_full_ptes, tail of one block (unfold it)",
			op: func(e *env) cost.Counts {
				a := e.page(base, e.n-3)
				return e.delta(func() { e.pt.GetAndClearFullPTEs(a, e.ptr(a), 3, false) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n - 3, dirty: e.n - 3, write: e.n - 3, present: e.n - 3}, e.state(base))
				isTrue(e.t, e.folded(base+e.block))
				e.restoreEach(e.page(base, e.n-3), 3)
			},
		},
		{
			name: "munmap of a whole block (zap clears it raw)",
			op: func(e *env) cost.Counts {
				return e.delta(func() { noErr(e.t, e.mm.Munmap(base+e.block, e.block)) })
			},
			gatherPages: 16, // set per granule below
			after: func(e *env) {
				zero(e.t, e.state(base+e.block).present)
				isTrue(e.t, e.folded(base))
			},
		},
		{
			name: "munmap of one page (zap unfolds its block)",
			op: func(e *env) cost.Counts {
				return e.delta(func() { noErr(e.t, e.mm.Munmap(e.page(base, 5), e.ps)) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			gatherPages:  1,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n - 1, dirty: e.n - 1, write: e.n - 1, present: e.n - 1}, e.state(base))
			},
		},
		{
			name: "munmap across two blocks (zap unfolds both)",
			op: func(e *env) cost.Counts {
				return e.delta(func() { noErr(e.t, e.mm.Munmap(e.page(base, e.n/2), e.block)) })
			},
			want:         convertCounts{unfolds: 2, converts: 2},
			blockFlushes: 2,
			gatherPages:  16, // a block's worth
			after: func(e *env) {
				equal(e.t, e.n/2, e.state(base).present)
				equal(e.t, e.n/2, e.state(base+e.block).present)
				zero(e.t, e.state(base).cont+e.state(base+e.block).cont)
			},
		},
		{
			name: "mprotect(r) of a middle page (ptep_get_and_clear + set_pte_at)",
			op: func(e *env) cost.Counts {
				return e.delta(func() { noErr(e.t, e.mm.Mprotect(e.page(base, 5), e.ps, mmu.ProtRead)) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			gatherPages:  1,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n, dirty: e.n, write: e.n - 1, present: e.n}, e.state(base))
			},
		},
		{
			name: "wrprotect_ptes of a whole block (in place, no flush)",
			op: func(e *env) cost.Counts {
				return e.delta(func() { e.pt.WrprotectPTEs(base, e.ptr(base), e.n) })
			},
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, young: e.n, dirty: e.n, present: e.n}, e.state(base))
				e.flushMM() // fork's flush_tlb_mm
			},
		},
		{
			name: "wrprotect_ptes cutting both blocks (unfold the edges)",
			op: func(e *env) cost.Counts {
				a := e.page(base, e.n/2)
				return e.delta(func() { e.pt.WrprotectPTEs(a, e.ptr(a), e.n) })
			},
			want:         convertCounts{unfolds: 2, converts: 2},
			blockFlushes: 2,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n, dirty: e.n, write: e.n / 2, present: e.n}, e.state(base))
				equal(e.t, blockState{young: e.n, dirty: e.n, write: e.n / 2, present: e.n}, e.state(base+e.block))
				e.flushMM()
			},
		},
		{
			name: "wrprotect_ptes of a block and a half (only the cut block unfolds)",
			op: func(e *env) cost.Counts {
				return e.delta(func() { e.pt.WrprotectPTEs(base, e.ptr(base), e.n+e.n/2) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, young: e.n, dirty: e.n, present: e.n}, e.state(base))
				equal(e.t, blockState{young: e.n, dirty: e.n, write: e.n / 2, present: e.n}, e.state(base+e.block))
				e.flushMM()
			},
		},
		{
			name: "ptep_set_wrprotect (unfold, then write-protect one entry)",
			op: func(e *env) cost.Counts {
				a := e.page(base, 7)
				return e.delta(func() { e.pt.PtepSetWrprotect(a, e.ptr(a)) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n, dirty: e.n, write: e.n - 1, present: e.n}, e.state(base))
				e.flushMM()
			},
		},
		{
			name: "ptep_set_access_flags, write unchanged, young (every entry updated, no flush)",
			op: func(e *env) cost.Counts {
				a := e.page(base, 3)
				e.pt.PtepTestAndClearYoung(a, e.ptr(a))
				zero(e.t, e.state(base).young)
				var changed bool
				d := e.delta(func() {
					changed = e.pt.PtepSetAccessFlags(a, e.ptr(a), e.f.MkYoung(e.pt.PtepGet(a, e.ptr(a)), pgtable.PTE), false)
				})
				isTrue(e.t, changed)
				equal(e.t, uint64(e.n), d[cost.PTESets], "every entry of the block gets the access flag")
				return d
			},
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
			},
		},
		{
			name: "ptep_set_access_flags, write unchanged, dirty (block flushed once)",
			op: func(e *env) cost.Counts {
				a := e.page(base, 3)
				e.pt.PtepTestAndClearYoung(a, e.ptr(a))
				return e.delta(func() {
					e.pt.PtepSetAccessFlags(a, e.ptr(a), e.f.MkYoung(e.pt.PtepGet(a, e.ptr(a)), pgtable.PTE), true)
				})
			},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
			},
		},
		{
			name: "ptep_set_access_flags, nothing to change (no-op)",
			op: func(e *env) cost.Counts {
				a := e.page(base, 3)
				var changed bool
				d := e.delta(func() {
					changed = e.pt.PtepSetAccessFlags(a, e.ptr(a), e.pt.PtepGet(a, e.ptr(a)), true)
				})
				isFalse(e.t, changed)
				zero(e.t, d[cost.PTESets])
				return d
			},
			after: func(e *env) { isTrue(e.t, e.folded(base)) },
		},
		{
			// Linux 7.0's fix of the no-op check: the gathered view of
			// the block is already young and dirty (a store dirtied
			// entry 2), but the target entry itself is old and clean
			// with PTE_RDONLY set, so a walker reading each descriptor
			// on its own would fault on it for ever. The raw check
			// sees it and updates every entry; the gathered check of
			// Linux 6.9-6.19 returned 0 here.
			name: "ptep_set_access_flags, gathered view hides a stale target (raw check: every entry updated)",
			op: func(e *env) cost.Counts {
				e.ops().ClearYoungDirtyPTEs(e.pt, base, e.ptr(base), e.n, true, true)
				e.flushMM()
				noErr(e.t, e.mm.Write(0, e.page(base, 2), 5))
				equal(e.t, blockState{cont: e.n, young: 1, dirty: 1, write: e.n, present: e.n}, e.state(base))
				a := e.page(base, 9)
				raw := e.raw(a)
				isFalse(e.t, e.f.Young(raw, pgtable.PTE) || e.f.Dirty(raw, pgtable.PTE), "precondition: the target is old and clean")
				entry := e.f.MkYoung(e.f.MkDirty(e.pt.PtepGet(a, e.ptr(a)), pgtable.PTE), pgtable.PTE)
				equal(e.t, e.pt.PtepGet(a, e.ptr(a)), entry, "precondition: the gathered view already shows young and dirty")
				var changed bool
				d := e.delta(func() { changed = e.pt.PtepSetAccessFlags(a, e.ptr(a), entry, true) })
				isTrue(e.t, changed, "not a no-op: the target's raw entry differs")
				equal(e.t, blockState{cont: e.n, young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
				isFalse(e.t, e.pt.PtepSetAccessFlags(a, e.ptr(a), entry, true), "now every raw entry matches: a no-op")
				return d
			},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
			},
		},
		{
			name: "ptep_set_access_flags, write bit changes (unfold)",
			op: func(e *env) cost.Counts {
				e.pt.WrprotectPTEs(base, e.ptr(base), e.n)
				e.flushMM()
				a := e.page(base, 3)
				return e.delta(func() {
					n := e.f.MkWrite(e.f.MkDirty(e.pt.PtepGet(a, e.ptr(a)), pgtable.PTE), pgtable.PTE)
					isTrue(e.t, e.pt.PtepSetAccessFlags(a, e.ptr(a), n, true))
				})
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n, dirty: e.n, write: 1, present: e.n}, e.state(base))
			},
		},
		{
			name: "write fault on a write-protected block (do_wp_page reuse unfolds)",
			op: func(e *env) cost.Counts {
				e.pt.WrprotectPTEs(base, e.ptr(base), e.n)
				e.flushMM()
				return e.delta(func() { noErr(e.t, e.mm.Write(1, e.page(base, 3), 99)) })
			},
			want:         convertCounts{unfolds: 1, converts: 1},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{young: e.n, dirty: e.n, write: 1, present: e.n}, e.state(base))
			},
		},
		{
			name: "ptep_test_and_clear_young (whole block, no unfold)",
			op: func(e *env) cost.Counts {
				a := e.page(base, 5)
				var young bool
				d := e.delta(func() { young = e.pt.PtepTestAndClearYoung(a, e.ptr(a)) })
				isTrue(e.t, young)
				isFalse(e.t, e.pt.PtepTestAndClearYoung(a, e.ptr(a)), "the whole block is old now")
				return d
			},
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
				equal(e.t, e.n, e.state(base+e.block).young)
			},
		},
		{
			name: "ptep_clear_flush_young (whole block, block flushed)",
			op: func(e *env) cost.Counts {
				a := e.page(base, 5)
				var young bool
				d := e.delta(func() { young = e.ops().ClearFlushYoung(e.pt, a, e.ptr(a)) })
				isTrue(e.t, young)
				zero(e.t, d[cost.TLBFlushRange], "arm64's own flush is no flush API call")
				return d
			},
			blockFlushes: 1,
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
			},
		},
		{
			name: "clear_young_dirty_ptes (MADV_FREE) of a few pages: widened to the block",
			op: func(e *env) cost.Counts {
				a := e.page(base, 2)
				return e.delta(func() { e.ops().ClearYoungDirtyPTEs(e.pt, a, e.ptr(a), 3, true, true) })
			},
			after: func(e *env) {
				equal(e.t, blockState{cont: e.n, write: e.n, present: e.n}, e.state(base))
				equal(e.t, e.n, e.state(base+e.block).dirty)
				e.flushMM() // madvise_free's mmu_gather
			},
		},
	}
}

// restore maps nr pages from a again with their entries as snap saw
// them (without PTE_CONT), as they were before a test cleared them behind
// mmu's back: one set_ptes call.
func (e *env) restore(a uint64, nr int) {
	e.t.Helper()
	e.pt.SetPTEs(a, e.ptr(a), e.f.MkNonCont(e.saved[a]), nr)
}

// restoreEach maps nr pages from a again, one set_pte_at at a time, with
// their entries as snap saw them.
func (e *env) restoreEach(a uint64, nr int) {
	e.t.Helper()
	for i := 0; i < nr; i++ {
		p := e.page(a, i)
		e.pt.SetPTEAt(p, e.ptr(p), e.f.MkNonCont(e.saved[p]))
	}
}

// flushMM flushes the address space (flush_tlb_mm), as the callers of
// in-place write-protection and MADV_FREE do.
func (e *env) flushMM() { e.m.TLB().FlushTLBMM(e.mm.TLBContext()) }

// TestUnfoldTable runs every row on every granule, with and without
// range TLBI, and with BBML2 (no block flushes).
func TestUnfoldTable(t *testing.T) {
	for _, g := range granules {
		for _, plat := range []struct {
			name       string
			knobs      []string
			perBlock   uint64
			flushBlock bool
		}{
			{"tlbi", nil, uint64(g.contPTEs), true},
			{"range_tlbi", []string{"range_tlbi", "on"}, 1, true},
			{"bbml2", []string{"range_tlbi", "on", "bbml2", "on"}, 1, true},
		} {
			for _, r := range unfoldRows() {
				t.Run(g.name+"/"+plat.name+"/"+r.name, func(t *testing.T) {
					e := newEnv(t, g.g, plat.knobs...)
					equal(t, g.contPTEs, e.n)
					e.anonBlocks(2)
					isTrue(t, e.folded(base) && e.folded(base+e.block), "set_ptes(CONT_PTES) sets the contiguous bit directly")
					e.snap()
					d := r.op(e)
					equal(t, r.want, converts(d))
					flushes := uint64(r.blockFlushes)
					if plat.name == "bbml2" {
						// BBML2 skips the convert's flush; the
						// other block flushes (access flags, clear
						// young) stay.
						flushes -= r.want.converts
					}
					var gatherTLBI, gatherSyncs uint64
					switch {
					case r.gatherPages == 1:
						gatherTLBI, gatherSyncs = 1, 1
					case r.gatherPages > 1:
						// A block's worth of pages, as a block
						// flush.
						gatherTLBI, gatherSyncs = plat.perBlock, 1
					}
					equal(t, flushes*plat.perBlock+gatherTLBI, d[cost.TLBIOps], "tlbi_ops")
					equal(t, flushes+gatherSyncs, d[cost.TLBSyncs], "tlb_syncs")
					r.after(e)
					e.check(r.name)
				})
			}
		}
	}
}
