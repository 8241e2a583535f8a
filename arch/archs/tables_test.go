package archs_test

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// testVA returns a user address aligned to four PMD entries, inside every
// arch's user space and below s390's 3-level limit.
func testVA(a *arch.Arch) uint64 { return 4 * a.Geometry.Size(pgtable.PMD) }

// TestNoneValues checks each level's empty value and a fresh table's
// contents against Linux.
func TestNoneValues(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		f := &a.Format
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, false)
		for l := pgtable.PGD; l < pgtable.NumLevels; l++ {
			if f.None[l] != fa.none[l] {
				t.Errorf("%s none = %#x, want %#x", l, uint64(f.None[l]), uint64(fa.none[l]))
			}
			if !f.IsNone(f.None[l], l) {
				t.Errorf("%s: none value %#x is not none", l, uint64(f.None[l]))
			}
		}
		for _, tg := range a.Geometry.Tables {
			tb, err := pt.AllocTable(tg.Level)
			if err != nil {
				t.Fatal(err)
			}
			want := f.None[tg.Level]
			if f.ZeroFill {
				want = 0
			}
			for i := 0; i < tb.Len(); i++ {
				if e := tb.Entry(i); e != want || !f.IsNone(e, tg.Level) {
					t.Fatalf("fresh %s table entry %d = %#x, want %#x", tg.Level, i, uint64(e), uint64(want))
				}
			}
			if tb.Used() != 0 {
				t.Fatalf("fresh %s table has %d entries in use", tg.Level, tb.Used())
			}
			if err := pt.FreeTable(tb); err != nil {
				t.Fatal(err)
			}
		}
		if a.Name == "s390x" && f.IsNone(0, pgtable.PTE) {
			t.Error("s390 pte 0 is none; pte_none is pte == 0x400")
		}
		if (a.Name == "um" || a.Name == "um32") && !f.IsNone(0, pgtable.PTE) {
			t.Error("UML pte 0 is not none")
		}
	})
}

// TestTableEntries checks pXd_populate's values and TablePFN.
func TestTableEntries(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		f := &a.Format
		const pfn = 0x4321
		pa := pgtable.Entry(pfn) << a.Geometry.PageShift
		for _, tg := range a.Geometry.Tables[:len(a.Geometry.Tables)-1] {
			for _, kernel := range []bool{false, true} {
				want := pa | fa.userTable[tg.Level]
				if kernel {
					want = pa | fa.kernelTable[tg.Level]
				}
				e := f.MkTable(tg.Level, pfn, kernel)
				if e != want {
					t.Errorf("%s table entry (kernel %v) = %#x, want %#x", tg.Level, kernel, uint64(e), uint64(want))
				}
				if f.TablePFN(e) != pfn || f.IsNone(e, tg.Level) || f.IsLeaf(e, tg.Level) {
					t.Errorf("%s table entry %#x: pfn %#x none %v leaf %v", tg.Level, uint64(e),
						f.TablePFN(e), f.IsNone(e, tg.Level), f.IsLeaf(e, tg.Level))
				}
			}
		}
		// The entries a walk writes point at the tables below.
		mem := newMemory(t, a)
		for _, kernel := range []bool{false, true} {
			pt := newPT(t, a, mem, kernel)
			va := testVA(a)
			if kernel {
				va = a.DirectMap
			}
			if _, err := pt.WalkAlloc(va, pgtable.PTE); err != nil {
				t.Fatal(err)
			}
			pt.WalkTables(func(v pgtable.TableVisit) bool {
				for i := 0; i < v.Table.Len(); i++ {
					c := v.Table.Child(i)
					if c == nil {
						continue
					}
					want := f.MkTable(v.Table.Level(), c.PFN(), kernel)
					if e := v.Table.Entry(i); e != want || f.TablePFN(e) != c.PFN() {
						t.Errorf("%s[%d] = %#x, want %#x", v.Table.Level(), i, uint64(e), uint64(want))
					}
				}
				return true
			})
		}
	})
}

// TestMapLookupUnmap maps base pages, reads them back raw and through a
// lookup, and unmaps them, leaving only the root.
func TestMapLookupUnmap(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		f := &a.Format
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, false)
		root := tableFrames(pt)
		va, ps := testVA(a), a.PageSize()
		const n = 16
		if err := pt.Map(va, n*ps, 0x1000, pgtable.MapOpts{Prot: srw}); err != nil {
			t.Fatal(err)
		}
		if pt.Tables() != fa.levels {
			t.Fatalf("%d tables after mapping one PTE table's worth, want %d", pt.Tables(), fa.levels)
		}
		for i := uint64(0); i < n; i++ {
			tr, ok := pt.Lookup(va + i*ps + 5)
			if !ok || tr.Level != pgtable.PTE || tr.PFN != phys.PFN(0x1000+i) || tr.Size != ps {
				t.Fatalf("page %d: %+v %v", i, tr, ok)
			}
			want := f.MkPTE(phys.PFN(0x1000+i), srw) | fa.setAlways
			if tr.Entry != want {
				t.Fatalf("page %d entry %#x, want %#x", i, uint64(tr.Entry), uint64(want))
			}
			if tr.PA(va+i*ps+5, a.Geometry.PageShift) != (0x1000+i)*ps+5 {
				t.Fatal("physical address")
			}
		}
		if _, ok := pt.Lookup(va + n*ps); ok {
			t.Fatal("page past the mapping is mapped")
		}
		if err := pt.Map(va+3*ps, ps, 0x99, pgtable.MapOpts{}); !errors.Is(err, pgtable.EEXIST) {
			t.Fatalf("overlapping map: %v", err)
		}
		if err := pt.Unmap(va, n*ps); err != nil {
			t.Fatal(err)
		}
		if _, ok := pt.Lookup(va); ok || !pt.IsEmpty(va, n*ps) {
			t.Fatal("still mapped")
		}
		if pt.Tables() != 1 || mem.InUse(phys.KindTable) != root {
			t.Fatalf("after unmap: %d tables, %d table frames (root %d)", pt.Tables(), mem.InUse(phys.KindTable), root)
		}
	})
}

// TestHugeLeaves maps huge leaves at every leaf level, then unmaps one page
// in the middle of each, which splits it.
func TestHugeLeaves(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := &a.Format
		fa := archFacts(a.Name)
		if len(fa.leafLevels) == 0 {
			// No huge pages: a huge map falls back to base pages.
			mem := newMemory(t, a)
			pt := newPT(t, a, mem, false)
			size := a.Geometry.Size(pgtable.PMD)
			if err := pt.Map(size, size, 0, pgtable.MapOpts{Prot: srw, Huge: true}); err != nil {
				t.Fatal(err)
			}
			if tr, ok := pt.Lookup(size); !ok || tr.Level != pgtable.PTE {
				t.Fatalf("huge map on an arch without huge leaves: %+v", tr)
			}
			return
		}
		ps := a.PageSize()
		for _, l := range fa.leafLevels {
			t.Run(l.String(), func(t *testing.T) {
				mem := newMemory(t, a)
				pt := newPT(t, a, mem, false)
				size := a.Geometry.Size(l)
				va := 2 * size
				pfn := framesFor(a, l)
				if err := pt.Map(va, 2*size, pfn, pgtable.MapOpts{Prot: srw, Huge: true, Dirty: true}); err != nil {
					t.Fatal(err)
				}
				for _, off := range []uint64{0, size - ps, size, 2*size - ps} {
					tr, ok := pt.Lookup(va + off)
					if !ok || tr.Level != l || tr.Size != size || tr.PFN != pfn+phys.PFN(off/ps) {
						t.Fatalf("offset %#x: %+v %v", off, tr, ok)
					}
					leaf := pfn + phys.PFN(off/size*(size/ps))
					want := f.MkDirty(f.MkHugeAt(l, leaf, srw), l)
					if tr.Entry != want || !f.IsLeaf(tr.Entry, l) {
						t.Fatalf("leaf %#x, want %#x", uint64(tr.Entry), uint64(want))
					}
				}
				// Unmap one page in the middle of the first leaf.
				hole := va + size/2
				if err := pt.Unmap(hole, ps); err != nil {
					t.Fatal(err)
				}
				if _, ok := pt.Lookup(hole); ok {
					t.Fatal("page still mapped")
				}
				for _, off := range []uint64{0, size/2 - ps, size/2 + ps, size - ps} {
					tr, ok := pt.Lookup(va + off)
					if !ok || tr.Level <= l || tr.PFN != pfn+phys.PFN(off/ps) {
						t.Fatalf("after split, offset %#x: %+v %v", off, tr, ok)
					}
					if !f.Write(tr.Entry, tr.Level) || !f.Dirty(tr.Entry, tr.Level) || !f.Young(tr.Entry, tr.Level) {
						t.Fatalf("split lost write, dirty or young: %#x", uint64(tr.Entry))
					}
				}
				if tr, ok := pt.Lookup(va + size); !ok || tr.Level != l {
					t.Fatalf("second leaf: %+v %v", tr, ok)
				}
				if err := pt.Unmap(va, 2*size); err != nil {
					t.Fatal(err)
				}
				if pt.Tables() != 1 {
					t.Fatalf("%d tables left", pt.Tables())
				}
			})
		}
	})
}

// TestSplitLeaf splits a leaf in place: every page keeps its frame and
// state, one level down.
func TestSplitLeaf(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := &a.Format
		ps := a.PageSize()
		for _, l := range archFacts(a.Name).leafLevels {
			mem := newMemory(t, a)
			pt := newPT(t, a, mem, false)
			size := a.Geometry.Size(l)
			va, pfn := size, framesFor(a, l)
			if err := pt.Map(va, size, pfn, pgtable.MapOpts{Prot: ro, Huge: true, Old: true}); err != nil {
				t.Fatal(err)
			}
			tr, _ := pt.Lookup(va)
			before := pt.Tables()
			if err := pt.SplitLeaf(va, tr.Ptr); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			if pt.Tables() != before+1 {
				t.Fatalf("%s: split made %d tables", l, pt.Tables()-before)
			}
			for off := uint64(0); off < size; off += size / 8 {
				got, ok := pt.Lookup(va + off)
				if !ok || got.Level <= l || got.PFN != pfn+phys.PFN(off/ps) {
					t.Fatalf("%s offset %#x: %+v", l, off, got)
				}
				e, gl := got.Entry, got.Level
				if f.Write(e, gl) || f.Young(e, gl) || f.Dirty(e, gl) || !f.Readable(e, gl) {
					t.Fatalf("%s offset %#x: state changed: %#x", l, off, uint64(e))
				}
				if gl == pgtable.PTE && e != f.MkOld(f.MkPTE(got.PFN, ro), pgtable.PTE)|a.Format.SetAlways {
					t.Fatalf("%s: split pte %#x, want the old read-only pte", l, uint64(e))
				}
			}
			// A table entry is not a leaf: splitting it again fails.
			if err := pt.SplitLeaf(va, tr.Ptr); !errors.Is(err, pgtable.EINVAL) {
				t.Fatalf("second split: %v", err)
			}
		}
	})
}

// TestProtect changes protections and keeps frames and A/D state.
func TestProtect(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := &a.Format
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, false)
		va, ps := testVA(a), a.PageSize()
		if err := pt.Map(va, 4*ps, 0x500, pgtable.MapOpts{Prot: srw, Dirty: true}); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			prot        pgtable.Prot
			write, read bool
		}{
			{ro, false, true},
			{pnone, false, false},
			{srw, true, true},
		}
		for _, s := range steps {
			if err := pt.Protect(va+ps, 2*ps, pgtable.MapOpts{Prot: s.prot}); err != nil {
				t.Fatal(err)
			}
			for i := uint64(0); i < 4; i++ {
				tr, ok := pt.Lookup(va + i*ps)
				if !ok || tr.PFN != phys.PFN(0x500+i) {
					t.Fatalf("prot %#x page %d lost: %+v", s.prot, i, tr)
				}
				e := tr.Entry
				inside := i == 1 || i == 2
				write, read := true, true
				if inside {
					write, read = s.write, s.read
				}
				if f.Write(e, pgtable.PTE) != write || f.HWReadable(e, pgtable.PTE) != read ||
					f.HWWritable(e, pgtable.PTE) != write || !f.Dirty(e, pgtable.PTE) || !f.Young(e, pgtable.PTE) {
					t.Fatalf("prot %#x page %d: entry %#x", s.prot, i, uint64(e))
				}
				if inside && s.prot == srw {
					// Back to the start: the entry is what Map wrote.
					want := f.MkDirty(f.MkPTE(tr.PFN, srw), pgtable.PTE) | f.SetAlways
					if e != want {
						t.Fatalf("round trip %#x, want %#x", uint64(e), uint64(want))
					}
				}
			}
		}
	})
}

// TestWalkLevels counts table levels and, on s390, grows from 3 to 5.
func TestWalkLevels(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, false)
		if pt.Levels() != fa.levels {
			t.Fatalf("a new table has %d levels, want %d", pt.Levels(), fa.levels)
		}
		va := testVA(a)
		if p, ok := pt.Walk(va, pgtable.PTE); ok || p.Level() != pt.RootLevel() {
			t.Fatalf("walk of an empty table reached %s", p.Level())
		}
		p, err := pt.WalkAlloc(va, pgtable.PTE)
		if err != nil || p.Level() != pgtable.PTE {
			t.Fatalf("WalkAlloc: %v at %s", err, p.Level())
		}
		if pt.Tables() != fa.levels {
			t.Fatalf("%d tables on one path, want %d", pt.Tables(), fa.levels)
		}
		// Every level's walk stops at a table of that level or one that
		// holds it folded.
		for l := pgtable.PGD; l < pgtable.NumLevels; l++ {
			q, ok := pt.Walk(va, l)
			if !ok || q.Level() < l {
				t.Fatalf("walk to %s stopped at %s", l, q.Level())
			}
		}
		if q, ok := pt.Walk(va, pgtable.PTE); !ok || q != p {
			t.Fatal("walk and WalkAlloc disagree")
		}
		if !fa.grow {
			if err := pt.Grow(fa.levels + 1); !errors.Is(err, pgtable.EINVAL) {
				t.Fatalf("grow past the geometry: %v", err)
			}
			return
		}
		// s390: a 3-level table maps 4 TiB; higher addresses need an
		// upgrade (crst_table_upgrade).
		ps := a.PageSize()
		if err := pt.Map(1<<45, ps, 1, pgtable.MapOpts{Prot: srw}); !errors.Is(err, pgtable.EINVAL) {
			t.Fatalf("map above the 3-level limit: %v", err)
		}
		if err := pt.Grow(4); err != nil {
			t.Fatal(err)
		}
		r := pt.Root()
		if pt.Levels() != 4 || r.Level() != pgtable.P4D || r.Entry(0) != pgtable.Entry(r.Child(0).PFN())<<12|0x0b {
			t.Fatalf("after grow to 4: root %s entry %#x", r.Level(), uint64(r.Entry(0)))
		}
		if r.Entry(1) != 0x28 {
			t.Fatalf("new R2 table entry %#x, want 0x28", uint64(r.Entry(1)))
		}
		if err := pt.Map(1<<45, ps, 1, pgtable.MapOpts{Prot: srw}); err != nil {
			t.Fatal(err)
		}
		if err := pt.Map(1<<60, ps, 2, pgtable.MapOpts{Prot: srw}); !errors.Is(err, pgtable.EINVAL) {
			t.Fatalf("map above the 4-level limit: %v", err)
		}
		if err := pt.Grow(5); err != nil {
			t.Fatal(err)
		}
		r = pt.Root()
		if pt.Levels() != 5 || r.Level() != pgtable.PGD || r.Entry(0) != pgtable.Entry(r.Child(0).PFN())<<12|0x0f || r.Entry(5) != 0x2c {
			t.Fatalf("after grow to 5: root %s entry %#x", r.Level(), uint64(r.Entry(0)))
		}
		if err := pt.Map(1<<60, ps, 2, pgtable.MapOpts{Prot: srw}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			va  uint64
			pfn phys.PFN
		}{{va, 0}, {1 << 45, 1}, {1 << 60, 2}} {
			if c.va == va {
				continue // walked, not mapped
			}
			if tr, ok := pt.Lookup(c.va); !ok || tr.PFN != c.pfn {
				t.Fatalf("lookup %#x after growing: %+v %v", c.va, tr, ok)
			}
		}
		if _, err := pt.WalkAlloc(a.User.End-ps, pgtable.PTE); err != nil {
			t.Fatalf("top of the 5-level space: %v", err)
		}
	})
}

// TestFreePgtables frees tables with floor and ceiling as free_pgd_range
// does.
func TestFreePgtables(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, false)
		ps, s := a.PageSize(), a.Geometry.Size(pgtable.PMD)
		x, y := 4*s, 6*s
		for _, va := range []uint64{x, y} {
			if err := pt.Map(va, ps, 1, pgtable.MapOpts{Prot: ro}); err != nil {
				t.Fatal(err)
			}
		}
		if pt.Tables() != fa.levels+1 {
			t.Fatalf("%d tables, want %d", pt.Tables(), fa.levels+1)
		}
		clear := func(va uint64) {
			tr, _ := pt.Lookup(va)
			pt.PTEClear(va, tr.Ptr)
		}
		// The first page goes; the next mapping starts at y.
		clear(x)
		pt.FreePgtables(x, x+ps, 0, y, pgtable.FreeNow{})
		if pt.Tables() != fa.levels {
			t.Fatalf("after freeing x: %d tables, want %d", pt.Tables(), fa.levels)
		}
		if tr, ok := pt.Lookup(y); !ok || tr.PFN != 1 {
			t.Fatal("y lost")
		}
		// The second goes; the previous mapping ended at x+ps, so the
		// upper tables covering it stay.
		clear(y)
		pt.FreePgtables(y, y+ps, x+ps, 0, pgtable.FreeNow{})
		if pt.Tables() != fa.levels-1 {
			t.Fatalf("after freeing y: %d tables, want %d", pt.Tables(), fa.levels-1)
		}
		// Nothing left around: everything below the root goes.
		pt.FreePgtables(x, y+ps, 0, 0, pgtable.FreeNow{})
		if pt.Tables() != 1 || mem.InUse(phys.KindTable) != tableFrames(pt) {
			t.Fatalf("after freeing all: %d tables, %d frames", pt.Tables(), mem.InUse(phys.KindTable))
		}
	})
}

// TestMapENOMEM fails every table allocation of a Map in turn: the table
// must be left as it was, and work afterwards.
func TestMapENOMEM(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		s := a.Geometry.Size(pgtable.PMD)
		ps := a.PageSize()
		type mapping struct {
			name      string
			va, size  uint64
			pfn       phys.PFN
			huge      bool
			minAllocs uint64
		}
		maps := []mapping{
			// Across two PTE tables.
			{"two tables", 4*s - 2*ps, 4 * ps, 0x100, false, 2},
		}
		if len(a.Format.LeafLevels) > 0 && a.Format.LeafLevels[pgtable.PMD] {
			// A huge leaf followed by a PTE table.
			maps = append(maps, mapping{"huge and pages", 4 * s, s + 2*ps, phys.PFN(s/ps) * 4, true, 1})
		}
		for _, m := range maps {
			mem := newMemory(t, a)
			pt := newPT(t, a, mem, false)
			base := mem.InUse(phys.KindTable)
			mem.SetFailPolicy(phys.FailPolicy{Kinds: []phys.Kind{phys.KindTable}})
			o := pgtable.MapOpts{Prot: srw, Huge: m.huge}
			if err := pt.Map(m.va, m.size, m.pfn, o); err != nil {
				t.Fatal(err)
			}
			n := mem.Allocations()
			if n < m.minAllocs {
				t.Fatalf("%s: %d allocations", m.name, n)
			}
			for i := uint64(1); i <= n; i++ {
				mem := newMemory(t, a)
				pt := newPT(t, a, mem, false)
				mem.SetFailPolicy(phys.FailPolicy{Nth: i, Kinds: []phys.Kind{phys.KindTable}})
				err := pt.Map(m.va, m.size, m.pfn, o)
				if !errors.Is(err, pgtable.ENOMEM) {
					t.Fatalf("%s, allocation %d of %d failing: %v", m.name, i, n, err)
				}
				if pt.Tables() != 1 || mem.InUse(phys.KindTable) != base || !pt.IsEmpty(m.va, m.size) {
					t.Fatalf("%s, allocation %d failing: %d tables, %d frames left", m.name, i, pt.Tables(), mem.InUse(phys.KindTable))
				}
				mem.SetFailPolicy(phys.FailPolicy{})
				if err := pt.Map(m.va, m.size, m.pfn, o); err != nil {
					t.Fatalf("%s: map after failure: %v", m.name, err)
				}
			}
		}
	})
}

// TestBadRanges checks that bad input is refused with EINVAL and changes
// nothing.
func TestBadRanges(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, false)
		ps := a.PageSize()
		cases := []struct {
			name     string
			va, size uint64
		}{
			{"unaligned address", ps + 1, ps},
			{"unaligned length", ps, ps + 1},
			{"zero length", ps, 0},
			{"wraps", -ps, 2 * ps},
			{"above user space", a.User.End, ps},
			{"straddles the top", a.User.End - ps, 2 * ps},
		}
		if a.Name != "s390x" {
			cases = append(cases, struct {
				name     string
				va, size uint64
			}{"kernel address", a.Kernel.Start + a.DirectMap%ps, ps})
		}
		for _, c := range cases {
			if c.va+c.size > c.va && a.User.Contains(c.va, c.size) && c.va%ps == 0 && c.size%ps == 0 && c.size != 0 {
				continue // not bad on this arch
			}
			if err := pt.Map(c.va, c.size, 1, pgtable.MapOpts{}); !errors.Is(err, pgtable.EINVAL) {
				t.Errorf("%s: Map %v", c.name, err)
			}
			if err := pt.Unmap(c.va, c.size); !errors.Is(err, pgtable.EINVAL) {
				t.Errorf("%s: Unmap %v", c.name, err)
			}
			if err := pt.Protect(c.va, c.size, pgtable.MapOpts{}); !errors.Is(err, pgtable.EINVAL) {
				t.Errorf("%s: Protect %v", c.name, err)
			}
		}
		// Frames beyond memory.
		if err := pt.Map(testVA(a), ps, phys.PFN(mem.Frames()), pgtable.MapOpts{}); !errors.Is(err, pgtable.EINVAL) {
			t.Errorf("frame beyond memory: %v", err)
		}
		if pt.Tables() != 1 {
			t.Fatalf("bad input left %d tables", pt.Tables())
		}
	})
}

// TestKernelMappings maps the direct map in init_mm's table with kernel
// protections and table bits.
func TestKernelMappings(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		f := &a.Format
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, true)
		ps := a.PageSize()
		va := a.DirectMap + 4*a.Geometry.Size(pgtable.PMD)
		if err := pt.Map(va, 2*ps, 0x40, pgtable.MapOpts{Kernel: true, Prot: rw}); err != nil {
			t.Fatal(err)
		}
		if err := pt.Map(va+2*ps, ps, 0x42, pgtable.MapOpts{Kernel: true, Prot: ro}); err != nil {
			t.Fatal(err)
		}
		pa := pgtable.Entry(0x40) << a.Geometry.PageShift
		tr, ok := pt.Lookup(va)
		if !ok || tr.Entry != pa|fa.kernelRW|fa.setAlways {
			t.Fatalf("kernel pte %#x, want %#x", uint64(tr.Entry), uint64(pa|fa.kernelRW|fa.setAlways))
		}
		tr, _ = pt.Lookup(va + 2*ps)
		if want := (pgtable.Entry(0x42) << a.Geometry.PageShift) | fa.kernelRO | fa.setAlways; tr.Entry != want {
			t.Fatalf("kernel ro pte %#x, want %#x", uint64(tr.Entry), uint64(want))
		}
		if fa.kernelRO != fa.kernelRW && f.Write(tr.Entry, pgtable.PTE) {
			t.Fatal("PAGE_KERNEL_RO writable")
		}
		pt.WalkTables(func(v pgtable.TableVisit) bool {
			for i := 0; i < v.Table.Len(); i++ {
				if c := v.Table.Child(i); c != nil && v.Table.Entry(i) != f.MkTable(v.Table.Level(), c.PFN(), true) {
					t.Errorf("kernel table entry %#x", uint64(v.Table.Entry(i)))
				}
			}
			return true
		})
		if !f.LeafLevels[pgtable.PMD] {
			return
		}
		size := a.Geometry.Size(pgtable.PMD)
		hva := a.DirectMap + 8*size
		hpfn := phys.PFN(size/ps) * 2
		if err := pt.Map(hva, size, hpfn, pgtable.MapOpts{Kernel: true, Prot: rw, Huge: true}); err != nil {
			t.Fatal(err)
		}
		tr, _ = pt.Lookup(hva)
		if want := f.MkKernelHuge(hpfn) | f.HugeLevelBits[pgtable.PMD]; tr.Level != pgtable.PMD || tr.Entry != want {
			t.Fatalf("kernel huge leaf %#x at %s, want %#x", uint64(tr.Entry), tr.Level, uint64(want))
		}
		if !f.Write(tr.Entry, pgtable.PMD) || !f.Dirty(tr.Entry, pgtable.PMD) || !f.HWWritable(tr.Entry, pgtable.PMD) {
			t.Fatalf("kernel huge leaf %#x not writable and dirty", uint64(tr.Entry))
		}
	})
}
