package mremap

import (
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
)

// TestMoveVMAsCounted: move_vmas counts move_vma's fixed work once per
// VMA moved, whatever the path (tables, PTEs, DontUnmap, a short move
// rolled back), and never for what Linux does without move_vma (no-op,
// shrink, grow in place, errors found before the move).
func TestMoveVMAsCounted(t *testing.T) {
	cases := []struct {
		name string
		// run sets up and runs one mremap on e after a reset of the
		// counters, and reports its error.
		run  func(e *env) error
		want uint64
	}{
		{"fixed move by tables", func(e *env) error {
			return e.move(e.src, 2*e.pmd, e.dst, MayMove|Fixed)
		}, 1},
		{"fixed move by PTEs", func(e *env) error {
			return e.move(e.src+e.ps, 4*e.ps, e.dst+e.ps, MayMove|Fixed)
		}, 1},
		{"dontunmap", func(e *env) error {
			return e.move(e.src, e.pmd, e.dst, MayMove|DontUnmap|Fixed)
		}, 1},
		{"grow by moving", func(e *env) error {
			e.mmap(e.src+2*e.pmd, e.ps, mmu.MapFlags{File: "blocker"})
			e.reset()
			_, err := e.mremap(e.src, 2*e.pmd, 4*e.pmd, MayMove, 0)
			return err
		}, 1},
		{"two VMAs moved together", func(e *env) error {
			e.mmap(e.src+3*e.pmd, e.pmd, mmu.MapFlags{File: "f"})
			e.reset()
			_, err := e.mremap(e.src, 4*e.pmd, 4*e.pmd, MayMove|Fixed, e.dst)
			return err
		}, 2},
		{"no-op", func(e *env) error {
			_, err := e.mremap(e.src, 2*e.pmd, 2*e.pmd, 0, 0)
			return err
		}, 0},
		{"shrink in place", func(e *env) error {
			_, err := e.mremap(e.src, 2*e.pmd, e.pmd, 0, 0)
			return err
		}, 0},
		{"grow in place", func(e *env) error {
			_, err := e.mremap(e.src, 2*e.pmd, 3*e.pmd, 0, 0)
			return err
		}, 0},
		{"overlap refused", func(e *env) error {
			_, err := e.mremap(e.src, 2*e.pmd, 2*e.pmd, MayMove|Fixed, e.src+e.pmd)
			if err == nil {
				t.Fatal("overlapping move succeeded")
			}
			return nil
		}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "x86_64")
			e.mmap(e.src, 2*e.pmd, mmu.MapFlags{})
			e.fill(e.src, 2*e.pmd, e.ps)
			e.reset()
			if err := c.run(e); err != nil {
				t.Fatal(err)
			}
			if got := e.count(cost.MoveVMAs); got != c.want {
				t.Errorf("move_vmas = %d, want %d", got, c.want)
			}
		})
	}
	// A move that runs out of memory for a table still did move_vma's
	// work (copy_vma, the unmap of the new range) once.
	t.Run("short move rolled back", func(t *testing.T) {
		e := newEnv(t, "x86_64")
		e.mmap(e.src, 2*e.pmd+5*e.ps, mmu.MapFlags{})
		e.fill(e.src, 2*e.pmd+5*e.ps, e.ps)
		e.reset()
		e.m.Memory().SetFailPolicy(phys.FailPolicy{Nth: 1})
		_, err := e.mremap(e.src, 2*e.pmd+5*e.ps, 2*e.pmd+5*e.ps, MayMove|Fixed, e.dst+2*e.pud)
		e.m.Memory().SetFailPolicy(phys.FailPolicy{})
		wantErr(t, err, mmu.ENOMEM)
		if got := e.count(cost.MoveVMAs); got != 1 {
			t.Errorf("move_vmas = %d, want 1", got)
		}
	})
}

// move is a move of [from, from+length) to to with flags, after a reset of
// the counters.
func (e *env) move(from, length, to uint64, fl Flags) error {
	e.reset()
	_, err := e.mremap(from, length, length, fl, to)
	return err
}
