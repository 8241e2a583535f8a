package contpte_test

import (
	"strings"
	"testing"

	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// violations drains the machine's break-before-make violations as text.
func (e *env) violations() []string {
	var out []string
	for _, v := range e.m.TLB().Violations() {
		out = append(out, v.String())
	}
	return out
}

// readAll reads every mapped page of the block at a from cpu, filling
// its TLB.
func (e *env) readAll(cpu int, a uint64) {
	e.t.Helper()
	for i := 0; i < e.n; i++ {
		if _, ok := e.mm.Translate(e.page(a, i)); !ok {
			continue
		}
		_, err := e.mm.Read(cpu, e.page(a, i))
		noErr(e.t, err)
	}
}

// first returns the first of vs, or nothing.
func firstOf(vs []string) []string {
	if len(vs) > 1 {
		return vs[:1]
	}
	return vs
}

// contains reports whether some violation mentions what.
func contains(vs []string, what string) bool {
	for _, v := range vs {
		if strings.Contains(v, what) {
			return true
		}
	}
	return false
}

// TestBBMCatchesLiveChanges: flipping the contiguous bit of a live entry
// with a raw store, or changing its output address, without the invalid
// step and the flush is a break-before-make violation. BBML2 without
// conflict aborts allows the contiguous-bit change, never the address
// change.
func TestBBMCatchesLiveChanges(t *testing.T) {
	for _, g := range granules {
		for _, bbml2 := range []string{"off", "on"} {
			t.Run(g.name+"/bbml2="+bbml2, func(t *testing.T) {
				e := newEnv(t, g.g, "bbml2", bbml2)
				e.anonBlocks(1)
				e.readAll(1, base)
				zero(t, len(e.violations()), "a clean start")

				r0 := e.raw(base)
				e.pt.RawSet(base, e.ptr(base), e.f.MkNonCont(r0))
				vs := e.violations()
				if bbml2 == "off" {
					equal(t, 1, len(vs), "violations %v", vs)
					isTrue(t, contains(vs, "contiguous bit"), "violations %v", vs)
				} else {
					zero(t, len(vs), "BBML2 allows the contiguous-bit change: %v", vs)
				}
				e.pt.RawSet(base, e.ptr(base), r0)
				e.violations()

				a := e.page(base, 1)
				r1 := e.raw(a)
				e.pt.RawSet(a, e.ptr(a), e.f.AdvancePFN(r1, pgtable.PTE, 1000))
				vs = e.violations()
				equal(t, 1, len(vs), "violations %v", vs)
				isTrue(t, contains(vs, "output address"), "violations %v", vs)
				e.pt.RawSet(a, e.ptr(a), r1)
				e.violations()
				e.check("restored")
			})
		}
	}
}

// TestBBMCatchesMissingFlush: a convert that skips its flush (the invalid
// step, then the new entries) leaves CPUs caching the old form: caught
// unless the CPUs have BBML2, which lets old and new forms coexist.
func TestBBMCatchesMissingFlush(t *testing.T) {
	for _, g := range granules {
		for _, bbml2 := range []string{"off", "on"} {
			t.Run(g.name+"/bbml2="+bbml2, func(t *testing.T) {
				e := newEnv(t, g.g, "bbml2", bbml2)
				e.anonBlocks(1)
				e.readAll(2, base)
				p := e.ptr(base)
				first := e.f.MkNonCont(e.raw(base))
				// A broken unfold: clear, no flush, repaint.
				for i := 0; i < e.n; i++ {
					e.pt.RawGetAndClear(e.page(base, i), p.Add(i))
				}
				e.pt.RawSetPTEs(base, p, first, e.n)
				vs := e.violations()
				if bbml2 == "off" {
					equal(t, e.n, len(vs), "one violation per repainted entry: %v", firstOf(vs))
					isTrue(t, contains(vs, "contiguous bit true"), "violations %v", firstOf(vs))
				} else {
					zero(t, len(vs), "violations %v", vs)
				}
				e.flushMM()
				e.check("flushed")
				// A broken fold: the CPUs cache small entries now.
				e.readAll(3, base)
				for i := 0; i < e.n; i++ {
					e.pt.RawGetAndClear(e.page(base, i), p.Add(i))
				}
				e.pt.RawSetPTEs(base, p, e.f.MkCont(first), e.n)
				vs = e.violations()
				if bbml2 == "off" {
					equal(t, e.n, len(vs), "violations %v", firstOf(vs))
				} else {
					zero(t, len(vs), "violations %v", vs)
				}
				e.flushMM()
				e.check("flushed again")
			})
		}
	}
}

// TestBBMCleanThroughContpte: folds, unfolds, in-place write-protection,
// young clearing and zaps, with every CPU caching the blocks in between,
// never break break-before-make, with or without BBML2.
func TestBBMCleanThroughContpte(t *testing.T) {
	for _, g := range granules {
		for _, bbml2 := range []string{"off", "on"} {
			t.Run(g.name+"/bbml2="+bbml2, func(t *testing.T) {
				e := newEnv(t, g.g, "bbml2", bbml2)
				e.anonBlocks(2)
				last := e.page(base, e.n-1)
				mid := e.page(base+e.block, e.n/2)
				steps := []struct {
					name string
					fn   func()
				}{
					{"mprotect(r) last page", func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead)) }},
					{"mprotect(rw) last page (refold)", func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead|mmu.ProtWrite)) }},
					{"wrprotect_ptes + flush", func() {
						e.pt.WrprotectPTEs(base, e.ptr(base), 2*e.n)
						e.flushMM()
					}},
					{"write fault (reuse, unfold)", func() { noErr(t, e.mm.Write(3, mid, 7)) }},
					{"clear_flush_young", func() { e.ops().ClearFlushYoung(e.pt, base, e.ptr(base)) }},
					{"munmap across blocks", func() { noErr(t, e.mm.Munmap(e.page(base, e.n/2), e.block)) }},
					{"mmap the hole again and refault it", func() {
						noErr(t, e.mm.Mmap(e.page(base, e.n/2), e.block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: e.block}))
						for i := e.n / 2; i < e.n+e.n/2; i++ {
							noErr(t, e.mm.Write(i%4, e.page(base, i), 1))
						}
					}},
					{"munmap all", func() { noErr(t, e.mm.Munmap(base, 2*e.block)) }},
				}
				for _, s := range steps {
					for cpu := 0; cpu < 4; cpu++ {
						for b := 0; b < 2; b++ {
							a := base + uint64(b)*e.block
							e.readAll(cpu, a)
						}
					}
					s.fn()
					e.check(s.name)
				}
			})
		}
	}
}

// TestSetPTEWarns: set_pte has no mm to unfold with; over a valid
// contiguous entry it warns, and the plain store breaks the block (a
// violation without BBML2).
func TestSetPTEWarns(t *testing.T) {
	e := newEnv(t, granules[0].g)
	e.anonBlocks(1)
	o := e.ops()
	a := e.page(base, 2)
	r := e.raw(a)
	isTrue(t, o.SetPTE(e.pt, a, e.ptr(a), r), "set_pte over a contiguous entry warns")
	isFalse(t, e.f.Cont(e.raw(a), pgtable.PTE), "set_pte writes a non-contiguous entry")
	isTrue(t, contains(e.violations(), "contiguous bit"))
	// Repair: ptep_get_and_clear of another entry unfolds the block.
	b := e.page(base, 3)
	saved := e.pt.PtepGetAndClear(b, e.ptr(b))
	e.pt.SetPTEAt(b, e.ptr(b), saved)
	e.check("repaired")
	isFalse(t, o.SetPTE(e.pt, a, e.ptr(a), e.f.MkNonCont(r)), "no warning over a non-contiguous entry")
	e.check("set_pte")
}

// TestValidatorBlockDirty: a CPU caching a contiguous block as dirty is in
// step with the tables while any entry of the block is dirty (the MMU
// dirties the one entry it walked); once every entry is clean (MADV_FREE's
// clear_young_dirty_ptes) it is stale until the flush.
func TestValidatorBlockDirty(t *testing.T) {
	e := newEnv(t, granules[0].g)
	e.anonBlocks(1)
	e.ops().ClearYoungDirtyPTEs(e.pt, base, e.ptr(base), e.n, false, true)
	e.flushMM()
	noErr(t, e.mm.Write(1, e.page(base, 6), 3))
	equal(t, 1, e.state(base).dirty, "the store dirtied the one entry it walked")
	te, ok := e.m.TLB().CPU(1).Probe(e.mm.TLBContext(), base)
	isTrue(t, ok && te.Cont, "cpu1 caches the block")
	e.check("one dirty entry")
	e.ops().ClearYoungDirtyPTEs(e.pt, e.page(base, 6), e.ptr(e.page(base, 6)), 1, false, true)
	var stale []string
	for _, s := range e.m.TLB().Validate() {
		stale = append(stale, s.String())
	}
	isTrue(t, contains(stale, "dirty bit cleared in every entry of the block"), "stale %v", stale)
	e.flushMM()
	e.check("flushed")
}
