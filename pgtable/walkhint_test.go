package pgtable_test

import (
	"math/rand/v2"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// refWalk is Walk without hints and without counting: the table reached
// from the root for level want, and the reads a walk from the root makes.
func refWalk(pt *pgtable.PageTable, addr uint64, want pgtable.Level) (pgtable.Ptr, bool, uint64) {
	t := pt.Root()
	reads := uint64(0)
	for {
		i := pt.IndexOf(t, addr)
		if want <= t.Level() {
			return pgtable.Ptr{T: t, I: i}, true, reads
		}
		reads++
		c := t.Child(i)
		if c == nil {
			return pgtable.Ptr{T: t, I: i}, false, reads
		}
		t = c
	}
}

// TestWalkHints checks that the walk hints (the last PTE table and the
// last table reached for a PMD entry) change nothing but the simulator's
// speed: over random walks for PMD and PTE entries, interleaved with maps
// and unmaps that attach and free tables, every Walk returns the entry a
// walk from the root reaches and counts the reads that walk makes.
func TestWalkHints(t *testing.T) {
	pt, _ := newX86(t)
	const base = uint64(0x7f00_0000_0000)
	r := rand.New(rand.NewPCG(7, 12))
	// Addresses in 3 PUD entries (3 PMD tables), 4 PMD entries each.
	var addrs []uint64
	for pud := uint64(0); pud < 3; pud++ {
		for pmd := uint64(0); pmd < 4; pmd++ {
			for page := uint64(0); page < 3; page++ {
				addrs = append(addrs, base+pud<<30+pmd<<21+page<<12)
			}
		}
	}
	opts := pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite}
	hits := 0
	for step := 0; step < 4000; step++ {
		a := addrs[r.IntN(len(addrs))]
		switch r.IntN(10) {
		case 0:
			if _, ok := pt.Lookup(a); !ok {
				if err := pt.Map(a, 1<<12, phys.PFN(0x1000+step), opts); err != nil {
					t.Fatal(err)
				}
			}
			continue
		case 1:
			if _, ok := pt.Lookup(a); ok {
				if err := pt.Unmap(a&^(1<<21-1), 1<<21); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		want := pgtable.PMD
		if r.IntN(2) == 0 {
			want = pgtable.PTE
		}
		refP, refOK, reads := refWalk(pt, a, want)
		before := pt.Meter().Count(cost.EntryReads)
		p, ok := pt.Walk(a, want)
		got := pt.Meter().Count(cost.EntryReads) - before
		if p != refP || ok != refOK || got != reads {
			t.Fatalf("step %d: Walk(%#x, %s) = %v %v counting %d reads, want %v %v counting %d",
				step, a, want, p, ok, got, refP, refOK, reads)
		}
		if ok && reads > 0 {
			hits++
		}
	}
	if hits < 1000 {
		t.Fatalf("only %d walks reached a table below the root", hits)
	}
}
