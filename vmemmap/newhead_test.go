package vmemmap

import (
	"testing"

	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// writable reports whether a kernel translation allows writes.
func (r *rig) writable(tr pgtable.Translation) bool {
	return r.m.Arch().Format.Write(tr.Entry, pgtable.PTE)
}

// TestNewHeadPage: vmemmap_remap_free allocates a new head page, copies
// the head struct pages into it and maps it read-write at the reuse
// address; the tails map it read-only; the old head frame goes back to
// the buddy allocator with the tail frames (split_page made them
// freeable one by one), so the old block of struct-page memory is freed
// whole. Restore leaves the new head in place and maps fresh copies of
// it read-write at the tails (the single-folio entry points; the batched
// flow calls the same vmemmap_remap_free). Check runs after every step.
func TestNewHeadPage(t *testing.T) {
	r := newRig(t, "x86_64", 4, 1<<30, "hvo", "off")
	p := r.pool(m2)
	r.alloc(p, 1)
	f := p.Folios()[0]
	reuse, end := p.vmemmapRange(f)
	kpt := r.m.Kernel()
	before := map[uint64]phys.PFN{}
	for va := reuse; va < end; va += 4096 {
		tr, ok := kpt.Translate(va)
		if !ok {
			t.Fatalf("vmemmap %#x unmapped", va)
		}
		before[va] = tr.PFN
	}
	r.knob("hvo", "on")
	if err := p.OptimizeFolio(f); err != nil {
		t.Fatal(err)
	}
	r.check()
	head, _ := kpt.Translate(reuse)
	if head.PFN == before[reuse] {
		t.Fatalf("head still maps the old frame %#x", head.PFN)
	}
	if !r.writable(head) {
		t.Fatal("new head mapped read-only")
	}
	// The copy carries the head struct pages, with the
	// optimised flag set before the remap ("very subtle").
	if got, want := r.m.Memory().Content(head.PFN), headDigest(f.PFN, f.Order, r.m.Memory().Page(f.PFN).Flags()); got != want {
		t.Fatalf("new head content %#x, want the head struct pages %#x", got, want)
	}
	for va := reuse; va < end; va += 4096 {
		if r.m.Memory().IsAllocated(before[va]) {
			t.Fatalf("old vmemmap frame %#x of %#x still allocated", before[va], va)
		}
		if va == reuse {
			continue
		}
		tr, _ := kpt.Translate(va)
		if tr.PFN != head.PFN || r.writable(tr) {
			t.Fatalf("tail %#x maps %#x writable=%v, want the new head %#x read-only", va, tr.PFN, r.writable(tr), head.PFN)
		}
	}
	if err := p.RestoreFolio(f); err != nil {
		t.Fatal(err)
	}
	r.check()
	again, _ := kpt.Translate(reuse)
	if again.PFN != head.PFN {
		t.Fatalf("restore moved the head from %#x to %#x", head.PFN, again.PFN)
	}
	seen := map[phys.PFN]bool{head.PFN: true}
	for va := reuse + 4096; va < end; va += 4096 {
		tr, _ := kpt.Translate(va)
		if seen[tr.PFN] || !r.writable(tr) {
			t.Fatalf("restored tail %#x maps %#x writable=%v, want a page of its own, read-write", va, tr.PFN, r.writable(tr))
		}
		seen[tr.PFN] = true
	}
}
