package mremap

import (
	"io"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// TestMoveTwoPMDs moves two fully populated, PMD-aligned PMDs of anonymous
// memory on every arch: x86-64 and arm64 move the two PTE tables whole,
// the others (no HAVE_MOVE_PMD) move every PTE; either way the data
// follows and the old range is gone.
func TestMoveTwoPMDs(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, name)
			size := 2 * e.pmd
			e.mmap(e.src, size, mmu.MapFlags{})
			e.fill(e.src, size, e.ps)
			e.reset()
			if got := e.mustMremap(e.src, size, size, MayMove|Fixed, e.dst); got != e.dst {
				t.Fatalf("new address %#x, want %#x", got, e.dst)
			}
			pages := size / e.ps
			want := map[cost.Event]uint64{cost.PMDMoves: 0, cost.PTEMoves: pages, cost.PUDMoves: 0}
			if tableMoves(e.a) {
				want = map[cost.Event]uint64{cost.PMDMoves: 2, cost.PTEMoves: 0, cost.PUDMoves: 0}
			}
			e.wantCounts(want)
			e.wantContent(e.dst, size, e.ps, func(a uint64) uint64 { return a - e.dst + e.src })
			e.wantUnmapped(e.src, size)
			if n := len(e.mm.VMAs()); n != 1 {
				t.Fatalf("%d VMAs, want 1", n)
			}
			// The moved pages stay usable: writing them faults nothing.
			faults := e.count(cost.Faults)
			if err := e.mm.Write(0, e.dst+e.ps, 7); err != nil {
				t.Fatal(err)
			}
			e.check()
			if e.count(cost.Faults) != faults {
				t.Fatal("a moved, writable page faulted on write")
			}
		})
	}
}

// TestDecisionOrder runs one PUD-aligned move of a PUD's worth of memory
// on x86-64 with each combination of the knobs: the PUD moves whole when
// allowed, else every PMD, else every PTE. Each table move and each
// extent with a present PTE flushes once; the unmap of the source flushes
// once more when it frees tables (the PMD table, or the PTE tables),
// which the PUD move leaves none of.
func TestDecisionOrder(t *testing.T) {
	cases := []struct {
		name  string
		knobs []string
		want  map[cost.Event]uint64
	}{
		{"pud", nil, map[cost.Event]uint64{cost.PUDMoves: 1, cost.PMDMoves: 0, cost.PTEMoves: 0, cost.TLBFlushRange: 1}},
		{"pmd", []string{"move_pud=off"}, map[cost.Event]uint64{cost.PUDMoves: 0, cost.PMDMoves: 512, cost.PTEMoves: 0, cost.TLBFlushRange: 513}},
		{"pte", []string{"move_pud=off", "move_pmd=off"}, map[cost.Event]uint64{cost.PUDMoves: 0, cost.PMDMoves: 0, cost.PTEMoves: 512, cost.TLBFlushRange: 513}},
		// HAVE_MOVE_PUD without HAVE_MOVE_PMD: the PUD still moves.
		{"pud-only", []string{"move_pmd=off"}, map[cost.Event]uint64{cost.PUDMoves: 1, cost.PMDMoves: 0, cost.PTEMoves: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "x86_64", c.knobs...)
			// One page per PMD: every PTE table exists, the check stays cheap.
			e.mmap(e.src, e.pud, mmu.MapFlags{})
			e.fill(e.src, e.pud, e.pmd)
			e.reset()
			e.mustMremap(e.src, e.pud, e.pud, MayMove|Fixed, e.dst)
			e.wantCounts(c.want)
			e.wantContent(e.dst, e.pud, e.pmd, func(a uint64) uint64 { return a - e.dst + e.src })
			e.wantUnmapped(e.src, e.pud)
			// The moved tables work at the new address, and the old
			// address can be mapped afresh.
			if err := e.mm.Write(0, e.dst+e.ps, 1); err != nil {
				t.Fatal(err)
			}
			e.mmap(e.src, e.ps, mmu.MapFlags{})
			if err := e.mm.Write(0, e.src, 2); err != nil {
				t.Fatal(err)
			}
			e.check()
			if v, _ := e.mm.Content(e.dst); v != e.src {
				t.Fatalf("moved page reads %#x", v)
			}
		})
	}
}

// TestGetExtent checks get_extent against hand-computed cases: the extent
// is PMD_SIZE only when both addresses are aligned and a whole PMD is
// left.
func TestGetExtent(t *testing.T) {
	const m, k = 1 << 20, 1 << 10
	cases := []struct {
		name                string
		old, new, end, size uint64
		want                uint64
	}{
		{"aligned", 4 * m, 8 * m, 12 * m, 2 * m, 2 * m},
		{"old unaligned", 4*m + 4*k, 8 * m, 12 * m, 2 * m, 2*m - 4*k},
		{"new unaligned", 4 * m, 8*m + 8*k, 12 * m, 2 * m, 2*m - 8*k},
		{"new nearer its boundary", 4*m + 4*k, 8*m + 1*m, 12 * m, 2 * m, 1 * m},
		{"short tail", 4 * m, 8 * m, 4*m + 12*k, 2 * m, 12 * k},
		{"pud", 1 << 30, 3 << 30, 4 << 30, 1 << 30, 1 << 30},
		{"top of the space", ^uint64(0) - 2*m + 1, 8 * m, ^uint64(0), 2 * m, 2*m - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &pmc{oldAddr: c.old, newAddr: c.new, oldEnd: c.end}
			if got := p.getExtent(c.size); got != c.want {
				t.Fatalf("extent %#x, want %#x", got, c.want)
			}
		})
	}
}

// TestDifferential moves copies of one state by tables and by PTEs and
// compares translations, contents, refcounts, mapcounts and RSS: the
// table moves are an optimisation of the per-PTE path and may change
// nothing else. The state mixes fully and sparsely populated anonymous
// memory, large folios, a shared file mapping, a THP and an unaligned
// range, and moves each to an aligned and to a mutually aligned address.
func TestDifferential(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			build := func(knobs ...string) (*env, [][2]uint64) {
				e := newEnv(t, name, knobs...)
				pmd, ps := e.pmd, e.ps
				var moved [][2]uint64
				type region struct {
					off, size, step uint64
					fl              mmu.MapFlags
				}
				// Regions sit 6 PMDs apart; odd ones move 2 PMDs further,
				// so no target overlaps another region.
				regions := []region{
					{0, 2 * pmd, ps, mmu.MapFlags{}},
					{6 * pmd, 3 * pmd, 7 * ps, mmu.MapFlags{}},
					{12 * pmd, 2 * pmd, ps, mmu.MapFlags{FolioSize: 16 * ps}},
					{18 * pmd, 2 * pmd, 3 * ps, mmu.MapFlags{File: "f", Shared: true}},
					// Unaligned start and end, mutually aligned target.
					{24*pmd + 5*ps, pmd + 9*ps, ps, mmu.MapFlags{}},
				}
				if e.a.Caps.THPLevels[pgtable.PMD] {
					regions = append(regions, region{30 * pmd, 2 * pmd, pmd, mmu.MapFlags{FolioSize: pmd}})
				}
				// Map and fill everything first, so both machines hold the
				// same folios at the same frames; then move.
				for _, r := range regions {
					e.mmap(e.src+r.off, r.size, r.fl)
					e.fill(e.src+r.off, r.size, r.step)
				}
				for i, r := range regions {
					src := e.src + r.off
					dst := e.dst + r.off
					if i%2 == 1 {
						dst += 2 * pmd // a second layout: still mutually aligned
					}
					e.mustMremap(src, r.size, r.size, MayMove|Fixed, dst)
					moved = append(moved, [2]uint64{dst, r.size}, [2]uint64{src, r.size})
				}
				return e, moved
			}
			fast, ranges := build()
			off := []string{}
			if tableMoves(fast.a) {
				off = []string{"move_pmd=off", "move_pud=off"}
			}
			slow, _ := build(off...)
			if d := diffStates(fast.snapshot(ranges...), slow.snapshot(ranges...)); d != "" {
				t.Fatalf("table moves and per-PTE moves differ:\n%s", d)
			}
			for i := 0; i < len(ranges); i += 2 {
				dst, size := ranges[i][0], ranges[i][1]
				src := ranges[i+1][0]
				for a := dst; a < dst+size; a += fast.ps {
					got, _ := fast.mm.Content(a)
					if got != 0 && got != a-dst+src {
						t.Fatalf("content %#x = %#x, want 0 or %#x", a, got, a-dst+src)
					}
				}
				fast.wantUnmapped(src, size)
			}
			if tableMoves(fast.a) && fast.count(cost.PMDMoves) == 0 {
				t.Fatal("the fast machine moved no table")
			}
			if slow.count(cost.PMDMoves)+slow.count(cost.PUDMoves) != 0 {
				t.Fatal("the slow machine moved a table")
			}
		})
	}
}

// TestMovedSubtreeAddresses moves a PMD table with its PTE tables (one
// PUD entry) on arm64 and then frees one of the moved PTE tables while a
// CPU's walk cache holds it: the gather must flush the table's new
// address (arm64 drops walk-cache entries by address), so every table
// below a moved one must know where it now is.
func TestMovedSubtreeAddresses(t *testing.T) {
	e := newEnv(t, "arm64")
	pmd, ps := e.pmd, e.ps
	e.mmap(e.src, e.pud, mmu.MapFlags{})
	e.fill(e.src, e.pud, pmd)
	e.mustMremap(e.src, e.pud, e.pud, MayMove|Fixed, e.dst)
	if e.count(cost.PUDMoves) != 1 {
		t.Fatalf("pud_moves = %d", e.count(cost.PUDMoves))
	}
	// Empty the PTE table of the second PMD (its page moves out PTE by
	// PTE, the VMA stays), make the range inaccessible, and let CPU 0
	// walk to it: the walk caches the empty table, the access faults.
	k := e.dst + pmd
	e.mustMremap(k, ps, ps, MayMove|Fixed|DontUnmap, e.dst+2*e.pud+ps)
	if err := e.mm.Mprotect(k, pmd, mmu.ProtNone); err != nil {
		t.Fatal(err)
	}
	if _, err := e.mm.Read(0, k); err == nil {
		t.Fatal("read of a PROT_NONE page succeeded")
	}
	e.check()
	// Unmapping the PMD frees the table and flushes only its address.
	if err := e.mm.Munmap(k, pmd); err != nil {
		t.Fatal(err)
	}
	e.check()
}

// TestQuietBulkMove checks the one-pass move_ptes loop that quiet tables
// with the generic PTE operations take (pgtable.MovePTEsQuiet) against
// the entry-by-entry loop, which a tracer forces: same end state, same
// counts of every event.
func TestQuietBulkMove(t *testing.T) {
	run := func(traced bool) (*env, [][2]uint64) {
		e := newEnv(t, "x86_64", "move_pmd=off", "move_pud=off")
		if traced {
			e.m.SetTracer(cost.TextTracer{W: io.Discard})
		}
		e.mmap(e.src, 3*e.pmd, mmu.MapFlags{})
		e.fill(e.src, 3*e.pmd, 3*e.ps)
		e.mmap(e.src+4*e.pmd, e.pmd, mmu.MapFlags{File: "f", Shared: true})
		e.fill(e.src+4*e.pmd, e.pmd, 5*e.ps)
		e.reset()
		e.mustMremap(e.src, 3*e.pmd, 3*e.pmd, MayMove|Fixed, e.dst+e.ps)
		e.mustMremap(e.src+4*e.pmd, e.pmd, e.pmd, MayMove|Fixed, e.dst+4*e.pmd)
		return e, [][2]uint64{{e.dst, 6 * e.pmd}, {e.src, 6 * e.pmd}}
	}
	bulk, ranges := run(false)
	slow, _ := run(true)
	if d := diffStates(bulk.snapshot(ranges...), slow.snapshot(ranges...)); d != "" {
		t.Fatalf("bulk and entry-by-entry moves differ:\n%s", d)
	}
	if b, s := bulk.mm.Meter().Counts(), slow.mm.Meter().Counts(); b != s {
		for ev := range b {
			if b[ev] != s[ev] {
				t.Errorf("%s: bulk %d, entry by entry %d", cost.Event(ev), b[ev], s[ev])
			}
		}
	}
	if bulk.count(cost.PTEMoves) == 0 {
		t.Fatal("nothing moved")
	}
}
