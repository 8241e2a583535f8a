package contpte_test

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// fileEnv returns an env with one block-sized-folio shared file mapping of
// nr blocks at base, faults mapping one page each (fault_whole_folio off).
func fileEnv(t *testing.T, g arm64.Granule, nr int, knobs ...string) *env {
	t.Helper()
	e := newEnv(t, g, append([]string{"fault_whole_folio", "off", "file_large_folios", "on"}, knobs...)...)
	e.fileBlocks("f", nr)
	return e
}

// writePages write-faults the pages of block 0 in the order given,
// checking the machine and calling after(i, folds so far) after each.
func (e *env) writePages(order []int, after func(i int, c convertCounts)) {
	e.t.Helper()
	total := convertCounts{}
	for _, i := range order {
		d := e.delta(func() { noErr(e.t, e.mm.Write(0, e.page(base, i), uint64(i))) })
		c := converts(d)
		total.folds += c.folds
		total.unfolds += c.unfolds
		total.converts += c.converts
		e.check("write fault")
		after(i, total)
	}
}

// ascending returns 0..n-1.
func ascending(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	return o
}

// TestFoldOnlyAtLastEntry: write faults map one page each with
// set_ptes(1); only the write of a block's last entry, when every other
// entry is already there, folds (contpte_try_fold's gate). Writing the
// pages in reverse never folds: the last entry goes first, when the block
// is not complete, and later writes are not the last entry.
func TestFoldOnlyAtLastEntry(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name+"/ascending", func(t *testing.T) {
			e := fileEnv(t, g.g, 1)
			e.writePages(ascending(e.n), func(i int, c convertCounts) {
				want := convertCounts{}
				if i == e.n-1 {
					want = convertCounts{folds: 1, converts: 1}
				}
				equal(t, want, c, "after writing page %d", i)
			})
			isTrue(t, e.folded(base))
			equal(t, blockState{cont: e.n, young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
		})
		t.Run(g.name+"/descending", func(t *testing.T) {
			e := fileEnv(t, g.g, 1)
			order := ascending(e.n)
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
			e.writePages(order, func(i int, c convertCounts) {
				equal(t, convertCounts{}, c, "after writing page %d", i)
			})
			equal(t, blockState{young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base))
		})
		t.Run(g.name+"/last entry before its neighbour", func(t *testing.T) {
			e := fileEnv(t, g.g, 1)
			order := append(ascending(e.n-2), e.n-1, e.n-2)
			e.writePages(order, func(i int, c convertCounts) {
				equal(t, convertCounts{}, c, "after writing page %d", i)
			})
			// mprotect(r) then mprotect(rw) of the last page
			// rewrites it with set_pte_at: now the block folds.
			last := e.page(base, e.n-1)
			d := e.delta(func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead)) })
			equal(t, convertCounts{}, converts(d), "mprotect(r) of the last page")
			e.check("mprotect r")
			d = e.delta(func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead|mmu.ProtWrite)) })
			equal(t, convertCounts{folds: 1, converts: 1}, converts(d), "mprotect(rw) of the last page")
			e.check("mprotect rw")
			isTrue(t, e.folded(base))
		})
	}
}

// TestFoldNeedsAlignedFolio: a file mapped one page off its folios'
// alignment never folds: the last entry of a virtual block maps the first
// page of a folio, so the physical gate fails.
func TestFoldNeedsAlignedFolio(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t, g.g, "fault_whole_folio", "off")
			noErr(t, e.mm.Mmap(base, 2*e.block, mmu.ProtRead|mmu.ProtWrite,
				mmu.MapFlags{File: "f", Shared: true, Offset: e.ps, FolioSize: e.block}))
			d := e.delta(func() {
				for i := 0; i < 2*e.n; i++ {
					noErr(t, e.mm.Write(0, e.page(base, i), 1))
				}
			})
			e.check("writes")
			equal(t, convertCounts{}, converts(d))
			last := e.raw(e.page(base, e.n-1))
			mask := phys.PFN(e.n - 1)
			isTrue(t, e.f.PFN(last, pgtable.PTE)&mask == 0, "the last entry of the block maps a folio's first page")
		})
	}
}

// TestFoldNeedsOneFolio: small folios whose frames happen to be
// consecutive and aligned pass every check but the folio's: no fold.
func TestFoldNeedsOneFolio(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name, func(t *testing.T) {
			e := fileEnv(t, g.g, 1, "file_large_folios", "off")
			// Fault small anonymous pages in the same PTE table until
			// the next frame the allocator hands out is block-aligned.
			pad := base + 4*e.block
			noErr(t, e.mm.Mmap(pad, 4*e.block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
			for i := 0; i < 4*e.n; i++ {
				noErr(t, e.mm.Write(0, e.page(pad, i), 1))
				if (e.f.PFN(e.raw(e.page(pad, i)), pgtable.PTE)+1)&phys.PFN(e.n-1) == 0 {
					break
				}
			}
			d := e.delta(func() {
				for i := 0; i < e.n; i++ {
					noErr(t, e.mm.Write(0, e.page(base, i), 1))
				}
			})
			e.check("writes")
			first := e.f.PFN(e.raw(base), pgtable.PTE)
			for i := 0; i < e.n; i++ {
				pfn := e.f.PFN(e.raw(e.page(base, i)), pgtable.PTE)
				equal(t, first+phys.PFN(i), pfn, "precondition: consecutive frames (page %d)", i)
				equal(t, uint8(0), e.m.Memory().FolioOf(pfn).Order, "precondition: small folios")
			}
			equal(t, phys.PFN(0), first&phys.PFN(e.n-1), "precondition: aligned frames")
			equal(t, convertCounts{}, converts(d), "small folios never fold")
		})
	}
}

// TestLargeFolioFaultMapsContiguous: an anonymous write fault on a
// block-sized folio maps the block with set_ptes(CONT_PTES), which sets
// the contiguous bit directly: no fold, no convert, no flush.
func TestLargeFolioFaultMapsContiguous(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t, g.g)
			noErr(t, e.mm.Mmap(base, e.block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: e.block}))
			d := e.delta(func() { noErr(t, e.mm.Write(0, e.page(base, 3), 1)) })
			e.check("fault")
			equal(t, convertCounts{}, converts(d))
			equal(t, uint64(e.n), d[cost.PTESets])
			zero(t, d[cost.TLBIOps])
			isTrue(t, e.folded(base))
			// The TLB holds one contiguous entry for the block.
			te, ok := e.m.TLB().CPU(0).Probe(e.mm.TLBContext(), e.page(base, e.n-1))
			isTrue(t, ok && te.Cont && te.Size() == e.block, "cached %+v", te)
		})
	}
}

// TestMprotectUnfoldRefold is contpte.md's mprotect note: mprotect(r)
// then mprotect(rw) of the last page of a folded anonymous block unfolds
// it, then folds it again (the exclusive page is made writable at once);
// the same on a middle page leaves the block unfolded, as folding is
// tried only at a block's last entry.
func TestMprotectUnfoldRefold(t *testing.T) {
	for _, g := range granules {
		for _, tc := range []struct {
			name   string
			page   func(n int) int
			refold bool
		}{
			{"last page", func(n int) int { return n - 1 }, true},
			{"middle page", func(n int) int { return n / 2 }, false},
		} {
			t.Run(g.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, g.g)
				e.anonBlocks(1)
				a := e.page(base, tc.page(e.n))
				d := e.delta(func() { noErr(t, e.mm.Mprotect(a, e.ps, mmu.ProtRead)) })
				e.check("mprotect r")
				equal(t, convertCounts{unfolds: 1, converts: 1}, converts(d))
				equal(t, e.n-1, e.state(base).write)
				d = e.delta(func() { noErr(t, e.mm.Mprotect(a, e.ps, mmu.ProtRead|mmu.ProtWrite)) })
				e.check("mprotect rw")
				want := convertCounts{}
				if tc.refold {
					want = convertCounts{folds: 1, converts: 1}
				}
				equal(t, want, converts(d))
				equal(t, tc.refold, e.folded(base))
				equal(t, e.n, e.state(base).write)
			})
		}
	}
}

// TestADSpreadAfterConvert: a fold gives every entry the OR of the
// block's access and dirty bits, ptep_get gathers them while folded, and
// an unfold spreads them to every entry again.
func TestADSpreadAfterConvert(t *testing.T) {
	for _, g := range granules {
		for _, tc := range []struct {
			name         string
			young, dirty []int // pages made young / dirty before the fold
		}{
			{"one young, one dirty", []int{4}, []int{9}},
			{"one young only", []int{4}, nil},
			{"none", nil, nil},
		} {
			t.Run(g.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, g.g)
				e.anonBlocks(1)
				o := e.ops()
				last := e.page(base, e.n-1)
				// Unfold by write-protecting the last entry, then make
				// every entry old and clean.
				e.pt.PtepSetWrprotect(last, e.ptr(last))
				o.ClearYoungDirtyPTEs(e.pt, base, e.ptr(base), e.n, true, true)
				e.flushMM()
				e.check("set-up")
				for _, i := range tc.young {
					a := e.page(base, i)
					isTrue(t, e.pt.PtepSetAccessFlags(a, e.ptr(a), e.f.MkYoung(e.pt.PtepGet(a, e.ptr(a)), pgtable.PTE), false))
				}
				for _, i := range tc.dirty {
					a := e.page(base, i)
					isTrue(t, e.pt.PtepSetAccessFlags(a, e.ptr(a), e.f.MkDirty(e.pt.PtepGet(a, e.ptr(a)), pgtable.PTE), false))
				}
				equal(t, blockState{young: len(tc.young), dirty: len(tc.dirty), write: e.n - 1, present: e.n}, e.state(base))
				// set_pte_at of the last entry, writable, old and clean
				// like the others: it folds.
				like := e.f.SetPFN(e.raw(base), pgtable.PTE, e.f.PFN(e.raw(last), pgtable.PTE))
				d := e.delta(func() { e.pt.SetPTEAt(last, e.ptr(last), like) })
				e.check("fold")
				equal(t, convertCounts{folds: 1, converts: 1}, converts(d))
				young, dirty := 0, 0
				if len(tc.young) > 0 {
					young = e.n
				}
				if len(tc.dirty) > 0 {
					dirty = e.n
				}
				equal(t, blockState{cont: e.n, young: young, dirty: dirty, write: e.n, present: e.n}, e.state(base))
			})
		}
		t.Run(g.name+"/unfold spreads, ptep_get gathers", func(t *testing.T) {
			e := newEnv(t, g.g)
			e.anonBlocks(1)
			e.ops().ClearYoungDirtyPTEs(e.pt, base, e.ptr(base), e.n, true, true)
			e.flushMM()
			// A store through the MMU dirties (and makes young) the one
			// entry it walked; the TLB then holds the block.
			noErr(t, e.mm.Write(0, e.page(base, 2), 5))
			e.check("store")
			equal(t, blockState{cont: e.n, young: 1, dirty: 1, write: e.n, present: e.n}, e.state(base))
			a := e.page(base, 9)
			r := e.raw(a)
			isFalse(t, e.f.Dirty(r, pgtable.PTE) || e.f.Young(r, pgtable.PTE), "raw entry 9 is old and clean")
			for _, get := range []struct {
				name string
				fn   func() pgtable.Entry
			}{
				{"ptep_get", func() pgtable.Entry { return e.pt.PtepGet(a, e.ptr(a)) }},
				{"ptep_get_lockless", func() pgtable.Entry { return e.pt.PtepGetLockless(a, e.ptr(a)) }},
			} {
				var got pgtable.Entry
				d := e.delta(func() { got = get.fn() })
				isTrue(t, e.f.Dirty(got, pgtable.PTE) && e.f.Young(got, pgtable.PTE), "%s gathers the block's bits", get.name)
				isTrue(t, e.f.Cont(got, pgtable.PTE), "%s lets PTE_CONT show", get.name)
				isTrue(t, d[cost.EntryReads] >= 2 && d[cost.EntryReads] <= uint64(1+e.n), "%s reads %d entries", get.name, d[cost.EntryReads])
			}
			d := e.delta(func() { noErr(t, e.mm.Mprotect(a, e.ps, mmu.ProtRead)) })
			e.check("unfold")
			equal(t, convertCounts{unfolds: 1, converts: 1}, converts(d))
			equal(t, blockState{young: e.n, dirty: e.n, write: e.n - 1, present: e.n}, e.state(base))
		})
	}
}

// TestBatchHint: pte_batch_hint is the entries left in a valid
// contiguous entry's block, and 1 for any other entry.
func TestBatchHint(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t, g.g)
			e.anonBlocks(1)
			for i := 0; i < e.n; i++ {
				a := e.page(base, i)
				equal(t, e.n-i, e.pt.PteBatchHint(e.ptr(a), e.raw(a)), "entry %d", i)
			}
			noErr(t, e.mm.Mprotect(e.page(base, 1), e.ps, mmu.ProtRead))
			e.check("unfold")
			for i := 0; i < e.n; i++ {
				a := e.page(base, i)
				equal(t, 1, e.pt.PteBatchHint(e.ptr(a), e.raw(a)), "entry %d after the unfold", i)
			}
		})
	}
}

// TestPageFault3Shape: page_fault3's pattern (write faults one page at a
// time into large folios of a shared file mapping, then munmap) folds
// every block once with contpte on, never with it off, and maps every
// block contiguous without a convert when finish_fault maps whole folios;
// munmap clears whole blocks without unfolding.
func TestPageFault3Shape(t *testing.T) {
	const blocks = 4
	for _, g := range granules {
		for _, tc := range []struct {
			name  string
			knobs []string
			want  convertCounts
			cont  bool
		}{
			{"contpte on", []string{"fault_whole_folio", "off"}, convertCounts{folds: blocks, converts: blocks}, true},
			{"contpte off", []string{"fault_whole_folio", "off", "contpte", "off"}, convertCounts{}, false},
			{"whole folio", []string{"fault_whole_folio", "on"}, convertCounts{}, true},
		} {
			t.Run(g.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, g.g, tc.knobs...)
				for iter := 0; iter < 2; iter++ {
					e.fileBlocks("pf3", blocks)
					d := e.delta(func() {
						for i := 0; i < blocks*e.n; i++ {
							noErr(t, e.mm.Write(0, e.page(base, i), uint64(i)))
						}
					})
					e.check("faults")
					equal(t, tc.want, converts(d), "iteration %d", iter)
					for b := 0; b < blocks; b++ {
						equal(t, tc.cont, e.folded(base+uint64(b)*e.block), "block %d", b)
					}
					d = e.delta(func() { noErr(t, e.mm.Munmap(base, blocks*e.block)) })
					e.check("munmap")
					equal(t, convertCounts{}, converts(d), "munmap never unfolds whole blocks")
				}
			})
		}
	}
}

// TestNeverInitMM: init_mm keeps the generic operations, and the contpte
// Ops leave a kernel table alone.
func TestNeverInitMM(t *testing.T) {
	e := newEnv(t, granules[0].g)
	kpt := e.m.Kernel().PageTable()
	_, generic := kpt.Ops().(pgtable.GenericOps)
	isTrue(t, generic, "init_mm runs %T", kpt.Ops())
	pt, err := pgtable.New(pgtable.Config{Geometry: &e.m.Arch().Geometry, Format: e.f, Memory: e.m.Memory(), Kernel: true, Space: e.m.Arch().Kernel})
	noErr(t, err)
	pt.SetOps(e.ops())
	kbase := e.m.Arch().Kernel.Start + (1 << 40)
	p, err := pt.WalkAlloc(kbase, pgtable.PTE)
	noErr(t, err)
	pfn, err := e.m.Memory().Alloc(uint(log2(e.n)), phys.KindFolio)
	noErr(t, err)
	pt.SetPTEs(kbase, p, e.f.MkKernel(pfn, true), e.n)
	for i := 0; i < e.n; i++ {
		isFalse(t, e.f.Cont(p.Add(i).Peek(), pgtable.PTE), "kernel entry %d", i)
	}
	// set_ptes(1) of the last entry over the others: still no fold.
	last := kbase + uint64(e.n-1)*e.ps
	c := pt.Meter().Counts()
	pt.SetPTEAt(last, p.Add(e.n-1), e.f.MkKernel(pfn+phys.PFN(e.n-1), true))
	after := pt.Meter().Counts()
	d := after.Sub(&c)
	equal(t, convertCounts{}, converts(d))
}

// log2 returns log2 of a power of two.
func log2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}

// TestMprotectRWKeepsBlockClean: since Linux 6.18 arm64's
// pte_mkwrite_novma clears PTE_RDONLY only of a software-dirty entry, so
// mprotect giving write permission back to a clean page leaves it clean
// (writable through DBM). Refolding the block then ORs no dirty bit into
// it: a clean block stays clean until a store. Before 6.18 mkwrite made
// the entry hardware-dirty and the refold spread dirty to every entry.
func TestMprotectRWKeepsBlockClean(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t, g.g)
			e.anonBlocks(1)
			e.ops().ClearYoungDirtyPTEs(e.pt, base, e.ptr(base), e.n, false, true)
			e.flushMM()
			e.check("clean")
			equal(t, blockState{cont: e.n, young: e.n, write: e.n, present: e.n}, e.state(base))
			last := e.page(base, e.n-1)
			d := e.delta(func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead)) })
			e.check("mprotect r")
			equal(t, convertCounts{unfolds: 1, converts: 1}, converts(d))
			d = e.delta(func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead|mmu.ProtWrite)) })
			e.check("mprotect rw")
			equal(t, convertCounts{folds: 1, converts: 1}, converts(d), "the writable entry matches the others again")
			equal(t, blockState{cont: e.n, young: e.n, write: e.n, present: e.n}, e.state(base), "no entry dirty after the refold")
			noErr(t, e.mm.Write(2, last, 9))
			e.check("store")
			got := e.pt.PtepGet(last, e.ptr(last))
			isTrue(t, e.f.Dirty(got, pgtable.PTE), "a store dirties the block through DBM")
		})
	}
}

// TestPtepGetReads: ptep_get and ptep_get_lockless of a folded entry read
// the target, then gather with Linux 6.16's loop: up to the first dirty or
// young entry; after a dirty one, from that same entry (read again) to the
// first young one; after a young one, from the next to the first dirty
// one. The count is the loop's, so a model that scans differently fails.
func TestPtepGetReads(t *testing.T) {
	for _, g := range granules {
		for _, tc := range []struct {
			name         string
			young, dirty []int
			// reads of the gathering loop, from CONT_PTES n.
			reads             func(n int) int
			wantYoung, wantDy bool
		}{
			{"old and clean", nil, nil, func(n int) int { return n }, false, false},
			{"entry 3 young and dirty", []int{3}, []int{3}, func(n int) int { return 3 + 2 }, true, true},
			{"young at 3, dirty at 7", []int{3}, []int{7}, func(n int) int { return 7 + 1 }, true, true},
			{"dirty at 3, young at 7", []int{7}, []int{3}, func(n int) int { return 7 + 2 }, true, true},
			{"dirty at 3 only", nil, []int{3}, func(n int) int { return n + 1 }, false, true},
			{"young at 3 only", []int{3}, nil, func(n int) int { return n }, true, false},
		} {
			t.Run(g.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, g.g)
				e.anonBlocks(1)
				e.ops().ClearYoungDirtyPTEs(e.pt, base, e.ptr(base), e.n, true, true)
				e.flushMM()
				for _, i := range tc.young {
					a := e.page(base, i)
					e.pt.RawSet(a, e.ptr(a), e.f.MkYoung(e.raw(a), pgtable.PTE))
				}
				for _, i := range tc.dirty {
					a := e.page(base, i)
					e.pt.RawSet(a, e.ptr(a), e.f.MkDirty(e.raw(a), pgtable.PTE))
				}
				e.check("set-up")
				a := e.page(base, e.n-2)
				for _, get := range []struct {
					name string
					fn   func() pgtable.Entry
				}{
					{"ptep_get", func() pgtable.Entry { return e.pt.PtepGet(a, e.ptr(a)) }},
					{"ptep_get_lockless", func() pgtable.Entry { return e.pt.PtepGetLockless(a, e.ptr(a)) }},
				} {
					var got pgtable.Entry
					d := e.delta(func() { got = get.fn() })
					equal(t, uint64(1+tc.reads(e.n)), d[cost.EntryReads], "%s entry reads", get.name)
					equal(t, tc.wantYoung, e.f.Young(got, pgtable.PTE), "%s young", get.name)
					equal(t, tc.wantDy, e.f.Dirty(got, pgtable.PTE), "%s dirty", get.name)
					isTrue(t, e.f.Cont(got, pgtable.PTE), "%s lets PTE_CONT show", get.name)
				}
				e.check("gets")
			})
		}
	}
}

// TestNoFoldSpecial: contpte_try_fold's gate refuses a special entry
// (special mappings have no folio to check): a block rewritten entry by
// entry with set_pte_at, the frames consecutive, aligned and of one
// folio, never folds when the entries are special, and folds at the last
// entry when they are not.
func TestNoFoldSpecial(t *testing.T) {
	for _, g := range granules {
		for _, special := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/special=%v", g.name, special), func(t *testing.T) {
				e := newEnv(t, g.g)
				e.anonBlocks(1)
				e.snap()
				// Take the block out behind mmu's back (one unfold),
				// then write it back one entry at a time.
				for i := 0; i < e.n; i++ {
					a := e.page(base, i)
					e.pt.PtepGetAndClear(a, e.ptr(a))
				}
				d := e.delta(func() {
					for i := 0; i < e.n; i++ {
						a := e.page(base, i)
						v := e.f.MkNonCont(e.saved[a])
						if special {
							v = e.f.MkSpecial(v, pgtable.PTE)
						}
						e.pt.SetPTEAt(a, e.ptr(a), v)
					}
				})
				if special {
					equal(t, convertCounts{}, converts(d), "special entries never fold")
					isFalse(t, e.folded(base))
					// Put the normal entries back for the checker.
					for i := 0; i < e.n; i++ {
						a := e.page(base, i)
						e.pt.SetPTEAt(a, e.ptr(a), e.f.MkNonCont(e.saved[a]))
					}
				} else {
					equal(t, convertCounts{folds: 1, converts: 1}, converts(d), "the last entry folds the block")
				}
				isTrue(t, e.folded(base), "normal entries fold")
				e.flushMM()
				e.check("restored")
			})
		}
	}
}
