package fork_test

import (
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// contBits returns how many PTEs of [va, va+size) in mm carry PTE_CONT.
func contBits(t *testing.T, mm *mmu.MM, va, size uint64) int {
	t.Helper()
	fm := &mm.Machine().Arch().Format
	ps := mm.Machine().Arch().PageSize()
	n := 0
	for a := va; a < va+size; a += ps {
		e, _ := pte(t, mm, a)
		if fm.Cont(e, pgtable.PTE) {
			n++
		}
	}
	return n
}

// TestContPTEFork checks fork over arm64 contiguous blocks on every
// granule. Batched: full blocks are write-protected in place in the
// parent (they stay folded) and created contiguous in the child by
// set_ptes(nr): no fold, unfold or convert. One PTE at a time: the
// parent's wrprotect of one entry unfolds every block, and the child's
// set_ptes(1) of each block's last entry folds it again.
func TestContPTEFork(t *testing.T) {
	for _, name := range []string{"arm64", "arm64-16k", "arm64-64k"} {
		for _, batch := range []string{"on", "off"} {
			t.Run(name+"/batch="+batch, func(t *testing.T) {
				m := newMachine(t, name, "thp", "never", "fork_batch", batch)
				geo := &m.Arch().Geometry
				ps := geo.PageSize()
				cont := uint64(m.Arch().Caps.ContPTEs)
				folio := 4 * cont * ps // four blocks per folio
				if folio > geo.Size(pgtable.PMD) {
					folio = geo.Size(pgtable.PMD)
				}
				size := 2 * folio
				blocks := size / (cont * ps)
				p := newMM(t, m, "parent")
				va := base(m)
				mmap(t, p, va, size, rw, mmu.MapFlags{FolioSize: folio})
				writeAll(t, p, va, size, 11)
				if got := contBits(t, p, va, size); got != int(size/ps) {
					t.Fatalf("parent has %d contiguous PTEs before the fork, want all %d", got, size/ps)
				}
				m.Reset()
				c, err := fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				if got := contBits(t, c, va, size); got != int(size/ps) {
					t.Errorf("child has %d contiguous PTEs, want all %d", got, size/ps)
				}
				wantParent, wantUnfolds, wantFolds := int(size/ps), uint64(0), uint64(0)
				if batch == "off" {
					wantParent, wantUnfolds, wantFolds = 0, blocks, blocks
				}
				if got := contBits(t, p, va, size); got != wantParent {
					t.Errorf("parent keeps %d contiguous PTEs, want %d", got, wantParent)
				}
				for _, x := range []struct {
					e    cost.Event
					want uint64
				}{
					{cost.ContpteUnfolds, wantUnfolds},
					{cost.ContpteFolds, wantFolds},
					{cost.ContpteConverts, wantUnfolds + wantFolds},
					{cost.TLBFlushMM, 1},
					{cost.TLBFlushRange, 0},
				} {
					if got := count(p, x.e); got != x.want {
						t.Errorf("%s = %d, want %d", x.e, got, x.want)
					}
				}
				// Both write-protected, through the contiguous blocks too.
				fm := &m.Arch().Format
				for a := va; a < va+size; a += ps {
					pe, _ := pte(t, p, a)
					ce, _ := pte(t, c, a)
					if fm.Write(pe, pgtable.PTE) || fm.Write(ce, pgtable.PTE) {
						t.Fatalf("%#x: writable after fork (parent %#x, child %#x)", a, pe, ce)
					}
				}
				// COW in both afterwards.
				must(t, p.Write(0, va+ps, 1))
				check(t, m)
				must(t, c.Write(1, va+2*ps, 2))
				check(t, m)
				if v, _ := c.Read(1, va+ps); v != 12 {
					t.Errorf("child reads %d, want 12", v)
				}
				if v, _ := p.Read(0, va+2*ps); v != 13 {
					t.Errorf("parent reads %d, want 13", v)
				}
			})
		}
	}
}

// TestContPTEForkEdges forks a VMA that ends inside a folded block (the
// VMA was split by madvise(MADV_DONTFORK) on its upper part, which does
// not touch the PTEs): the batched write-protect unfolds only that cut
// block in the parent, and the child's part of it is written without
// PTE_CONT; whole blocks stay folded in the parent and are contiguous in
// the child.
func TestContPTEForkEdges(t *testing.T) {
	m := newMachine(t, "arm64", "thp", "never")
	ps := m.Arch().PageSize()
	cont := uint64(m.Arch().Caps.ContPTEs)
	p := newMM(t, m, "parent")
	va := base(m)
	folio := 4 * cont * ps
	mmap(t, p, va, folio, rw, mmu.MapFlags{FolioSize: folio})
	writeAll(t, p, va, folio, 5)
	cut := (3*cont + 5) * ps
	hi, err := p.SplitVMA(p.VMAs()[0], va+cut)
	must(t, err)
	hi.Flags |= mmu.VMDontCopy
	check(t, m)
	m.Reset()
	c, err := fork.Fork(p, "child")
	must(t, err)
	check(t, m)
	if got := count(p, cost.ContpteUnfolds); got != 1 {
		t.Errorf("fork unfolded %d blocks, want 1 (the cut one)", got)
	}
	for blk := uint64(0); blk < 4; blk++ {
		a := va + blk*cont*ps
		wantP, wantC := int(cont), int(cont)
		if blk == 3 {
			wantP, wantC = 0, 0
		}
		if got := contBits(t, p, a, cont*ps); got != wantP {
			t.Errorf("parent block %d: %d contiguous PTEs, want %d", blk, got, wantP)
		}
		if blk == 3 {
			if got := contBits(t, c, a, 5*ps); got != wantC {
				t.Errorf("child block 3: %d contiguous PTEs, want 0", got)
			}
			continue
		}
		if got := contBits(t, c, a, cont*ps); got != wantC {
			t.Errorf("child block %d: %d contiguous PTEs, want %d", blk, got, wantC)
		}
	}
	// The parent's don't-fork part stays writable.
	fm := &m.Arch().Format
	if e, _ := pte(t, p, va+cut); !fm.Write(e, pgtable.PTE) {
		t.Errorf("parent PTE past the copied VMA write-protected: %#x", e)
	}
}
