package archs_test

import (
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// framesFor returns a frame aligned for a leaf at level l.
func framesFor(a *arch.Arch, l pgtable.Level) phys.PFN {
	return phys.PFN(a.Geometry.Size(l)>>a.Geometry.PageShift) * 3
}

// mk returns the entry for prot at level l: pfn_pte at the PTE level,
// pfn_pmd + pmd_mkhuge above.
func mk(f *pgtable.Format, l pgtable.Level, pfn phys.PFN, prot pgtable.Prot) pgtable.Entry {
	if l == pgtable.PTE {
		return f.MkPTE(pfn, prot)
	}
	return f.MkHugeAt(l, pfn, prot)
}

// levelsUnderTest returns the PTE level and every leaf level.
func levelsUnderTest(a *arch.Arch) []pgtable.Level {
	ls := []pgtable.Level{pgtable.PTE}
	for l := pgtable.PGD; l < pgtable.PTE; l++ {
		if a.Format.LeafLevels[l] {
			ls = append(ls, l)
		}
	}
	return ls
}

// TestBasicIdentities is debug_vm_pgtable's pte_basic_tests and
// pmd_basic_tests/pud_basic_tests: for every protection_map index, the
// helper identities hold and the frame is kept.
func TestBasicIdentities(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := &a.Format
		for _, l := range levelsUnderTest(a) {
			pfn := framesFor(a, l)
			for prot := pgtable.Prot(0); prot < 16; prot++ {
				e := mk(f, l, pfn, prot)
				fail := func(what string, v pgtable.Entry) {
					t.Helper()
					t.Errorf("%s prot %#x: %s (entry %#x from %#x)", l, prot, what, uint64(v), uint64(e))
				}
				if !f.Present(e, l) {
					fail("not present", e)
				}
				if l != pgtable.PTE && !f.IsLeaf(e, l) {
					fail("pmd_leaf(pmd_mkhuge) false", e)
				}
				if v := f.MkYoung(f.MkOld(e, l), l); !f.Young(v, l) {
					fail("!young(mkyoung(mkold))", v)
				}
				if v := f.MkOld(f.MkYoung(e, l), l); f.Young(v, l) {
					fail("young(mkold(mkyoung))", v)
				}
				if v := f.MkDirty(f.MkClean(e, l), l); !f.Dirty(v, l) {
					fail("!dirty(mkdirty(mkclean))", v)
				}
				if v := f.MkClean(f.MkDirty(e, l), l); f.Dirty(v, l) {
					fail("dirty(mkclean(mkdirty))", v)
				}
				if v := f.MkWrite(f.Wrprotect(e, l), l); !f.Write(v, l) {
					fail("!write(mkwrite(wrprotect))", v)
				}
				if v := f.Wrprotect(f.MkWrite(e, l), l); f.Write(v, l) {
					fail("write(wrprotect(mkwrite))", v)
				}
				if v := f.Wrprotect(e, l); f.Dirty(v, l) {
					fail("dirty(wrprotect(pfn_pte))", v)
				}
				if v := f.Wrprotect(f.MkClean(e, l), l); f.Dirty(v, l) {
					fail("dirty(wrprotect(mkclean))", v)
				}
				// wrprotect keeps dirtiness (x86 saved dirty, arm64 DBM).
				if v := f.Wrprotect(f.MkDirty(e, l), l); !f.Dirty(v, l) {
					fail("!dirty(wrprotect(mkdirty))", v)
				}
				// A hardware-dirty arm64 entry: mkwrite then mkdirty.
				if v := f.Wrprotect(f.MkDirty(f.MkWrite(e, l), l), l); !f.Dirty(v, l) || f.Write(v, l) {
					fail("wrprotect lost hardware dirt", v)
				}
				for _, v := range []pgtable.Entry{
					f.MkOld(e, l), f.MkYoung(e, l), f.MkDirty(e, l), f.MkClean(e, l),
					f.MkWrite(e, l), f.Wrprotect(e, l), f.MkSpecial(e, l),
				} {
					if f.PFN(v, l) != pfn || !f.Present(v, l) {
						fail("frame or presence lost", v)
					}
				}
			}
		}
	})
}

// TestSoftwareBits checks special, soft-dirty, uffd-wp and cont round
// trips where the arch has the bit, and their absence where it does not.
func TestSoftwareBits(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		f := &a.Format
		e := f.MkPTE(7, srw)
		l := pgtable.PTE
		if got := f.Special(f.MkSpecial(e, l), l); got != fa.special {
			t.Errorf("special(mkspecial) = %v, want %v", got, fa.special)
		}
		if !fa.special && f.MkSpecial(e, l) != e {
			t.Error("mkspecial changed an entry on an arch without the bit")
		}
		if got := f.SoftDirty(f.MkSoftDirty(e, l), l); got != fa.softDirty {
			t.Errorf("soft_dirty(mksoft_dirty) = %v, want %v", got, fa.softDirty)
		}
		if f.SoftDirty(f.ClearSoftDirty(f.MkSoftDirty(e, l), l), l) {
			t.Error("soft_dirty(clear_soft_dirty(mksoft_dirty))")
		}
		if !fa.softDirty && (f.MkSoftDirty(e, l) != e || f.SoftDirty(f.MkDirty(e, l), l)) {
			t.Error("soft-dirty on an arch without it")
		}
		if fa.softDirty {
			// pte_mkdirty sets soft-dirty on x86 and s390.
			if !f.SoftDirty(f.MkDirty(f.ClearSoftDirty(e, l), l), l) {
				t.Error("mkdirty did not set soft-dirty")
			}
			// pte_modify keeps it as it was.
			d := f.ClearSoftDirty(f.MkDirty(e, l), l)
			if f.SoftDirty(f.Modify(d, l, ro), l) || !f.SoftDirty(f.Modify(f.MkSoftDirty(d, l), l, ro), l) {
				t.Error("modify changed soft-dirty")
			}
		}
		u := f.MkUffdWP(e, l)
		if f.UffdWP(u, l) != fa.uffdWP {
			t.Errorf("uffd_wp(mkuffd_wp) = %v, want %v", f.UffdWP(u, l), fa.uffdWP)
		}
		if f.Write(u, l) {
			t.Error("mkuffd_wp left the entry writable")
		}
		if f.UffdWP(f.ClearUffdWP(u, l), l) {
			t.Error("uffd_wp(clear_uffd_wp(mkuffd_wp))")
		}
		wantCont := fa.contPTEs != 0
		if got := f.Cont(f.MkCont(e), l); got != wantCont {
			t.Errorf("cont(mkcont) = %v, want %v", got, wantCont)
		}
		if f.Cont(f.MkNonCont(f.MkCont(e)), l) {
			t.Error("cont(mknoncont(mkcont))")
		}
		if !wantCont && f.MkCont(e) != e {
			t.Error("mkcont changed an entry on an arch without the bit")
		}
		// The flags survive pte_modify.
		s := f.MkSpecial(e, l)
		if fa.special && !f.Special(f.Modify(s, l, ro), l) {
			t.Error("modify lost special")
		}
		if wantCont && !f.Cont(f.Modify(f.MkCont(e), l, ro), l) {
			t.Error("modify lost cont")
		}
	})
}

// TestRawProtections compares pfn_pte(pfn, vm_get_page_prot(prot)) with the
// values Linux computes.
func TestRawProtections(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		f := &a.Format
		const pfn = 0x1234
		pa := pgtable.Entry(pfn) << a.Geometry.PageShift
		for prot, want := range fa.prots {
			if got := f.MkPTE(pfn, prot); got != pa|want {
				t.Errorf("pfn_pte(%#x, prot %#x) = %#x, want %#x", pfn, prot, uint64(got), uint64(pa|want))
			}
		}
		if got := f.MkKernel(pfn, true); got != pa|fa.kernelRW {
			t.Errorf("PAGE_KERNEL pte = %#x, want %#x", uint64(got), uint64(pa|fa.kernelRW))
		}
		if got := f.MkKernel(pfn, false); got != pa|fa.kernelRO {
			t.Errorf("PAGE_KERNEL_RO pte = %#x, want %#x", uint64(got), uint64(pa|fa.kernelRO))
		}
		if len(fa.leafLevels) > 0 {
			l := fa.leafLevels[len(fa.leafLevels)-1]
			hp := framesFor(a, l)
			hpa := pgtable.Entry(hp) << a.Geometry.PageShift
			if got := f.MkHugeAt(l, hp, srw); got != hpa|fa.hugeShared {
				t.Errorf("%s leaf shared rw = %#x, want %#x", l, uint64(got), uint64(hpa|fa.hugeShared))
			}
		}
	})
}

// TestLeafConversion checks that splitting and collapsing keep frame,
// write, dirty and young: HugeToPTE and PTEToHuge round trips at every
// leaf level, and that a huge leaf converts to the pte pfn_pte gives.
func TestLeafConversion(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := &a.Format
		for _, l := range levelsUnderTest(a)[1:] {
			lb := f.HugeLevelBits[l]
			pfn := framesFor(a, l)
			for prot := pgtable.Prot(0); prot < 16; prot++ {
				base := f.MkHugeAt(l, pfn, prot)
				if p := f.HugeToPTE(base &^ lb); p != f.MkPTE(pfn, prot) {
					t.Errorf("%s prot %#x: huge->pte %#x, pfn_pte gives %#x", l, prot, uint64(p), uint64(f.MkPTE(pfn, prot)))
				}
				variants := []pgtable.Entry{
					base, f.MkOld(base, l), f.MkDirty(base, l), f.MkClean(base, l),
					f.MkWrite(base, l), f.Wrprotect(f.MkDirty(base, l), l),
					f.MkDirty(f.MkWrite(base, l), l), f.MkOld(f.MkDirty(f.MkWrite(base, l), l), l),
				}
				for _, h := range variants {
					p := f.HugeToPTE(h &^ lb)
					pt := pgtable.PTE
					if f.PFN(p, pt) != pfn || f.Write(p, pt) != f.Write(h, l) ||
						f.Dirty(p, pt) != f.Dirty(h, l) || f.Young(p, pt) != f.Young(h, l) ||
						f.Present(p, pt) != f.Present(h, l) || f.HWWritable(p, pt) != f.HWWritable(h, l) ||
						f.HWReadable(p, pt) != f.HWReadable(h, l) || f.Exec(p, pt) != f.Exec(h, l) {
						t.Errorf("%s prot %#x: huge %#x -> pte %#x changed state", l, prot, uint64(h), uint64(p))
					}
					if back := f.PTEToHuge(p) | lb; back != h {
						t.Errorf("%s prot %#x: huge %#x -> pte %#x -> huge %#x", l, prot, uint64(h), uint64(p), uint64(back))
					}
					if !f.IsLeaf(f.PTEToHuge(p)|lb, l) {
						t.Errorf("%s: PTEToHuge(%#x) is not a leaf", l, uint64(p))
					}
				}
			}
		}
	})
}

// TestHardwarePermissions checks what the MMU may do without a fault.
func TestHardwarePermissions(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		fa := archFacts(a.Name)
		f := &a.Format
		for _, l := range levelsUnderTest(a) {
			pfn := framesFor(a, l)
			e := mk(f, l, pfn, srw) // young and clean, as pfn_pte gives it
			young, old := f.MkYoung(e, l), f.MkOld(e, l)
			if !f.HWReadable(young, l) {
				t.Errorf("%s: young entry %#x not readable", l, uint64(young))
			}
			if got := f.HWReadable(old, l); got != fa.hwYoung {
				t.Errorf("%s: old entry %#x readable = %v, want %v", l, uint64(old), got, fa.hwYoung)
			}
			clean := f.MkClean(young, l)
			if got := f.HWWritable(clean, l); got != fa.hwDirty {
				t.Errorf("%s: clean writable %#x writable = %v, want %v", l, uint64(clean), got, fa.hwDirty)
			}
			dirty := f.MkDirty(young, l)
			if !f.HWWritable(dirty, l) {
				t.Errorf("%s: dirty writable %#x not writable", l, uint64(dirty))
			}
			if f.HWWritable(f.Wrprotect(dirty, l), l) || f.HWWritable(mk(f, l, pfn, ro), l) {
				t.Errorf("%s: read-only entry writable", l)
			}
			if f.HWWritable(f.MkOld(dirty, l), l) && !fa.hwYoung {
				t.Errorf("%s: old entry writable without hardware young", l)
			}
			none := mk(f, l, pfn, pnone)
			if f.HWReadable(none, l) || f.HWWritable(none, l) || f.Readable(none, l) {
				t.Errorf("%s: PROT_NONE entry %#x accessible", l, uint64(none))
			}
			if !f.Present(none, l) {
				t.Errorf("%s: PROT_NONE entry not present", l)
			}
			if !f.Readable(mk(f, l, pfn, ro), l) {
				t.Errorf("%s: read-only entry not readable", l)
			}
			if !f.User(e, l) {
				t.Errorf("%s: user entry %#x not user", l, uint64(e))
			}
			if f.Exec(mk(f, l, pfn, srw), l) != (a.Name == "um" || a.Name == "um32") {
				t.Errorf("%s: exec of a non-exec entry", l)
			}
			if !f.Exec(mk(f, l, pfn, srwx), l) {
				t.Errorf("%s: exec entry not executable", l)
			}
		}
	})
}

// TestDirtyEncodings pins the dirty rules that differ between arches to
// Linux's raw values.
func TestDirtyEncodings(t *testing.T) {
	get := func(name string) *pgtable.Format {
		a := mustArch(t, name)
		return &a.Format
	}
	const pa = 0x1234 << 12
	t.Run("x86_64 saved dirty", func(t *testing.T) {
		f := get("x86_64")
		e := f.MkDirty(f.MkPTE(0x1234, srw), pgtable.PTE) // 0x...67 | soft-dirty
		if e != pa|0x8000_0000_0000_0867 {
			t.Fatalf("mkdirty = %#x", uint64(e))
		}
		w := f.Wrprotect(e, pgtable.PTE)
		if w != pa|0x8400_0000_0000_0825 {
			t.Fatalf("wrprotect(dirty) = %#x, want saved dirty (bit 58) and no bit 6", uint64(w))
		}
		if got := f.MkWrite(w, pgtable.PTE); got != e {
			t.Fatalf("mkwrite(wrprotect(dirty)) = %#x, want %#x", uint64(got), uint64(e))
		}
	})
	t.Run("arm64 DBM", func(t *testing.T) {
		f := get("arm64")
		e := f.MkPTE(0x1234, srw) // clean: RDONLY and WRITE
		if f.Dirty(e, pgtable.PTE) {
			t.Fatal("PAGE_SHARED dirty")
		}
		hw := e &^ 0x80 // the MMU clears RDONLY on write (DBM)
		if !f.Dirty(hw, pgtable.PTE) {
			t.Fatal("hardware-dirty entry not dirty")
		}
		w := f.Wrprotect(hw, pgtable.PTE)
		if w != pa|0x00e0_0000_0000_0fc3 {
			t.Fatalf("wrprotect(hw dirty) = %#x, want PTE_DIRTY set, WRITE clear, RDONLY set", uint64(w))
		}
		// pte_mkwrite_novma (Linux 6.18 on) clears RDONLY only of an
		// entry with PTE_DIRTY: a clean entry stays clean, writable
		// through DBM.
		if got := f.MkWrite(f.MkPTE(0x1234, ro), pgtable.PTE); got != pa|0x0068_0000_0000_0fc3 {
			t.Fatalf("mkwrite(PAGE_READONLY) = %#x, want WRITE set and RDONLY kept", uint64(got))
		}
		if got := f.MkWrite(w, pgtable.PTE); got != pa|0x00e8_0000_0000_0f43 {
			t.Fatalf("mkwrite(wrprotect(hw dirty)) = %#x, want WRITE and PTE_DIRTY set, RDONLY clear", uint64(got))
		}
		if got := f.MkClean(hw, pgtable.PTE); got != e {
			t.Fatalf("mkclean = %#x, want %#x", uint64(got), uint64(e))
		}
	})
	t.Run("s390x invalid and protect", func(t *testing.T) {
		f := get("s390x")
		e := f.MkPTE(0x1234, srw) // 0x335: PROTECT until dirty
		if got := f.MkDirty(e, pgtable.PTE); got != pa|0x13f {
			t.Fatalf("mkdirty = %#x, want PROTECT cleared, DIRTY|SOFT_DIRTY set", uint64(got))
		}
		if got := f.MkOld(e, pgtable.PTE); got != pa|0x731 {
			t.Fatalf("mkold = %#x, want INVALID set", uint64(got))
		}
		if got := f.MkYoung(f.MkOld(f.MkPTE(0x1234, pnone), pgtable.PTE), pgtable.PTE); got != pa|0x605 {
			t.Fatalf("mkyoung(PROT_NONE) = %#x: INVALID must stay without READ", uint64(got))
		}
	})
	t.Run("sparc64 valid and W", func(t *testing.T) {
		f := get("sparc64")
		e := f.MkPTE(0x1234, srw)
		const spa = 0x1234 << 13
		if got := f.MkDirty(e, pgtable.PTE); got != spa|0x8000_0000_0000_0fb2 {
			t.Fatalf("mkdirty = %#x, want MODIFIED and W", uint64(got))
		}
		if got := f.MkOld(e, pgtable.PTE); got != spa|0x3b0 {
			t.Fatalf("mkold = %#x, want VALID and ACCESSED clear", uint64(got))
		}
		if got := f.MkWrite(f.MkPTE(0x1234, ro), pgtable.PTE); got&0x2 != 0 {
			t.Fatalf("mkwrite of a clean entry set W: %#x", uint64(got))
		}
	})
	t.Run("um needsync", func(t *testing.T) {
		a := mustArch(t, "um")
		mem := newMemory(t, a)
		pt := newPT(t, a, mem, false)
		if err := pt.Map(0x40_0000, 0x1000, 0x1234, pgtable.MapOpts{Prot: srw}); err != nil {
			t.Fatal(err)
		}
		tr, _ := pt.Lookup(0x40_0000)
		if tr.Entry != pa|0xe3 {
			t.Fatalf("set_pte wrote %#x, want PAGE_SHARED|NEEDSYNC", uint64(tr.Entry))
		}
		pt.PTEClear(0x40_0000, tr.Ptr)
		if got := tr.Ptr.Peek(); got != 0x2 || !pt.IsNone(got, pgtable.PTE) {
			t.Fatalf("pte_clear left %#x, want _PAGE_NEEDSYNC alone", uint64(got))
		}
	})
}

// TestMovePTE checks sparc64's move_pte and that the others have none.
func TestMovePTE(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		if a.Name != "sparc64" {
			if a.MovePTE != nil {
				t.Fatal("move_pte on an arch without D-cache aliasing")
			}
			return
		}
		f := &a.Format
		e := f.MkPTE(0x1234, srw)
		m := &cost.Meter{}
		cases := []struct {
			name     string
			e        pgtable.Entry
			old, new uint64
			flushes  uint64
		}{
			{"same colour", e, 0x10000, 0x40000, 0},
			{"colour change", e, 0x10000, 0x12000, 1},
			{"colour change back", e, 0x12000, 0x40000, 1},
			{"not present", 0, 0x10000, 0x12000, 0},
			{"PROT_NONE is present", f.MkPTE(0x1234, pnone), 0x10000, 0x12000, 1},
		}
		for _, c := range cases {
			m.Reset()
			if got := a.MovePTE(m, c.e, c.old, c.new); got != c.e {
				t.Errorf("%s: move_pte changed the entry to %#x", c.name, uint64(got))
			}
			if got := m.Count(cost.DcacheFlushes); got != c.flushes {
				t.Errorf("%s: %d D-cache flushes, want %d", c.name, got, c.flushes)
			}
		}
		// A nil meter is tolerated.
		if a.MovePTE(nil, e, 0, 0x2000) != e {
			t.Error("nil meter")
		}
	})
}

func mustArch(t *testing.T, name string) *arch.Arch {
	t.Helper()
	a, err := archs.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
