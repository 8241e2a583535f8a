package mremap

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// TestTableMoveKnobs: only arches that select HAVE_MOVE_PMD/PUD (x86-64
// and arm64) may switch table moves on; everywhere they can be switched
// off.
func TestTableMoveKnobs(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			a, _ := archs.ByName(name)
			m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			k := m.Knobs()
			if k.MovePMD != a.Caps.HaveMovePMD || k.MovePUD != a.Caps.HaveMovePUD {
				t.Fatalf("defaults move_pmd=%v move_pud=%v, arch selects %v %v", k.MovePMD, k.MovePUD, a.Caps.HaveMovePMD, a.Caps.HaveMovePUD)
			}
			for _, knob := range []string{"move_pmd", "move_pud"} {
				if err := m.SetKnob(knob, "off"); err != nil {
					t.Fatalf("%s=off: %v", knob, err)
				}
				err := m.SetKnob(knob, "on")
				if a.Caps.HaveMovePMD != (err == nil) {
					t.Fatalf("%s=on: %v", knob, err)
				}
				if err != nil {
					wantErr(t, err, mmu.EINVAL)
				}
			}
		})
	}
}

// TestSparcDcacheFlush: sparc64's move_pte flushes a page from the
// virtually indexed D-cache when the move changes virtual address bit 13
// (an odd number of 8 KiB pages), once per present page, and never when
// the colour is kept.
func TestSparcDcacheFlush(t *testing.T) {
	for _, c := range []struct {
		name    string
		shift   uint64 // in pages
		flushes bool
	}{{"colour kept", 2, false}, {"colour changed", 1, true}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "sparc64")
			size := 2 * e.pmd
			e.mmap(e.src, size, mmu.MapFlags{})
			e.fill(e.src, size, 5*e.ps)
			present := (size + 5*e.ps - 1) / (5 * e.ps)
			e.reset()
			e.mustMremap(e.src, size, size, MayMove|Fixed, e.dst+c.shift*e.ps)
			want := uint64(0)
			if c.flushes {
				want = present
			}
			e.wantCounts(map[cost.Event]uint64{cost.DcacheFlushes: want, cost.PTEMoves: present, cost.PMDMoves: 0})
		})
	}
}

// TestTwoLevelUML: um32 has no PMD level of its own (2 levels), so even a
// move of whole, aligned 4 MiB PGD entries goes PTE by PTE, and table
// moves cannot be switched on.
func TestTwoLevelUML(t *testing.T) {
	e := newEnv(t, "um32")
	if n := len(e.a.Geometry.Tables); n != 2 || e.pmd != 4<<20 {
		t.Fatalf("um32 geometry: %d levels, pmd size %#x", n, e.pmd)
	}
	wantErr(t, e.m.SetKnob("move_pmd", "on"), mmu.EINVAL)
	e.mmap(e.src, 2*e.pmd, mmu.MapFlags{})
	e.fill(e.src, 2*e.pmd, 16*e.ps)
	e.reset()
	e.mustMremap(e.src, 2*e.pmd, 2*e.pmd, MayMove|Fixed, e.dst)
	e.wantCounts(map[cost.Event]uint64{cost.PTEMoves: 2 * e.pmd / (16 * e.ps), cost.PMDMoves: 0, cost.PUDMoves: 0})
}

// TestS390NoLiveClear: s390 never clears a live entry with a plain store;
// it does not select HAVE_MOVE_PMD, moves PTEs with invalidating
// exchanges and huge PMDs with pmdp_huge_get_and_clear, and the checker
// (which records every plain store over a live entry on s390) stays clean.
func TestS390NoLiveClear(t *testing.T) {
	e := newEnv(t, "s390x")
	wantErr(t, e.m.SetKnob("move_pmd", "on"), mmu.EINVAL)
	size := 4 * e.pmd
	e.mmap(e.src, size, mmu.MapFlags{})
	e.fill(e.src, size, e.ps)
	e.mmap(e.src+8*e.pmd, 2*e.pmd, mmu.MapFlags{FolioSize: e.pmd})
	e.fill(e.src+8*e.pmd, 2*e.pmd, e.pmd)
	e.reset()
	e.mustMremap(e.src, size, size, MayMove|Fixed, e.dst)
	e.mustMremap(e.src+8*e.pmd, 2*e.pmd, 2*e.pmd, MayMove|Fixed, e.dst+8*e.pmd)
	e.wantCounts(map[cost.Event]uint64{cost.PTEMoves: size / e.ps, cost.PMDMoves: 0, cost.HugePMDMoves: 2})
	e.wantContent(e.dst, size, e.ps, func(a uint64) uint64 { return a - e.dst + e.src })
	e.wantContent(e.dst+8*e.pmd, 2*e.pmd, e.pmd, func(a uint64) uint64 { return a - e.dst + e.src })
}

// TestContPTEBatch: on arm64 a folio mapped with the contiguous bit moves
// a block of 16 PTEs at a time (mremap_folio_pte_batch), and the moved
// block is contiguous again at the destination. (TestDifferential checks
// that the batched moves end as the table moves do.)
func TestContPTEBatch(t *testing.T) {
	e := newEnv(t, "arm64", "move_pmd=off", "move_pud=off")
	e.mmap(e.src, e.pmd, mmu.MapFlags{FolioSize: 16 * e.ps})
	e.fill(e.src, e.pmd, 16*e.ps)
	tr, _ := e.mm.Translate(e.src)
	if !e.a.Format.Cont(tr.Entry, pgtable.PTE) {
		t.Fatal("the 64 KiB folios are not mapped contiguous")
	}
	e.reset()
	e.mustMremap(e.src, e.pmd, e.pmd, MayMove|Fixed, e.dst)
	// Whole blocks are cleared and set in one go: no block is unfolded
	// at the source or folded again at the destination.
	e.wantCounts(map[cost.Event]uint64{cost.PTEMoves: 512, cost.ContpteConverts: 0, cost.ContpteUnfolds: 0})
	tr, _ = e.mm.Translate(e.dst)
	if !e.a.Format.Cont(tr.Entry, pgtable.PTE) {
		t.Fatal("the moved block is not contiguous")
	}
}

// TestHugetlbMove moves a hugetlb mapping (built by hand: the model has no
// hugetlb mmap yet): move_hugetlb_page_tables moves each huge leaf with an
// invalidating get-and-clear and flushes the old range once.
func TestHugetlbMove(t *testing.T) {
	e := newEnv(t, "x86_64")
	pmd := e.pmd
	mem := e.m.Memory()
	e.mm.MmapWriteLock()
	if err := e.mm.InsertVMA(&mmu.VMA{Start: e.src, End: e.src + 2*pmd,
		Flags: mmu.VMRead | mmu.VMWrite | mmu.VMMayRead | mmu.VMMayWrite | mmu.VMHugeTLB, HugeShift: 21}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 2; i++ {
		pfn, err := mem.Alloc(9, phys.KindFolio)
		if err != nil {
			t.Fatal(err)
		}
		f := phys.Folio{PFN: pfn, Order: 9}
		mem.SetFlags(f, phys.FlagHugeTLB)
		mem.SetContent(pfn, 100+i)
		e.mm.AddEntireRmap(f, false, false)
		e.mm.AddRSS(mmu.MMFilePages, 512)
		if err := e.mm.PageTable().Map(e.src+i*pmd, pmd, pfn, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared, Huge: true}); err != nil {
			t.Fatal(err)
		}
	}
	e.mm.MmapWriteUnlock()
	e.check()
	e.reset()
	// Unaligned to the huge page size: EINVAL; aligned: the leaves move.
	_, err := e.mremap(e.src, 2*pmd, 2*pmd, MayMove|Fixed, e.dst+e.ps)
	wantErr(t, err, mmu.EINVAL)
	e.mustMremap(e.src, 2*pmd, 2*pmd, MayMove|Fixed, e.dst)
	for i := uint64(0); i < 2; i++ {
		tr, ok := e.mm.Translate(e.dst + i*pmd)
		if !ok || tr.Level != pgtable.PMD || mem.Content(tr.PFN) != 100+i {
			t.Fatalf("huge page %d after the move: %+v %v", i, tr, ok)
		}
	}
	e.wantUnmapped(e.src, 2*pmd)
	// One flush for the move, one for the unmap that frees the old PMD table.
	e.wantCounts(map[cost.Event]uint64{cost.PTEMoves: 0, cost.PMDMoves: 0, cost.TLBFlushRange: 1 + 1})
}

// TestHugetlbMoveRules covers move_hugetlb_page_tables' rules beyond the
// plain move: the old range is flushed once, whole, whatever moved (an
// empty huge page or an empty mapping included), and a VMA armed for
// uffd-wp without remap events loses the bit on the moved leaves.
func TestHugetlbMoveRules(t *testing.T) {
	cases := []struct {
		name   string
		mapped []bool // which of the two huge pages are mapped
		uffd   bool
	}{
		{"both mapped", []bool{true, true}, false},
		{"first empty", []bool{false, true}, false},
		{"none mapped", []bool{false, false}, false},
		{"uffd-wp cleared", []bool{true, true}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "x86_64")
			pmd := e.pmd
			mem := e.m.Memory()
			fm := &e.a.Format
			e.mm.MmapWriteLock()
			v := &mmu.VMA{Start: e.src, End: e.src + 2*pmd,
				Flags: mmu.VMRead | mmu.VMWrite | mmu.VMMayRead | mmu.VMMayWrite | mmu.VMHugeTLB, HugeShift: 21}
			if tc.uffd {
				v.Flags |= mmu.VMUffdWP
			}
			if err := e.mm.InsertVMA(v); err != nil {
				t.Fatal(err)
			}
			for i, mapped := range tc.mapped {
				if !mapped {
					continue
				}
				pfn, err := mem.Alloc(9, phys.KindFolio)
				if err != nil {
					t.Fatal(err)
				}
				f := phys.Folio{PFN: pfn, Order: 9}
				mem.SetFlags(f, phys.FlagHugeTLB)
				mem.SetContent(pfn, 100+uint64(i))
				e.mm.AddEntireRmap(f, false, false)
				e.mm.AddRSS(mmu.MMFilePages, 512)
				a := e.src + uint64(i)*pmd
				if err := e.mm.PageTable().Map(a, pmd, pfn, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared, Huge: true}); err != nil {
					t.Fatal(err)
				}
				if tc.uffd {
					tr, _ := e.mm.PageTable().Lookup(a)
					e.mm.PageTable().RawSet(a, tr.Ptr, fm.MkUffdWP(tr.Entry, tr.Level))
				}
			}
			e.mm.MmapWriteUnlock()
			e.check()
			e.reset()
			mv := &Move{Old: v, New: v, OldAddr: e.src, NewAddr: e.dst, Len: 2 * pmd}
			e.mm.MmapWriteLock()
			// The destination VMA stands in for copy_vma's.
			nv := &mmu.VMA{Start: e.dst, End: e.dst + 2*pmd, Flags: v.Flags &^ mmu.VMUffdWP, HugeShift: 21}
			if err := e.mm.InsertVMA(nv); err != nil {
				t.Fatal(err)
			}
			mv.New = nv
			moved := MovePageTables(e.mm, mv)
			e.mm.RemoveVMA(v)
			e.mm.MmapWriteUnlock()
			e.check()
			if moved != 2*pmd {
				t.Fatalf("moved %#x, want %#x", moved, 2*pmd)
			}
			if got := e.count(cost.TLBFlushRange); got != 1 {
				t.Fatalf("flush_tlb_range = %d, want 1 for the whole old range", got)
			}
			for i, mapped := range tc.mapped {
				tr, ok := e.mm.Translate(e.dst + uint64(i)*pmd)
				if ok != mapped {
					t.Fatalf("huge page %d mapped %v at the destination, want %v", i, ok, mapped)
				}
				if ok && (mem.Content(tr.PFN) != 100+uint64(i) || fm.UffdWP(tr.Entry, tr.Level)) {
					t.Fatalf("huge page %d: content %d, entry %#x (uffd-wp %v)", i, mem.Content(tr.PFN), tr.Entry, fm.UffdWP(tr.Entry, tr.Level))
				}
			}
		})
	}
}

// TestHugePUDMove moves a PUD leaf (a 1 GiB mapping, built by hand as a
// DAX or PFN map would be): first in the decision order, it moves whole
// when the extent is the PUD on both sides (move_huge_pud: one entry,
// one flush with the PUD stride), its entry unchanged (no PUD-level
// soft-dirty), and the page follows.
func TestHugePUDMove(t *testing.T) {
	e := newEnv(t, "x86_64")
	mem := e.m.Memory()
	fm := &e.a.Format
	pud := e.pud
	e.mmap(e.src, pud, mmu.MapFlags{})
	pfn, err := mem.Alloc(18, phys.KindFolio)
	if err != nil {
		t.Fatal(err)
	}
	f := phys.Folio{PFN: pfn, Order: 18}
	mem.SetContent(pfn+5, 55)
	pt := e.mm.PageTable()
	e.mm.MmapWriteLock()
	ptr, err := pt.WalkAlloc(e.src, pgtable.PUD)
	if err != nil {
		t.Fatal(err)
	}
	leaf := fm.MkWrite(fm.MkDirty(fm.MkYoung(fm.MkHugeAt(pgtable.PUD, pfn, pgtable.ProtRead|pgtable.ProtWrite), pgtable.PUD), pgtable.PUD), pgtable.PUD)
	leaf = fm.ClearSoftDirty(leaf, pgtable.PUD) // x86's mkdirty sets it
	if err := pt.SetLeaf(e.src, ptr, leaf); err != nil {
		t.Fatal(err)
	}
	e.mm.FindVMA(e.src).AnonVMA = true
	e.mm.AddEntireRmap(f, true, true)
	e.mm.AddRSS(mmu.MMAnonPages, int64(f.NrPages()))
	e.mm.MmapWriteUnlock()
	e.check()
	before, _ := e.mm.Translate(e.src)
	e.reset()
	e.mustMremap(e.src, pud, pud, MayMove|Fixed, e.dst)
	tr, ok := e.mm.Translate(e.dst)
	if !ok || tr.Level != pgtable.PUD || tr.PFN != pfn || tr.Entry != before.Entry {
		t.Fatalf("after the move: %+v (%v), want the PUD leaf %#x unchanged", tr, ok, before.Entry)
	}
	if v, err := e.mm.Read(0, e.dst+5*e.ps); err != nil || v != 55 {
		t.Fatalf("reads %d, %v", v, err)
	}
	e.wantUnmapped(e.src, pud)
	e.wantCounts(map[cost.Event]uint64{cost.PUDMoves: 1, cost.PMDMoves: 0, cost.HugePMDMoves: 0, cost.PTEMoves: 0})
	e.check()
}

// TestSpecialHugePMDMove moves a huge PFN map (a special PMD leaf, built
// by hand): aligned, it moves whole as move_huge_pmd moves it, with no
// deposited table to carry; misaligned, split_huge_pmd clears it (a
// special VMA refaults its frames) and nothing is left to move. Neither
// fails, and the model stays consistent.
func TestSpecialHugePMDMove(t *testing.T) {
	for _, aligned := range []bool{true, false} {
		t.Run(fmt.Sprintf("aligned=%v", aligned), func(t *testing.T) {
			e := newEnv(t, "x86_64")
			pmd := e.pmd
			fm := &e.a.Format
			pt := e.mm.PageTable()
			e.mm.MmapWriteLock()
			v := &mmu.VMA{Start: e.src, End: e.src + pmd,
				Flags: mmu.VMRead | mmu.VMWrite | mmu.VMShared | mmu.VMMayRead | mmu.VMMayWrite | mmu.VMMayShare | mmu.VMPFNMap}
			if err := e.mm.InsertVMA(v); err != nil {
				t.Fatal(err)
			}
			ptr, err := pt.WalkAlloc(e.src, pgtable.PMD)
			if err != nil {
				t.Fatal(err)
			}
			raw := phys.PFN(e.m.Memory().Frames() - pmd/e.ps) // frames nothing allocates
			leaf := fm.MkSpecial(fm.MkYoung(fm.MkHugeAt(pgtable.PMD, raw, pgtable.ProtRead|pgtable.ProtWrite|pgtable.ProtShared), pgtable.PMD), pgtable.PMD)
			if err := pt.SetLeaf(e.src, ptr, leaf); err != nil {
				t.Fatal(err)
			}
			e.mm.MmapWriteUnlock()
			e.check()
			e.reset()
			dst := e.dst
			if !aligned {
				dst += e.ps
			}
			e.mustMremap(e.src, pmd, pmd, MayMove|Fixed, dst)
			e.wantUnmapped(e.src, pmd)
			tr, ok := e.mm.Translate(dst)
			if aligned {
				if !ok || tr.Level != pgtable.PMD || tr.PFN != raw || !fm.Special(tr.Entry, pgtable.PMD) {
					t.Fatalf("after the move: %+v (%v), want the special PMD", tr, ok)
				}
				e.wantCounts(map[cost.Event]uint64{cost.HugePMDMoves: 1, cost.PTEMoves: 0})
				return
			}
			if !pt.IsEmpty(dst, pmd) {
				t.Fatal("a split huge PFN map left entries behind")
			}
			e.wantCounts(map[cost.Event]uint64{cost.HugePMDMoves: 0, cost.PTEMoves: 0})
		})
	}
}
