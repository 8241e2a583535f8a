package vmemmap

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/phys"
)

// fail installs a fail policy on the rig's memory.
func (r *rig) fail(p phys.FailPolicy) { r.m.Memory().SetFailPolicy(p) }

// flushes returns flush_tlb_all and flush_tlb_kernel_range calls.
func (r *rig) flushes() (all, kern uint64) {
	return r.count(cost.TLBFlushAll), r.count(cost.TLBFlushKernel)
}

// optimized counts the pool's optimised folios.
func optimized(p *Pool) int {
	n := 0
	for _, f := range p.Folios() {
		if p.Optimized(f) {
			n++
		}
	}
	return n
}

// TestENOMEMAlloc: ENOMEM injected in each allocation of a batched
// allocation: the folios themselves (the pool keeps what it got, Linux's
// nr_hugepages), the split's PTE table (phase 1 stops at the first
// failure; phase 2 splits lazily and leaves unoptimised what it cannot
// split), and the new head page (the old head is kept). Flushes: two per
// batch (one for a batch left empty), plus one per ENOMEM retry with pages pending, plus a range flush
// for each PMD phase 2 splits (it runs with REMAP_NO_TLB_FLUSH only, so
// its splits flush). A new head page allocated before a split fails stays
// on the pending list, so when only table allocations fail every folio
// is retried once (as in Linux: vmemmap_remap_free list_adds the new head
// before the walk).
func TestENOMEMAlloc(t *testing.T) {
	cases := []struct {
		name      string
		policy    phys.FailPolicy
		n         int
		wantN     int  // folios in the pool after
		wantErr   bool // Alloc reports ENOMEM
		wantOpt   int  // optimised folios
		wantAll   uint64
		wantKern  uint64
		oldHeads  bool // every optimised folio kept its original head frame
		wantSplit uint64
	}{
		{"first folio allocation fails (empty batch: nr_to_optimize 0, one flush)", phys.FailPolicy{Nth: 1, Kinds: []phys.Kind{phys.KindFolio}},
			10, 0, true, 0, 1, 0, false, 0},
		{"fourth folio allocation fails", phys.FailPolicy{Nth: 4, Kinds: []phys.Kind{phys.KindFolio}},
			10, 3, true, 3, 2, 0, false, 1},
		{"every table allocation fails", phys.FailPolicy{After: 1, Kinds: []phys.Kind{phys.KindTable}},
			10, 10, false, 0, 2 + 10, 0, false, 0},
		{"every table and page allocation fails", phys.FailPolicy{After: 1, Kinds: []phys.Kind{phys.KindTable, phys.KindKernel}},
			10, 10, false, 0, 2, 0, false, 0},
		{"first split fails, phase 2 splits lazily", phys.FailPolicy{Nth: 1, Kinds: []phys.Kind{phys.KindTable}},
			10, 10, false, 10, 2, 1, false, 1},
		{"every new head allocation fails", phys.FailPolicy{After: 1, Kinds: []phys.Kind{phys.KindKernel}},
			10, 10, false, 10, 2, 0, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, "x86_64", 4, 1<<30, "hvo", "on")
			p := r.pool(m2)
			r.touch()
			r.fail(c.policy)
			n, err := p.Alloc(c.n)
			r.fail(phys.FailPolicy{})
			if n != c.wantN || errors.Is(err, ENOMEM) != c.wantErr || (err != nil && !c.wantErr) {
				t.Fatalf("alloc: %d %v", n, err)
			}
			if got := optimized(p); got != c.wantOpt {
				t.Errorf("optimised %d, want %d", got, c.wantOpt)
			}
			if all, kern := r.flushes(); all != c.wantAll || kern != c.wantKern {
				t.Errorf("flushes: all %d kernel %d, want %d and %d", all, kern, c.wantAll, c.wantKern)
			}
			if got := r.count(cost.VmemmapSplits); got != c.wantSplit {
				t.Errorf("splits %d, want %d", got, c.wantSplit)
			}
			if got := r.count(cost.VmemmapPagesFreed); got != uint64(c.wantOpt)*7 {
				t.Errorf("pages freed %d, want %d", got, c.wantOpt*7)
			}
			if c.oldHeads {
				for _, f := range p.Folios() {
					reuse, _ := p.vmemmapRange(f)
					tr, _ := r.m.Kernel().Translate(reuse)
					// Boot vmemmap blocks lie below every folio.
					if r.m.Memory().FolioOf(tr.PFN).PFN != tr.PFN || tr.PFN >= f.PFN {
						t.Fatalf("folio %#x: head vmemmap frame %#x is not a boot vmemmap frame", f.PFN, tr.PFN)
					}
				}
			}
			r.check()
			if p.NrHugePages() == 0 {
				return
			}
			if _, err := p.Free(p.NrHugePages()); err != nil {
				t.Fatal(err)
			}
			r.check()
		})
	}
}

// TestENOMEMRetry: phase 2 meets ENOMEM on a split with freed pages
// pending: it flushes, frees them and retries the folio once. With every
// table allocation failing the retry fails too and the folio stays
// unoptimised (3 flush_tlb_all); when the only memory is the pages the
// batch gives back, the retry succeeds.
func TestENOMEMRetry(t *testing.T) {
	setup := func(t *testing.T) (*rig, *Pool, []phys.Folio, []phys.Folio) {
		r := newRig(t, "x86_64", 4, 512<<20, "hvo", "off")
		p := r.pool(m2)
		r.alloc(p, 200)
		r.knob("hvo", "on")
		// Split the vmemmap PMD of the lowest folio (and so of its 63
		// neighbours) by optimising and restoring it.
		byPMD := map[uint64][]phys.Folio{}
		var order []uint64
		for _, f := range p.Folios() {
			k := r.m.VmemmapAddr(f.PFN) >> 21
			if byPMD[k] == nil {
				order = append(order, k)
			}
			byPMD[k] = append(byPMD[k], f)
		}
		if len(order) < 2 {
			t.Fatal("need folios under two vmemmap PMDs")
		}
		lo, hi := order[0], order[1]
		if lo > hi {
			lo, hi = hi, lo
		}
		split, fresh := byPMD[lo], byPMD[hi]
		if err := p.OptimizeFolio(split[0]); err != nil {
			t.Fatal(err)
		}
		if err := p.RestoreFolio(split[0]); err != nil {
			t.Fatal(err)
		}
		r.check()
		return r, p, split, fresh
	}
	for _, c := range []struct {
		name  string
		kinds []phys.Kind
		all   uint64
	}{
		// The failed folio's new head stays listed: the next folio
		// of the fresh PMD is retried too.
		{"retry fails, tables fail", []phys.Kind{phys.KindTable}, 2 + 2},
		// No new head either: the list is empty after the retry, so the
		// next folio is not retried.
		{"retry fails, tables and pages fail", []phys.Kind{phys.KindTable, phys.KindKernel}, 2 + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, p, split, fresh := setup(t)
			list := []phys.Folio{split[1], split[2], fresh[0], fresh[1], split[3]}
			r.m.Reset()
			r.touch()
			r.fail(phys.FailPolicy{After: 1, Kinds: c.kinds})
			if err := p.OptimizeFolios(list); err != nil {
				t.Fatal(err)
			}
			r.fail(phys.FailPolicy{})
			if all, kern := r.flushes(); all != c.all || kern != 0 {
				t.Errorf("flushes: all %d kernel %d, want %d and 0", all, kern, c.all)
			}
			for i, f := range list {
				if want := i != 2 && i != 3; p.Optimized(f) != want {
					t.Errorf("list[%d]: optimised %v, want %v", i, p.Optimized(f), want)
				}
			}
			r.check()
		})
	}
	t.Run("retry succeeds on the freed pages", func(t *testing.T) {
		r, p, split, fresh := setup(t)
		list := []phys.Folio{split[1], split[2], fresh[0], fresh[1]}
		hog := r.hog()
		r.m.Reset()
		r.touch()
		if err := p.OptimizeFolios(list); err != nil {
			t.Fatal(err)
		}
		// 2 + the retry, and the range flush of the split phase 2 did.
		if all, kern := r.flushes(); all != 3 || kern != 1 {
			t.Errorf("flushes: all %d kernel %d, want 3 and 1", all, kern)
		}
		for i, f := range list {
			if !p.Optimized(f) {
				t.Errorf("list[%d] not optimised", i)
			}
		}
		if r.count(cost.VmemmapSplits) != 1 {
			t.Errorf("splits %d, want 1", r.count(cost.VmemmapSplits))
		}
		r.check()
		r.unhog(hog)
		r.check()
	})
}

// TestENOMEMUnbatched: before 6.7 a folio whose split fails stays
// unoptimised, and the next folio of the batch tries again.
func TestENOMEMUnbatched(t *testing.T) {
	r := newRig(t, "x86_64", 4, 1<<30, "hvo", "on", "hvo_batch", "off")
	p := r.pool(m2)
	r.touch()
	r.fail(phys.FailPolicy{Nth: 1, Kinds: []phys.Kind{phys.KindTable}})
	r.alloc(p, 5)
	r.fail(phys.FailPolicy{})
	if got := optimized(p); got != 4 {
		t.Fatalf("optimised %d, want 4 (the first folio's split failed)", got)
	}
	// 4 remaps and the one split that worked.
	if all, kern := r.flushes(); all != 0 || kern != 5 {
		t.Errorf("flushes: all %d kernel %d, want 0 and 5", all, kern)
	}
	r.check()
}

// TestENOMEMRollback1G: a 1 GiB folio's vmemmap spans 8 PMDs; when the
// split of the second fails after the first PMD's PTEs were remapped,
// the remap is undone (the pages go back in, copied from the head) and
// flushed, the folio stays unoptimised with its new head, and nothing
// leaks.
func TestENOMEMRollback1G(t *testing.T) {
	r := newRig(t, "x86_64", 4, 2<<30, "hvo", "on", "hvo_batch", "off")
	p := r.pool(g1)
	r.touch()
	kf0 := r.m.KernelFrames()
	r.fail(phys.FailPolicy{Nth: 2, Kinds: []phys.Kind{phys.KindTable}})
	r.alloc(p, 1)
	r.fail(phys.FailPolicy{})
	f := p.Folios()[0]
	if p.Optimized(f) {
		t.Fatal("folio optimised despite the failed split")
	}
	// The first PMD's split flush (a full one: 512 pages) and the
	// rollback's flush of the 512 PTEs remapped.
	if all, kern := r.flushes(); all != 0 || kern != 2 {
		t.Errorf("flushes: all %d kernel %d, want 0 and 2", all, kern)
	}
	if r.count(cost.VmemmapSplits) != 1 || r.count(cost.VmemmapPagesFreed) != 0 {
		t.Errorf("splits %d, pages freed %d", r.count(cost.VmemmapSplits), r.count(cost.VmemmapPagesFreed))
	}
	if r.m.KernelFrames() != kf0 {
		t.Errorf("kernel frames %d, want %d (new head in, old head out)", r.m.KernelFrames(), kf0)
	}
	r.check()
	// With memory back, a retry optimises it.
	if err := p.OptimizeFolio(f); err != nil {
		t.Fatal(err)
	}
	r.check()
	if !p.Optimized(f) || r.count(cost.VmemmapPagesFreed) != 4095 {
		t.Fatalf("retry: optimised %v, pages freed %d", p.Optimized(f), r.count(cost.VmemmapPagesFreed))
	}
}

// TestENOMEMRestore: vmemmap restore allocates every page first; when
// that fails the folio cannot be freed and stays in the pool, as Linux
// makes it a surplus page. The batched free frees what it restored and
// retries, so a single failure costs nothing in the end.
func TestENOMEMRestore(t *testing.T) {
	const n = 4
	cases := []struct {
		name      string
		batch     string
		policy    phys.FailPolicy
		wantFreed int
		wantAll   uint64
		wantKern  uint64
	}{
		{"batched, every allocation fails", "on", phys.FailPolicy{After: 1, Kinds: []phys.Kind{phys.KindKernel}}, 0, 0, 0},
		{"batched, fails from the second folio on", "on", phys.FailPolicy{After: 8, Kinds: []phys.Kind{phys.KindKernel}}, 1, 1, 0},
		{"batched, one failure retried", "on", phys.FailPolicy{Nth: 8, Kinds: []phys.Kind{phys.KindKernel}}, n, 2, 0},
		{"unbatched, every allocation fails", "off", phys.FailPolicy{After: 1, Kinds: []phys.Kind{phys.KindKernel}}, 0, 0, 0},
		{"unbatched, one failure", "off", phys.FailPolicy{Nth: 8, Kinds: []phys.Kind{phys.KindKernel}}, n - 1, 0, n - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, "x86_64", 4, 1<<30, "hvo", "on", "hvo_batch", c.batch)
			p := r.pool(m2)
			r.alloc(p, n)
			r.touch()
			r.m.Reset()
			r.fail(c.policy)
			freed, err := p.Free(n)
			r.fail(phys.FailPolicy{})
			if freed != c.wantFreed || (freed < n) != errors.Is(err, ENOMEM) {
				t.Fatalf("free: %d %v, want %d", freed, err, c.wantFreed)
			}
			if p.NrHugePages() != n-c.wantFreed || optimized(p) != n-c.wantFreed {
				t.Errorf("pool %d (optimised %d), want %d", p.NrHugePages(), optimized(p), n-c.wantFreed)
			}
			if all, kern := r.flushes(); all != c.wantAll || kern != c.wantKern {
				t.Errorf("flushes: all %d kernel %d, want %d and %d", all, kern, c.wantAll, c.wantKern)
			}
			r.check()
			if _, err := p.Free(p.NrHugePages()); p.NrHugePages() > 0 && err != nil {
				t.Fatal(err)
			}
			r.check()
		})
	}
}
