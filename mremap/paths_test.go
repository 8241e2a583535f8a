package mremap

import (
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// TestRealign covers try_realign_addr: a move whose addresses have the
// same offset in their PMDs starts at the PMD boundary below when that
// grabs no other mapping, so the first PMD moves whole; the
// |DDDDddddSSSSssss| case (the address is not its VMA's start), a mapping
// in the gap, different offsets and a range too short to reach the next
// boundary are refused.
func TestRealign(t *testing.T) {
	const k = 1 << 10
	cases := []struct {
		name string
		// vma is the source mapping, relative to src; move the range
		// [off, off+size) of it to dst+dstOff. guard maps one page at
		// dst+guard when non-zero, srcGuard one at src+srcGuard.
		vmaOff, vmaSize, off, size, dstOff, guard, srcGuard uint64
		pmdMoves, pteMoves                                  uint64
	}{
		{name: "taken", vmaOff: 1 << 20, vmaSize: 4 << 20, off: 1 << 20, size: 4 << 20, dstOff: 1 << 20,
			pmdMoves: 2, pteMoves: 256},
		{name: "refused: not the VMA's start (|DDDDddddSSSSssss|)", vmaOff: 0, vmaSize: 6 << 20, off: 1 << 20, size: 4 << 20, dstOff: 1 << 20,
			pmdMoves: 1, pteMoves: 512},
		{name: "refused: mapping in the gap", vmaOff: 1 << 20, vmaSize: 4 << 20, off: 1 << 20, size: 4 << 20, dstOff: 1 << 20, guard: 4 * k,
			pmdMoves: 1, pteMoves: 512},
		{name: "refused: mapping in the source's gap", vmaOff: 1 << 20, vmaSize: 4 << 20, off: 1 << 20, size: 4 << 20, dstOff: 1 << 20, srcGuard: 8 * k,
			pmdMoves: 1, pteMoves: 512},
		{name: "refused: not mutually aligned", vmaOff: 1 << 20, vmaSize: 4 << 20, off: 1 << 20, size: 4 << 20, dstOff: 1<<20 + 4*k,
			pmdMoves: 0, pteMoves: 1024},
		{name: "refused: does not reach the boundary", vmaOff: 1 << 20, vmaSize: 512 * k, off: 1 << 20, size: 512 * k, dstOff: 1 << 20,
			pmdMoves: 0, pteMoves: 128},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "x86_64")
			e.mmap(e.src+c.vmaOff, c.vmaSize, mmu.MapFlags{})
			e.fill(e.src+c.vmaOff, c.vmaSize, e.ps)
			if c.guard != 0 {
				e.mmap(e.dst+c.guard, e.ps, mmu.MapFlags{})
			}
			if c.srcGuard != 0 {
				e.mmap(e.src+c.srcGuard, e.ps, mmu.MapFlags{File: "guard"})
			}
			e.reset()
			e.mustMremap(e.src+c.off, c.size, c.size, MayMove|Fixed, e.dst+c.dstOff)
			e.wantCounts(map[cost.Event]uint64{cost.PMDMoves: c.pmdMoves, cost.PTEMoves: c.pteMoves})
			e.wantContent(e.dst+c.dstOff, c.size, e.ps, func(a uint64) uint64 { return a - e.dst - c.dstOff + e.src + c.off })
			e.wantUnmapped(e.src+c.off, c.size)
		})
	}
}

// TestStackMoveFallback is exec's stack move (relocate_vma_down): the
// stack VMA is extended down and its pages moved down by one PMD within
// the same VMA, starting four pages below a PMD boundary. With the 2023
// realign the move starts at the boundary and every PMD moves whole. When
// a mapping below the new start forbids the realign, the first four pages
// move one by one, which leaves the old PTE table (now empty) exactly
// where the next PMD must go: move_normal_pmd sees a destination that is
// not empty, warns, and falls back to moving PTEs, never overwriting it.
func TestStackMoveFallback(t *testing.T) {
	for _, guarded := range []bool{false, true} {
		name := "realigned"
		if guarded {
			name = "destination not none"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "x86_64")
			pmd, ps := e.pmd, e.ps
			p := e.src + 4*pmd
			start, end := p+pmd-4*ps, p+3*pmd
			if guarded {
				e.mmap(p-pmd, ps, mmu.MapFlags{})
			}
			e.mmap(start, end-start, mmu.MapFlags{})
			e.fill(start, end-start, ps)
			e.reset()
			v := e.mm.FindVMA(start)
			newStart := start - pmd
			e.mm.MmapWriteLock()
			v.Start = newStart // vma_expand
			mv := &Move{Old: v, New: v, OldAddr: start, NewAddr: newStart, Len: end - start, ForStack: true}
			moved := MovePageTables(e.mm, mv)
			if err := e.mm.UnmapRange(end-pmd, end); err != nil {
				t.Fatal(err)
			}
			e.mm.MmapWriteUnlock()
			e.check()
			if moved != end-start {
				t.Fatalf("moved %#x, want %#x", moved, end-start)
			}
			e.wantContent(newStart, end-start, ps, func(a uint64) uint64 { return a + pmd })
			if guarded {
				// Each fallback leaves the next destination's table behind
				// as well: both whole PMDs go PTE by PTE.
				if mv.Stats.Realigned || mv.Stats.DstNotNone != 2 {
					t.Fatalf("stats %+v, want no realign and two destination-not-none fallbacks", mv.Stats)
				}
				e.wantCounts(map[cost.Event]uint64{cost.PMDMoves: 0, cost.PTEMoves: 4 + 512 + 512})
				return
			}
			if !mv.Stats.Realigned || mv.Stats.DstNotNone != 0 {
				t.Fatalf("stats %+v, want a realign and no fallback", mv.Stats)
			}
			e.wantCounts(map[cost.Event]uint64{cost.PMDMoves: 3, cost.PTEMoves: 0})
		})
	}
}

// TestFlushRules counts flush_tlb_range calls: one per table move; one
// per move_ptes extent that moved a present PTE; none for an extent whose
// PTE table holds nothing, nor for an extent with no table. The unmap of
// the source adds one flush when it frees tables.
func TestFlushRules(t *testing.T) {
	for _, tables := range []bool{true, false} {
		name := "tables"
		var knobs []string
		if !tables {
			name, knobs = "ptes", []string{"move_pmd=off"}
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "x86_64", knobs...)
			pmd := e.pmd
			// PMD 0 full, PMD 1 emptied (moved PTE by PTE to a misaligned
			// target with MREMAP_DONTUNMAP: its table stays, holding no
			// entry), PMD 2 never touched (no table).
			e.mmap(e.src, 3*pmd, mmu.MapFlags{})
			e.fill(e.src, 2*pmd, e.ps)
			e.mustMremap(e.src+pmd, pmd, pmd, MayMove|DontUnmap|Fixed, e.dst+8*pmd+e.ps)
			e.reset()
			e.mustMremap(e.src, 3*pmd, 3*pmd, MayMove|Fixed, e.dst)
			if tables {
				// Both tables move whole, even the empty one.
				e.wantCounts(map[cost.Event]uint64{cost.PMDMoves: 2, cost.PTEMoves: 0, cost.TLBFlushRange: 2 + 1})
				return
			}
			e.wantCounts(map[cost.Event]uint64{cost.PMDMoves: 0, cost.PTEMoves: 512, cost.TLBFlushRange: 1 + 1, cost.PTAllocs: 2})
		})
	}
}

// TestLatencyLimit models the kernel before 4.18 (mremap_latency_limit=64):
// move_ptes moves 64 pages at a time and flushes each such extent when it
// moved a dirty PTE; clean PTEs and table moves leave one flush for the
// end of the move.
func TestLatencyLimit(t *testing.T) {
	cases := []struct {
		name    string
		knobs   []string
		write   bool
		flushes uint64
		pte     uint64
	}{
		{"dirty ptes: one flush per 64 pages", []string{"move_pmd=off"}, true, 8 + 1, 512},
		{"clean ptes: one flush at the end", []string{"move_pmd=off"}, false, 1 + 1, 512},
		{"table moves: one flush at the end", nil, true, 1 + 1, 0},
		{"today: one flush per pmd extent", []string{"move_pmd=off", "mremap_latency_limit=0"}, true, 1 + 1, 512},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "x86_64", append([]string{"mremap_latency_limit=64"}, c.knobs...)...)
			e.mmap(e.src, e.pmd, mmu.MapFlags{})
			for a := e.src; a < e.src+e.pmd; a += e.ps {
				var err error
				if c.write {
					err = e.mm.Write(0, a, a)
				} else {
					_, err = e.mm.Read(0, a)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			e.check()
			e.reset()
			e.mustMremap(e.src, e.pmd, e.pmd, MayMove|Fixed, e.dst)
			e.wantCounts(map[cost.Event]uint64{cost.TLBFlushRange: c.flushes, cost.PTEMoves: c.pte})
		})
	}
}

// TestRmapLocks counts rmap lock acquisitions: a move into a fresh VMA
// takes them only for whole-table moves (always, since 2021); a move that
// merges into a VMA ahead of the source in rmap order (its file offset
// not above the source's) takes them around every move_ptes too.
func TestRmapLocks(t *testing.T) {
	cases := []struct {
		name   string
		knobs  []string
		merge  bool
		locks  uint64
		tables uint64
	}{
		{"fresh vma, tables", nil, false, 1, 1},
		{"fresh vma, ptes", []string{"move_pmd=off"}, false, 0, 0},
		{"merged vma, ptes", []string{"move_pmd=off"}, true, 1, 0},
		{"merged vma, tables", nil, true, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "x86_64", c.knobs...)
			pmd := e.pmd
			// The source maps file page 512 on; the VMA below the target
			// maps pages 0-511 of the same file, so the moved VMA
			// continues it and merges.
			e.mmap(e.src, pmd, mmu.MapFlags{File: "f", Shared: true, Offset: pmd})
			e.fill(e.src, pmd, e.ps)
			target := e.dst + 4*pmd
			if c.merge {
				e.mmap(target-pmd, pmd, mmu.MapFlags{File: "f", Shared: true})
			}
			e.reset()
			e.mustMremap(e.src, pmd, pmd, MayMove|Fixed, target)
			e.wantCounts(map[cost.Event]uint64{cost.RmapLocks: c.locks, cost.PMDMoves: c.tables})
			// Either way one VMA maps the file afterwards: the moved one,
			// or the one below the target that it merged into.
			vs := e.mm.VMAs()
			wantStart, wantPgOff := target, pmd/e.ps
			if c.merge {
				wantStart, wantPgOff = target-pmd, 0
			}
			if len(vs) != 1 || vs[0].Start != wantStart || vs[0].End != target+pmd || vs[0].PgOff != wantPgOff {
				t.Fatalf("VMAs %v, want one from %#x at file page %d", vs, wantStart, wantPgOff)
			}
		})
	}
}

// TestHugePMD moves THPs: whole when the extent covers the huge PMD (its
// deposited PTE table follows), split first when it does not.
func TestHugePMD(t *testing.T) {
	cases := []struct {
		name          string
		dstOff        uint64
		huge, pte     uint64
		deposits      int
		wantHugeAfter bool
	}{
		{"aligned: moved whole", 0, 2, 0, 2, true},
		{"misaligned: split and moved by ptes", 4096, 0, 1024, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "x86_64")
			pmd := e.pmd
			e.mmap(e.src, 2*pmd, mmu.MapFlags{FolioSize: pmd})
			e.fill(e.src, 2*pmd, pmd)
			if tr, ok := e.mm.Translate(e.src); !ok || tr.Level != 3 {
				t.Fatalf("not a huge pmd: %+v", tr)
			}
			e.reset()
			e.mustMremap(e.src, 2*pmd, 2*pmd, MayMove|Fixed, e.dst+c.dstOff)
			e.wantCounts(map[cost.Event]uint64{cost.HugePMDMoves: c.huge, cost.PTEMoves: c.pte})
			if got := e.mm.Deposits(); got != c.deposits {
				t.Fatalf("%d deposits, want %d", got, c.deposits)
			}
			tr, ok := e.mm.Translate(e.dst + c.dstOff)
			if !ok || (tr.Level == 3) != c.wantHugeAfter {
				t.Fatalf("translation after the move: %+v %v", tr, ok)
			}
			e.wantContent(e.dst+c.dstOff, 2*pmd, pmd, func(a uint64) uint64 { return a - e.dst - c.dstOff + e.src })
			// The moved THP still splits cleanly (its deposit is there).
			if err := e.mm.Munmap(e.dst+c.dstOff, e.ps); err != nil {
				t.Fatal(err)
			}
			e.check()
		})
	}
}

// TestMultiCPU moves tables and PTEs of an mm running on two CPUs: every
// flush reaches both (x86 IPIs) and no stale entry survives.
func TestMultiCPU(t *testing.T) {
	for _, knobs := range [][]string{nil, {"move_pmd=off"}} {
		e := newEnvCPUs(t, "x86_64", 2, knobs...)
		e.mmap(e.src, 2*e.pmd, mmu.MapFlags{})
		e.fill(e.src, 2*e.pmd, e.ps)
		for a := e.src; a < e.src+2*e.pmd; a += 64 * e.ps {
			if _, err := e.mm.Read(1, a); err != nil {
				t.Fatal(err)
			}
		}
		e.check()
		e.reset()
		e.mustMremap(e.src, 2*e.pmd, 2*e.pmd, MayMove|Fixed, e.dst)
		if e.count(cost.TLBIPIs) == 0 {
			t.Fatalf("%v: no IPI reached the second CPU", knobs)
		}
		for a := e.dst; a < e.dst+2*e.pmd; a += 64 * e.ps {
			if got, err := e.mm.Read(1, a); err != nil || got != a-e.dst+e.src {
				t.Fatalf("cpu1 reads %#x = %#x, %v", a, got, err)
			}
		}
		e.check()
	}
}

// TestUffdWP: a VMA with userfaultfd write-protect armed (without remap
// events) never moves whole tables, since every PTE must lose its uffd-wp
// bit on the way; the new VMA is not registered afterwards.
func TestUffdWP(t *testing.T) {
	e := newEnv(t, "x86_64")
	e.mmap(e.src, 2*e.pmd, mmu.MapFlags{})
	e.fill(e.src, 2*e.pmd, e.ps)
	v := e.mm.FindVMA(e.src)
	v.Flags |= mmu.VMUffdWP
	// Mark one PTE uffd-wp, as UFFDIO_WRITEPROTECT would.
	fm := &e.a.Format
	tr, _ := e.mm.Translate(e.src)
	e.mm.PageTable().RawSet(e.src, tr.Ptr, fm.MkUffdWP(tr.Entry, pgtable.PTE))
	e.m.TLB().FlushTLBPage(e.mm.TLBContext(), e.src)
	e.check()
	e.reset()
	e.mustMremap(e.src, 2*e.pmd, 2*e.pmd, MayMove|Fixed, e.dst)
	e.wantCounts(map[cost.Event]uint64{cost.PMDMoves: 0, cost.PTEMoves: 1024})
	tr, _ = e.mm.Translate(e.dst)
	if fm.UffdWP(tr.Entry, pgtable.PTE) {
		t.Fatal("the moved PTE kept its uffd-wp bit")
	}
	if nv := e.mm.FindVMA(e.dst); nv == nil || nv.Flags&mmu.VMUffdWP != 0 {
		t.Fatalf("new VMA %v still registered", nv)
	}
	e.wantContent(e.dst, 2*e.pmd, e.ps, func(a uint64) uint64 { return a - e.dst + e.src })
}
