package mremap

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// TestDontUnmapSemantics checks MREMAP_DONTUNMAP on every arch for the
// mappings Linux accepts since 5.13 (anonymous and file, private and
// shared, the whole VMA or a part of it): the pages move; the old VMA
// stays where it was, unsplit, empty over the moved range; it loses
// VM_LOCKED but keeps VM_ACCOUNT (dontunmap_complete, Linux 6.17), and
// drops its anon_vma only when it moved whole. A later access to the old
// range refaults: a fresh zero page for anonymous private memory, the
// page cache for a file or shared mapping.
func TestDontUnmapSemantics(t *testing.T) {
	cases := []struct {
		name string
		fl   mmu.MapFlags
		// first and pages select the moved part of an 8-page VMA.
		first, pages uint64
		// refault is true when the old range reads the moved content
		// again (page cache), false when it reads zero.
		refault bool
	}{
		{"anon private, whole VMA", mmu.MapFlags{}, 0, 8, false},
		{"anon private, middle part", mmu.MapFlags{}, 2, 4, false},
		{"file private, whole VMA", mmu.MapFlags{File: "f"}, 0, 8, false},
		{"file shared, whole VMA", mmu.MapFlags{File: "f", Shared: true}, 0, 8, true},
		{"file shared, tail", mmu.MapFlags{File: "f", Shared: true}, 5, 3, true},
		{"anon shared, whole VMA", mmu.MapFlags{Shared: true}, 0, 8, true},
	}
	for _, name := range archs.Names() {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, name)
				ps := e.ps
				e.mmap(e.src, 8*ps, tc.fl)
				e.fill(e.src, 8*ps, ps)
				e.mm.VMAs()[0].Flags |= mmu.VMLocked | mmu.VMAccount
				old := e.src + tc.first*ps
				length := tc.pages * ps
				got := e.mustMremap(old, length, length, MayMove|DontUnmap|Fixed, e.dst)
				if got != e.dst {
					t.Fatalf("moved to %#x, want %#x", got, e.dst)
				}
				vs := e.mm.VMAsIn(e.src, e.src+8*ps)
				if len(vs) != 1 || vs[0].Start != e.src || vs[0].End != e.src+8*ps {
					t.Fatalf("old VMAs %v, want the old VMA kept whole", vs)
				}
				ov := vs[0]
				if ov.Flags&mmu.VMLocked != 0 || ov.Flags&mmu.VMAccount == 0 {
					t.Fatalf("old VMA flags %v: want VM_LOCKED cleared, VM_ACCOUNT kept", ov.Flags)
				}
				whole := tc.first == 0 && tc.pages == 8
				if tc.fl.File == "" && !tc.fl.Shared && ov.AnonVMA == whole {
					t.Fatalf("old VMA anon_vma %v after moving whole=%v", ov.AnonVMA, whole)
				}
				nv := e.mm.FindVMA(e.dst)
				if nv == nil || nv.End != e.dst+length || nv.Flags&(mmu.VMLocked|mmu.VMAccount) != mmu.VMLocked|mmu.VMAccount {
					t.Fatalf("new VMA %v, want the old flags", nv)
				}
				if !e.mm.PageTable().IsEmpty(old, length) {
					t.Fatal("the moved range still maps pages")
				}
				e.wantContent(e.dst, length, ps, func(a uint64) uint64 { return a - e.dst + old })
				// The part of the old VMA that did not move keeps its pages.
				for a := e.src; a < e.src+8*ps; a += ps {
					if a >= old && a < old+length {
						continue
					}
					if v, err := e.mm.Read(0, a); err != nil || v != a {
						t.Fatalf("unmoved page %#x reads %#x, %v", a, v, err)
					}
				}
				e.check()
				for a := old; a < old+length; a += ps {
					want := uint64(0)
					if tc.refault {
						want = a
					}
					if v, err := e.mm.Read(0, a); err != nil || v != want {
						t.Fatalf("old page %#x reads %#x, %v; want %#x", a, v, err, want)
					}
				}
				e.check()
			})
		}
	}
}

// TestDontUnmapRollback fails every allocation of a MREMAP_DONTUNMAP move
// in turn: the moved entries come back, the new range is unmapped and
// ENOMEM returned, and the old VMA is exactly as it was, VM_LOCKED
// included (dontunmap_complete runs only on success).
func TestDontUnmapRollback(t *testing.T) {
	for _, name := range []string{"x86_64", "arm64", "s390x", "sparc64"} {
		for _, ptes := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ptes=%v", name, ptes), func(t *testing.T) {
				var knobs []string
				a, _ := archs.ByName(name)
				if ptes && a.Caps.HaveMovePMD {
					knobs = []string{"move_pmd=off", "move_pud=off"}
				}
				setup := func() (*env, uint64) {
					e := newEnv(t, name, knobs...)
					size := 2*e.pmd + 3*e.ps
					e.mmap(e.src, size, mmu.MapFlags{})
					e.fill(e.src, size, 5*e.ps)
					e.mm.VMAs()[0].Flags |= mmu.VMLocked | mmu.VMAccount
					return e, size
				}
				e, size := setup()
				e.m.Memory().SetFailPolicy(phys.FailPolicy{})
				e.mustMremap(e.src, size, size, MayMove|DontUnmap|Fixed, e.dst)
				n := e.m.Memory().Allocations()
				if n == 0 {
					t.Fatal("the move allocated nothing")
				}
				for i := uint64(1); i <= n; i++ {
					e, size := setup()
					before := e.snapshot([2]uint64{e.src, size}, [2]uint64{e.dst, size})
					e.m.Memory().SetFailPolicy(phys.FailPolicy{Nth: i})
					_, err := e.mremap(e.src, size, size, MayMove|DontUnmap|Fixed, e.dst)
					e.m.Memory().SetFailPolicy(phys.FailPolicy{})
					wantErr(t, err, mmu.ENOMEM)
					if d := diffStates(before, e.snapshot([2]uint64{e.src, size}, [2]uint64{e.dst, size})); d != "" {
						t.Fatalf("allocation %d of %d failed and the state changed:\n%s", i, n, d)
					}
					if v := e.mm.FindVMA(e.src); v == nil || v.Flags&mmu.VMLocked == 0 {
						t.Fatalf("allocation %d: old VMA %v lost VM_LOCKED on a failed move", i, v)
					}
				}
			})
		}
	}
}

// TestLockedGrowPopulates grows an mlock()ed mapping in place (merging
// with a following locked VMA), by moving, and by a fixed move: as
// do_mremap's mm_populate does once the lock is dropped, the part that
// grew is faulted in at the mapping's new place, and only that part.
func TestLockedGrowPopulates(t *testing.T) {
	cases := []struct {
		name string
		// next maps a locked VMA right after the grown range (in place
		// it merges), blocker one that forces a move.
		next, blocker bool
		fl            Flags
		fixed         bool
	}{
		{"in place", false, false, 0, false},
		{"in place, merging with the next VMA", true, false, 0, false},
		{"by moving", false, true, MayMove, false},
		{"fixed move", false, false, MayMove | Fixed, true},
	}
	for _, name := range []string{"x86_64", "arm64", "s390x", "sparc64", "um32"} {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, name)
				ps := e.ps
				e.mmap(e.src, 4*ps, mmu.MapFlags{})
				e.fill(e.src, 4*ps, ps)
				e.mm.FindVMA(e.src).Flags |= mmu.VMLocked
				if tc.next {
					e.mmap(e.src+8*ps, 4*ps, mmu.MapFlags{})
					e.mm.FindVMA(e.src + 8*ps).Flags |= mmu.VMLocked
				}
				if tc.blocker {
					e.mmap(e.src+4*ps, ps, mmu.MapFlags{File: "blocker"})
				}
				var newAddr uint64
				if tc.fixed {
					newAddr = e.dst
				}
				got := e.mustMremap(e.src, 4*ps, 8*ps, tc.fl, newAddr)
				if tc.fixed && got != e.dst || !tc.fixed && !tc.blocker && got != e.src || tc.blocker && got == e.src {
					t.Fatalf("mremap returned %#x", got)
				}
				v := e.mm.FindVMA(got)
				if v == nil || v.Flags&mmu.VMLocked == 0 || v.End < got+8*ps {
					t.Fatalf("grown VMA %v", v)
				}
				pt := e.mm.PageTable()
				for a := got; a < got+8*ps; a += ps {
					if _, ok := pt.Lookup(a); !ok {
						t.Fatalf("%#x (page %d) not populated after growing a locked mapping", a, (a-got)/ps)
					}
				}
				e.wantContent(got, 4*ps, ps, func(a uint64) uint64 { return a - got + e.src })
				e.wantContent(got+4*ps, 4*ps, ps, func(uint64) uint64 { return 0 })
				if tc.next && !pt.IsEmpty(e.src+8*ps, 4*ps) {
					t.Fatal("the merged next VMA was populated too")
				}
				e.check()
			})
		}
	}
}

// TestMultiVMARules checks remap_move's rules (Linux 6.17) on which VMAs
// a fixed move without a resize may take together: a VMA with uffd-wp
// armed only alone (first, and the range ending inside it, even when
// only a gap follows it), hugetlb VMAs with others. Refused calls change
// nothing (the model checks every VMA before the first moves).
func TestMultiVMARules(t *testing.T) {
	cases := []struct {
		name string
		// build maps the source at e.src and returns the range's length.
		build func(e *env) uint64
		errno error
	}{
		{"uffd-wp VMA alone", func(e *env) uint64 {
			e.mmap(e.src, 4*e.ps, mmu.MapFlags{})
			e.fill(e.src, 4*e.ps, e.ps)
			e.mm.FindVMA(e.src).Flags |= mmu.VMUffdWP
			return 4 * e.ps
		}, nil},
		{"uffd-wp VMA, range running into a gap", func(e *env) uint64 {
			e.mmap(e.src, 4*e.ps, mmu.MapFlags{})
			e.fill(e.src, 4*e.ps, e.ps)
			e.mm.FindVMA(e.src).Flags |= mmu.VMUffdWP
			return 8 * e.ps
		}, mmu.EFAULT},
		{"plain VMA, range running into a gap", func(e *env) uint64 {
			e.mmap(e.src, 4*e.ps, mmu.MapFlags{})
			e.fill(e.src, 4*e.ps, e.ps)
			return 8 * e.ps
		}, nil},
		{"uffd-wp VMA second", func(e *env) uint64 {
			e.mmap(e.src, 2*e.ps, mmu.MapFlags{})
			e.mmap(e.src+2*e.ps, 2*e.ps, mmu.MapFlags{File: "f"})
			e.fill(e.src, 4*e.ps, e.ps)
			e.mm.FindVMA(e.src + 2*e.ps).Flags |= mmu.VMUffdWP
			return 4 * e.ps
		}, mmu.EFAULT},
		{"hugetlb with an anonymous VMA", func(e *env) uint64 {
			mem := e.m.Memory()
			e.mm.MmapWriteLock()
			v := &mmu.VMA{Start: e.src, End: e.src + e.pmd,
				Flags: mmu.VMRead | mmu.VMWrite | mmu.VMMayRead | mmu.VMMayWrite | mmu.VMHugeTLB, HugeShift: 21}
			if err := e.mm.InsertVMA(v); err != nil {
				e.t.Fatal(err)
			}
			pfn, err := mem.Alloc(9, phys.KindFolio)
			if err != nil {
				e.t.Fatal(err)
			}
			f := phys.Folio{PFN: pfn, Order: 9}
			mem.SetFlags(f, phys.FlagHugeTLB)
			mem.SetContent(pfn, e.src)
			e.mm.AddEntireRmap(f, false, false)
			e.mm.AddRSS(mmu.MMFilePages, 512)
			if err := e.mm.PageTable().Map(e.src, e.pmd, pfn, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared, Huge: true}); err != nil {
				e.t.Fatal(err)
			}
			e.mm.MmapWriteUnlock()
			e.check()
			e.mmap(e.src+e.pmd, 4*e.ps, mmu.MapFlags{})
			e.fill(e.src+e.pmd, 4*e.ps, e.ps)
			return e.pmd + 4*e.ps
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "x86_64")
			length := tc.build(e)
			before := e.snapshot([2]uint64{e.src, length}, [2]uint64{e.dst, length})
			got, err := e.mremap(e.src, length, length, MayMove|Fixed, e.dst)
			if tc.errno != nil {
				wantErr(t, err, tc.errno)
				if d := diffStates(before, e.snapshot([2]uint64{e.src, length}, [2]uint64{e.dst, length})); d != "" {
					t.Fatalf("refused move changed the model:\n%s", d)
				}
				return
			}
			if err != nil || got != e.dst {
				t.Fatalf("mremap: %#x, %v", got, err)
			}
			e.wantUnmapped(e.src, length)
			for i, p := range before.Pages[:length/e.ps] {
				if a := e.snapshot([2]uint64{e.dst + uint64(i)*e.ps, e.ps}).Pages[0]; a.Mapped != p.Mapped || a.PFN != p.PFN || a.Content != p.Content {
					t.Fatalf("page %d: %+v moved to %+v", i, p, a)
				}
			}
		})
	}
}
