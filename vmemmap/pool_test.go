package vmemmap

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// TestOptimizableSize: hugetlb_vmemmap_optimizable_size as
// Documentation/mm/vmemmap_dedup.rst gives it: with 64-byte struct pages
// a PMD-size folio keeps 1 of 8 vmemmap pages and a PUD-size folio 1 of
// PAGE_SIZE/8... every size whose vmemmap fits in one page (arm64-64k
// with 2 MiB) gives nothing, and neither does a struct page whose size
// is not a power of two.
func TestOptimizableSize(t *testing.T) {
	cases := []struct {
		arch       string
		size       uint64
		structPage uint64 // 0: the arch's
		vmemmap    uint64 // vmemmap pages per folio (0: less than one)
		freed      uint64
	}{
		{"x86_64", 2 << 20, 0, 8, 7},
		{"x86_64", 1 << 30, 0, 4096, 4095},
		{"arm64", 64 << 10, 0, 0, 0},
		{"arm64", 2 << 20, 0, 8, 7},
		{"arm64", 32 << 20, 0, 128, 127},
		{"arm64", 1 << 30, 0, 4096, 4095},
		{"arm64-16k", 2 << 20, 0, 0, 0},
		{"arm64-16k", 32 << 20, 0, 8, 7},
		{"arm64-64k", 2 << 20, 0, 0, 0},
		{"arm64-64k", 512 << 20, 0, 8, 7},
		{"x86_64", 2 << 20, 56, 7, 0},
	}
	for _, c := range cases {
		t.Run(c.arch+"/"+SizeName(c.size), func(t *testing.T) {
			a, err := archs.ByName(c.arch)
			if err != nil {
				t.Fatal(err)
			}
			if c.structPage != 0 {
				a.Caps.StructPageSize = c.structPage
			}
			m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 256 << 20})
			if err != nil {
				t.Fatal(err)
			}
			p, err := Of(m).Pool(c.size)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.VmemmapSize() / a.PageSize(); got != c.vmemmap {
				t.Errorf("vmemmap pages %d, want %d", got, c.vmemmap)
			}
			if got := p.OptimizablePages(); got != c.freed {
				t.Errorf("optimizable pages %d, want %d", got, c.freed)
			}
		})
	}
}

// TestPoolBadInput: sizes the arch lacks, counts below one, freeing more
// than the pool holds and foreign folios are refused with EINVAL and
// change nothing.
func TestPoolBadInput(t *testing.T) {
	r := newRig(t, "x86_64", 2, 1<<30, "hvo", "on")
	for _, size := range []uint64{3 << 20, 4 << 10, 0} {
		if _, err := r.h.Pool(size); !errors.Is(err, EINVAL) {
			t.Errorf("pool of %d: %v", size, err)
		}
	}
	p := r.pool(m2)
	r.alloc(p, 3)
	before := r.state()
	fs := p.Folios()
	top := fs[0].PFN
	for _, f := range fs {
		top = max(top, f.PFN)
	}
	foreign := phys.Folio{PFN: top + 512, Order: 9}
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"alloc 0", func() error { _, err := p.Alloc(0); return err }},
		{"alloc -1", func() error { _, err := p.Alloc(-1); return err }},
		{"free 0", func() error { _, err := p.Free(0); return err }},
		{"free more than the pool", func() error { _, err := p.Free(4); return err }},
		{"optimize a foreign folio", func() error { return p.OptimizeFolio(foreign) }},
		{"restore a foreign folio", func() error { return p.RestoreFolio(foreign) }},
		{"optimize a list with a folio twice", func() error { return p.OptimizeFolios([]phys.Folio{fs[0], fs[0]}) }},
		{"restore a list with a foreign folio", func() error { _, err := p.RestoreFolios([]phys.Folio{fs[1], foreign}); return err }},
		{"a folio of the wrong order", func() error { return p.OptimizeFolio(phys.Folio{PFN: fs[0].PFN, Order: 0}) }},
	} {
		if err := c.do(); !errors.Is(err, EINVAL) {
			t.Errorf("%s: %v, want EINVAL", c.name, err)
		}
	}
	if after := r.state(); after != before {
		t.Fatalf("refused calls changed the model:\n%+v\n%+v", before, after)
	}
	r.check()
	um := newRig(t, "um", 1, 256<<20)
	if _, err := um.h.Pool(m2); !errors.Is(err, EINVAL) {
		t.Errorf("UML has no hugetlb pages, got %v", err)
	}
}

// TestPoolAllocFree: the pool grows and shrinks by batches, holds a
// reference on each folio (Check balances it), hands folios back from
// the free list's head, and memory returns whole.
func TestPoolAllocFree(t *testing.T) {
	for _, batch := range []string{"on", "off"} {
		t.Run("hvo_batch="+batch, func(t *testing.T) {
			r := newRig(t, "x86_64", 2, 1<<30, "hvo_batch", batch)
			p := r.pool(m2)
			free0 := r.m.Memory().FreeFrames()
			r.alloc(p, 5)
			r.check()
			if p.NrHugePages() != 5 || r.m.Memory().FreeFrames() != free0-5*512 {
				t.Fatalf("pool %d, free %d", p.NrHugePages(), r.m.Memory().FreeFrames())
			}
			for _, f := range p.Folios() {
				if r.m.Memory().Refcount(f) != 1 || !r.m.Memory().Test(f, phys.FlagHugeTLB) || p.Optimized(f) {
					t.Fatalf("folio %#x: ref %d", f.PFN, r.m.Memory().Refcount(f))
				}
			}
			if got := r.count(cost.StructPageInits); got != 5*512 {
				t.Fatalf("struct_page_inits %d, want %d", got, 5*512)
			}
			head := p.Folios()[0]
			n, err := p.Free(2)
			if err != nil || n != 2 || p.NrHugePages() != 3 {
				t.Fatalf("free 2: %d %v, pool %d", n, err, p.NrHugePages())
			}
			for _, f := range p.Folios() {
				if f == head {
					t.Fatal("Free did not take the free list's head")
				}
			}
			r.check()
			if _, err := p.Free(3); err != nil {
				t.Fatal(err)
			}
			if r.m.Memory().FreeFrames() != free0 {
				t.Fatalf("free frames %d, want %d", r.m.Memory().FreeFrames(), free0)
			}
			r.check()
		})
	}
}

// TestSavings: HVO frees exactly the optimizable vmemmap pages of every
// folio (7 per 2 MiB, 4095 per 1 GiB with 4 KiB pages), costs one PTE
// table per vmemmap PMD split, and restoring gives every page back while
// the split stays.
func TestSavings(t *testing.T) {
	cases := []struct {
		size uint64
		n    int
		mem  uint64
	}{
		{m2, 70, 1 << 30},
		{g1, 2, 4 << 30},
	}
	for _, c := range cases {
		for _, batch := range []string{"on", "off"} {
			t.Run(SizeName(c.size)+"/hvo_batch="+batch, func(t *testing.T) {
				r := newRig(t, "x86_64", 2, c.mem, "hvo", "on", "hvo_batch", batch)
				p := r.pool(c.size)
				mem := r.m.Memory()
				free0, kf0, tables0 := mem.FreeFrames(), r.m.KernelFrames(), r.m.Kernel().PageTable().Tables()
				r.alloc(p, c.n)
				r.check()
				opt := p.OptimizablePages()
				nr := uint64(1) << p.Order()
				splits := r.vmemmapPMDs(p, p.Folios())
				if got := r.count(cost.VmemmapSplits); got != splits {
					t.Errorf("splits %d, want %d", got, splits)
				}
				if got := r.count(cost.VmemmapPagesFreed); got != uint64(c.n)*opt {
					t.Errorf("vmemmap_pages_freed %d, want %d", got, uint64(c.n)*opt)
				}
				if got, want := mem.FreeFrames(), free0-uint64(c.n)*nr+uint64(c.n)*opt-splits; got != want {
					t.Errorf("free frames %d, want %d", got, want)
				}
				if got, want := r.m.KernelFrames(), kf0-uint64(c.n)*opt; got != want {
					t.Errorf("kernel frames %d, want %d", got, want)
				}
				if got := r.m.Kernel().PageTable().Tables(); got != tables0+int(splits) {
					t.Errorf("tables %d, want %d", got, tables0+int(splits))
				}
				for _, f := range p.Folios() {
					if !p.Optimized(f) {
						t.Errorf("folio %#x not optimised", f.PFN)
					}
				}
				if _, err := p.Free(c.n); err != nil {
					t.Fatal(err)
				}
				r.check()
				if got := r.count(cost.VmemmapPagesRestored); got != uint64(c.n)*opt {
					t.Errorf("vmemmap_pages_restored %d, want %d", got, uint64(c.n)*opt)
				}
				if got, want := mem.FreeFrames(), free0-splits; got != want {
					t.Errorf("after free: free frames %d, want %d (the split tables stay)", got, want)
				}
				if r.m.KernelFrames() != kf0 {
					t.Errorf("after free: kernel frames %d, want %d", r.m.KernelFrames(), kf0)
				}
				// Never merged back: a second round splits nothing.
				r.alloc(p, c.n)
				if got := r.count(cost.VmemmapSplits); got != splits {
					t.Errorf("second round split again: %d", got)
				}
				r.check()
			})
		}
	}
}

// TestSplitPMDEntries: the split replaces the vmemmap PMD leaf by a table
// of 512 PAGE_KERNEL PTEs mapping the same frames, each of which can then
// be freed on its own.
func TestSplitPMDEntries(t *testing.T) {
	r := newRig(t, "x86_64", 1, 1<<30, "hvo", "on")
	p := r.pool(m2)
	r.alloc(p, 1)
	f := p.Folios()[0]
	reuse, _ := p.vmemmapRange(f)
	pt := r.m.Kernel().PageTable()
	fm := pt.Format()
	base := reuse &^ (m2 - 1)
	for i := uint64(0); i < 512; i++ {
		va := base + i*4096
		tr, ok := pt.Lookup(va)
		if !ok || tr.Level != pgtable.PTE {
			t.Fatalf("%#x: %+v", va, tr)
		}
		if va >= reuse && va < reuse+p.VmemmapSize() {
			continue
		}
		if tr.Entry != fm.MkKernel(tr.PFN, true) {
			t.Fatalf("%#x: entry %#x, want PAGE_KERNEL %#x", va, tr.Entry, fm.MkKernel(tr.PFN, true))
		}
		if r.m.Memory().FolioOf(tr.PFN).Order != 0 {
			t.Fatalf("%#x: frame %#x still part of a block", va, tr.PFN)
		}
	}
	head, _ := pt.Lookup(reuse)
	if head.Entry != fm.MkKernel(head.PFN, true) {
		t.Fatalf("head entry %#x, want PAGE_KERNEL", head.Entry)
	}
	for va := reuse + 4096; va < reuse+p.VmemmapSize(); va += 4096 {
		tr, _ := pt.Lookup(va)
		if tr.Entry != fm.MkKernel(head.PFN, false) {
			t.Fatalf("tail %#x: entry %#x, want PAGE_KERNEL_RO of the head %#x", va, tr.Entry, fm.MkKernel(head.PFN, false))
		}
	}
}

// TestFlushCounts (F12): the batched flow flushes with flush_tlb_all
// exactly twice per allocation batch and once per free batch that
// restored something, whatever the number of folios; the unbatched flow
// flushes the kernel range once per folio remapped or restored, plus
// once per vmemmap PMD it splits.
func TestFlushCounts(t *testing.T) {
	for _, c := range []struct {
		size uint64
		n    int
		mem  uint64
	}{
		{m2, 1, 1 << 30},
		{m2, 100, 1 << 30},
		{g1, 2, 4 << 30},
	} {
		for _, batch := range []bool{true, false} {
			name := SizeName(c.size) + "/batched"
			if !batch {
				name = SizeName(c.size) + "/unbatched"
			}
			t.Run(name, func(t *testing.T) {
				r := newRig(t, "x86_64", 4, c.mem, "hvo", "on", "hvo_batch", map[bool]string{true: "on", false: "off"}[batch])
				p := r.pool(c.size)
				r.m.Reset()
				r.alloc(p, c.n)
				splits := r.vmemmapPMDs(p, p.Folios())
				all, kern := r.count(cost.TLBFlushAll), r.count(cost.TLBFlushKernel)
				wantAll, wantKern := uint64(2), uint64(0)
				if !batch {
					wantAll, wantKern = 0, uint64(c.n)+splits
				}
				if all != wantAll || kern != wantKern {
					t.Errorf("alloc: flush_tlb_all %d flush_tlb_kernel_range %d, want %d and %d", all, kern, wantAll, wantKern)
				}
				r.check()
				r.m.Reset()
				if _, err := p.Free(c.n); err != nil {
					t.Fatal(err)
				}
				all, kern = r.count(cost.TLBFlushAll), r.count(cost.TLBFlushKernel)
				wantAll, wantKern = 1, 0
				if !batch {
					wantAll, wantKern = 0, uint64(c.n)
				}
				if all != wantAll || kern != wantKern {
					t.Errorf("free: flush_tlb_all %d flush_tlb_kernel_range %d, want %d and %d", all, kern, wantAll, wantKern)
				}
				r.check()
			})
		}
	}
}

// TestFlushCountsHVOOff: with HVO compiled in but off (the default),
// the batch still calls flush_tlb_all twice (every folio counts in
// nr_to_optimize), but a batch left empty by a failed first allocation
// flushes once (Linux 6.14 on: nr_to_optimize == 0 jumps to the last
// flush); the unbatched flow and restore flush nothing; an arch without
// HVO flushes nothing.
func TestFlushCountsHVOOff(t *testing.T) {
	for _, c := range []struct {
		arch, batch string
		fail        bool
		want        uint64
	}{
		{"x86_64", "on", false, 2},
		{"x86_64", "on", true, 1},
		{"x86_64", "off", false, 0},
		{"s390x", "on", false, 0},
	} {
		t.Run(c.arch+"/hvo_batch="+c.batch, func(t *testing.T) {
			r := newRig(t, c.arch, 2, 1<<30, "hvo_batch", c.batch)
			p := r.pool(r.m.Arch().Caps.HugeSizes[0])
			if c.fail {
				r.m.Memory().SetFailPolicy(phys.FailPolicy{After: 1, Kinds: []phys.Kind{phys.KindFolio}})
				if n, err := p.Alloc(3); n != 0 || !errors.Is(err, ENOMEM) {
					t.Fatalf("alloc under failure: %d %v", n, err)
				}
				r.m.Memory().SetFailPolicy(phys.FailPolicy{})
			} else {
				r.alloc(p, 3)
			}
			if got := r.count(cost.TLBFlushAll) + r.count(cost.TLBFlushKernel); got != c.want {
				t.Errorf("flushes %d, want %d", got, c.want)
			}
			if r.count(cost.VmemmapSplits)+r.count(cost.VmemmapPagesFreed) != 0 {
				t.Error("HVO off still optimised")
			}
			r.check()
		})
	}
}

// TestNothingToOptimize: arm64 with 64 KiB pages and 2 MiB folios has
// nothing to optimise: no split, no page freed, no folio flagged; the
// batch still flushes twice, as Linux 6.7's does.
func TestNothingToOptimize(t *testing.T) {
	r := newRig(t, "arm64-64k", 2, 1<<30, "hvo", "forced")
	p := r.pool(m2)
	r.alloc(p, 16)
	if r.count(cost.VmemmapSplits) != 0 || r.count(cost.VmemmapPagesFreed) != 0 {
		t.Fatal("optimised a folio whose vmemmap fits in a page")
	}
	for _, f := range p.Folios() {
		if p.Optimized(f) {
			t.Fatal("folio flagged optimised")
		}
	}
	if r.count(cost.TLBFlushAll) != 2 {
		t.Fatalf("flush_tlb_all %d, want 2", r.count(cost.TLBFlushAll))
	}
	r.check()
}

// TestValidatorManyCPUs: with eight CPUs whose TLBs hold the vmemmap of
// every pool folio (2 MiB entries before the split, 4 KiB after), the
// validator finds no stale kernel entry after any step of either flow,
// nor a stale struct page behind the tables.
func TestValidatorManyCPUs(t *testing.T) {
	for _, batch := range []string{"on", "off"} {
		t.Run("hvo_batch="+batch, func(t *testing.T) {
			r := newRig(t, "x86_64", 8, 2<<30, "hvo", "on", "hvo_batch", batch)
			p2, p1 := r.pool(m2), r.pool(g1)
			steps := []func(){
				func() { r.alloc(p2, 10) },
				func() { r.alloc(p1, 1) },
				func() { r.alloc(p2, 70) },
				func() {
					if _, err := p2.Free(35); err != nil {
						t.Fatal(err)
					}
				},
				func() { r.knob("hvo", "off"); r.alloc(p2, 5); r.knob("hvo", "on") },
				func() {
					if err := p2.OptimizeFolios(p2.Folios()); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if err := p2.RestoreFolio(p2.Folios()[3]); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if err := p2.OptimizeFolio(p2.Folios()[3]); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if n, err := p2.RestoreFolios(p2.Folios()[:20]); n != 20 || err != nil {
						t.Fatal(n, err)
					}
				},
				func() {
					if _, err := p1.Free(1); err != nil {
						t.Fatal(err)
					}
				},
				func() {
					if _, err := p2.Free(p2.NrHugePages()); err != nil {
						t.Fatal(err)
					}
				},
			}
			for i, step := range steps {
				r.touch()
				step()
				if err := r.m.Check(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if err := r.h.Check(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
		})
	}
}

// TestValidatorCatchesMissingFlush: the checks above can fail: remapping
// a folio's vmemmap without the flush leaves the CPUs' TLB entries for it
// stale, and the pages they point at must not be freed before the flush.
func TestValidatorCatchesMissingFlush(t *testing.T) {
	r := newRig(t, "x86_64", 4, 1<<30, "hvo", "off")
	p := r.pool(m2)
	r.alloc(p, 2)
	r.knob("hvo", "on")
	f := p.Folios()[0]
	if err := p.splitFolio(f); err != nil {
		t.Fatal(err)
	}
	r.h.flushTLBAll()
	r.touch()
	var pages pageList
	if err := p.optimizeFolio(f, &pages, RemapNoTLBFlush); err != nil {
		t.Fatal(err)
	}
	stale := r.m.TLB().Validate()
	if len(stale) == 0 {
		t.Fatal("no stale entry after a remap without flush")
	}
	for _, s := range stale {
		if !r.m.Memory().IsAllocated(s.Cached.PFN) {
			t.Fatalf("a TLB still maps frame %#x, already freed", s.Cached.PFN)
		}
	}
	r.h.flushTLBAll()
	r.h.freeVmemmapPageList(&pages)
	r.check()
}

// TestVerySubtleRule: in the batched flow the optimised flag is set
// before the remap, so the new head copies it. Set after the remap with
// the flush deferred, the store goes through the CPU's stale TLB entry to
// the old head frame and the head the tables map misses it.
func TestVerySubtleRule(t *testing.T) {
	for _, before := range []bool{true, false} {
		r := newRig(t, "x86_64", 2, 1<<30, "hvo", "on")
		p := r.pool(m2)
		r.knob("hvo", "off")
		r.alloc(p, 1)
		r.knob("hvo", "on")
		f := p.Folios()[0]
		if err := p.splitFolio(f); err != nil {
			t.Fatal(err)
		}
		r.h.flushTLBAll()
		var pages pageList
		reuse, end := p.vmemmapRange(f)
		if before {
			if err := r.h.setFolioFlag(f, phys.FlagVmemmapOptimized, true); err != nil {
				t.Fatal(err)
			}
		} else if _, err := r.m.KernelAccess(0, reuse, mmu.Read); err != nil { // the copy's read
			t.Fatal(err)
		}
		if err := r.h.remapFree(reuse+4096, end, reuse, &pages, RemapNoTLBFlush); err != nil {
			t.Fatal(err)
		}
		if !before {
			if err := r.h.setFolioFlag(f, phys.FlagVmemmapOptimized, true); err != nil {
				t.Fatal(err)
			}
		}
		r.h.flushTLBAll()
		r.h.freeVmemmapPageList(&pages)
		err := r.h.Check()
		if before && err != nil {
			t.Fatalf("flag set before the remap: %v", err)
		}
		if !before && err == nil {
			t.Fatal("flag set after a deferred-flush remap: the lost store went unnoticed")
		}
	}
}

// TestBatchedMatchesUnbatched: both flows leave the same model (folios,
// optimised flags, free and kernel frames, tables, split and page
// counters); only which frames and the flush costs differ.
func TestBatchedMatchesUnbatched(t *testing.T) {
	run := func(batch string) (state, uint64) {
		r := newRig(t, "x86_64", 4, 2<<30, "hvo", "on", "hvo_batch", batch)
		p2, p1 := r.pool(m2), r.pool(g1)
		r.alloc(p2, 130)
		r.alloc(p1, 1)
		if _, err := p2.Free(60); err != nil {
			t.Fatal(err)
		}
		r.alloc(p2, 20)
		r.check()
		return r.state(), r.m.SimNS()
	}
	b, bns := run("on")
	u, uns := run("off")
	if b != u {
		t.Fatalf("end states differ:\nbatched   %+v\nunbatched %+v", b, u)
	}
	if bns >= uns {
		t.Fatalf("batched %d ns, unbatched %d ns: batching saved nothing", bns, uns)
	}
}

// TestDeterminism: the same calls give the same folios, counts and
// simulated time.
func TestDeterminism(t *testing.T) {
	run := func() ([]phys.Folio, cost.Counts) {
		r := newRig(t, "x86_64", 4, 1<<30, "hvo", "on")
		p := r.pool(m2)
		r.alloc(p, 40)
		r.touch()
		if _, err := p.Free(17); err != nil {
			t.Fatal(err)
		}
		r.alloc(p, 9)
		return p.Folios(), r.m.Counts()
	}
	f1, c1 := run()
	f2, c2 := run()
	if len(f1) != len(f2) || c1 != c2 {
		t.Fatal("runs differ")
	}
	for i := range f1 {
		if f1[i] != f2[i] {
			t.Fatalf("folio %d: %#x vs %#x", i, f1[i].PFN, f2[i].PFN)
		}
	}
}

// TestArm64BreakBeforeMake: the common code stores over live vmemmap
// entries; arm64 requires break-before-make for both the block-to-table
// split and the remap's change of output address, which is why Linux
// turned HVO off on arm64 (060a2c92d1b6). The arm64 TLB policy reports
// both; BBML2 allows the split but not the remap. The TLBs stay in step
// with the tables either way: only the write rule is broken.
func TestArm64BreakBeforeMake(t *testing.T) {
	for _, bbml2 := range []string{"off", "on"} {
		t.Run("bbml2="+bbml2, func(t *testing.T) {
			r := newRig(t, "arm64", 2, 1<<30, "hvo", "forced", "bbml2", bbml2)
			p := r.pool(m2)
			r.touch()
			r.alloc(p, 2)
			if s := r.m.TLB().Validate(); len(s) != 0 {
				t.Fatalf("stale entries: %v", s)
			}
			split, remap := 0, 0
			for _, v := range r.m.TLB().Violations() {
				switch {
				case strings.Contains(v.Reason, "replaced by a table"):
					split++
				case strings.Contains(v.Reason, "output address"):
					remap++
				default:
					t.Errorf("unexpected violation %v", v)
				}
			}
			wantSplit := 1
			if bbml2 == "on" {
				wantSplit = 0
			}
			// Per folio: the head PTE to the new head and 7 tails.
			if split != wantSplit || remap != 2*8 {
				t.Fatalf("split violations %d (want %d), remap violations %d (want 16)", split, wantSplit, remap)
			}
			if err := r.h.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSavingsArm64: the savings on arm64 granules, where the arch still
// selects HVO in the model: 7 pages per 2 MiB folio with 4 KiB pages
// (vmemmap PMD leaves, split first) and 7 per 32 MiB folio with 16 KiB
// pages (vmemmap mapped by base pages: nothing to split). The only
// violations are break-before-make ones, which TestArm64BreakBeforeMake
// covers; everything else checks clean.
func TestSavingsArm64(t *testing.T) {
	for _, c := range []struct {
		arch   string
		size   uint64
		splits bool
	}{
		{"arm64", 2 << 20, true},
		{"arm64-16k", 32 << 20, false},
	} {
		t.Run(c.arch, func(t *testing.T) {
			r := newRig(t, c.arch, 2, 1<<30, "hvo", "forced")
			p := r.pool(c.size)
			free0, kf0 := r.m.Memory().FreeFrames(), r.m.KernelFrames()
			r.alloc(p, 4)
			for _, v := range r.m.TLB().Violations() {
				if !strings.Contains(v.Reason, "break-before-make") {
					t.Fatalf("violation %v", v)
				}
			}
			r.check()
			splits := r.count(cost.VmemmapSplits)
			if (splits > 0) != c.splits {
				t.Errorf("splits %d", splits)
			}
			nr := uint64(1) << p.Order()
			if got, want := r.m.Memory().FreeFrames(), free0-4*nr+4*7-splits; got != want || r.m.KernelFrames() != kf0-28 {
				t.Errorf("free frames %d (want %d), kernel frames %d (want %d)", got, want, r.m.KernelFrames(), kf0-28)
			}
			if _, err := p.Free(4); err != nil {
				t.Fatal(err)
			}
			r.m.TLB().Violations()
			r.check()
			if r.count(cost.VmemmapPagesRestored) != 28 || r.m.KernelFrames() != kf0 {
				t.Errorf("restored %d, kernel frames %d", r.count(cost.VmemmapPagesRestored), r.m.KernelFrames())
			}
		})
	}
}

// TestArm64RefusesHVO: arm64 does not select
// ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP (the split and remap would store over
// live vmemmap entries without break-before-make), so config hvo=on is
// refused on every granule; TestArm64BreakBeforeMake shows what it would
// break.
func TestArm64RefusesHVO(t *testing.T) {
	for _, name := range []string{"arm64", "arm64-16k", "arm64-64k"} {
		r := newRig(t, name, 1, 256<<20)
		if err := r.m.SetKnob("hvo", "on"); !errors.Is(err, mmu.EINVAL) {
			t.Errorf("%s: hvo=on gave %v, want EINVAL", name, err)
		}
	}
}
