package proptest

import (
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
)

// TestContPTEPartialUnmapKeepsSpreadDirty replays what the long mode
// found on arm64-64k: a shared file folio folded into one contpte block,
// one page dirtied, then unmapped. The unfold before the zap repaints
// every entry with the block's dirty bit, as contpte_convert does, so with
// contpte on the 31 entries left are dirty and without it they are clean:
// Linux differs the same way. The twins must still compare equal once
// LoosenAD has reduced the bits to what Linux keeps equal (the file
// folio is dirty in both).
func TestContPTEPartialUnmapKeepsSpreadDirty(t *testing.T) {
	a, err := archs.ByName("arm64-64k")
	if err != nil {
		t.Fatal(err)
	}
	var tw twin
	for _, x := range twins(a) {
		if x.name == "contpte" {
			tw = x
		}
	}
	if tw.name == "" {
		t.Fatal("arm64-64k has no contpte twin")
	}
	w, err := newWorld("arm64-64k", tw, false)
	if err != nil {
		t.Fatal(err)
	}
	const base, size = 0x10_0000_0000, 2 << 20
	ps := a.PageSize()
	for _, o := range []op{
		{Kind: opMmap, Addr: base, Len: size, Prot: mmu.ProtRead | mmu.ProtWrite,
			Flags: mmu.MapFlags{Shared: true, Populate: true, FolioSize: size}},
		{Kind: opPin, Addr: base, Len: ps},
		{Kind: opWrite, Addr: base},
		{Kind: opMunmap, Addr: base, Len: ps},
	} {
		if _, err := w.apply(o); err != nil {
			t.Fatalf("%v: %v\n%s", o, err, w.history())
		}
	}
	// The raw folio-level bits do differ, as in Linux.
	fast, slow := Take(w.ms[0].m), Take(w.ms[1].m)
	if len(fast.Folios) != 1 || len(slow.Folios) != 1 {
		t.Fatalf("want one folio in each, got %d and %d", len(fast.Folios), len(slow.Folios))
	}
	if !fast.Folios[0].DirtyPTE || slow.Folios[0].DirtyPTE {
		t.Errorf("dirty PTEs left: contpte on %v, off %v; want true, false (the unfold spread dirty)",
			fast.Folios[0].DirtyPTE, slow.Folios[0].DirtyPTE)
	}
	if !fast.Folios[0].Dirty || !slow.Folios[0].Dirty {
		t.Errorf("folio dirty flag: on %v, off %v; want both set by the zap of a dirty PTE",
			fast.Folios[0].Dirty, slow.Folios[0].Dirty)
	}
}
