package mremap

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
)

// TestENOMEMEveryAllocation fails every allocation of a move in turn: the
// move stops at that point, moves back what it moved, unmaps the new
// range and returns ENOMEM, leaving the source exactly as it was and the
// model consistent. Each arch runs an aligned move by tables (where the
// arch has them) and by PTEs, and a realigned unaligned move.
func TestENOMEMEveryAllocation(t *testing.T) {
	type variant struct {
		name  string
		knobs []string
		// off is the source's offset in its PMD (the target's too).
		off uint64
	}
	for _, name := range archs.Names() {
		vs := []variant{{"aligned", nil, 0}, {"realigned", nil, 3}}
		a, _ := archs.ByName(name)
		if a.Caps.HaveMovePMD {
			vs = append(vs, variant{"ptes", []string{"move_pmd=off", "move_pud=off"}, 0})
		}
		for _, v := range vs {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				setup := func() (*env, uint64, uint64, uint64) {
					e := newEnv(t, name, v.knobs...)
					src := e.src + v.off*e.ps
					dst := e.dst + 2*e.pud + v.off*e.ps
					size := 2*e.pmd + 5*e.ps
					e.mmap(src, size, mmu.MapFlags{})
					e.fill(src, size, 3*e.ps)
					return e, src, dst, size
				}
				e, src, dst, size := setup()
				e.m.Memory().SetFailPolicy(phys.FailPolicy{})
				e.mustMremap(src, size, size, MayMove|Fixed, dst)
				n := e.m.Memory().Allocations()
				if n == 0 {
					t.Fatal("the move allocated nothing: no failure point to test")
				}
				for i := uint64(1); i <= n; i++ {
					e, src, dst, size := setup()
					before := e.snapshot([2]uint64{src, size}, [2]uint64{dst, size})
					e.m.Memory().SetFailPolicy(phys.FailPolicy{Nth: i})
					_, err := e.mremap(src, size, size, MayMove|Fixed, dst)
					e.m.Memory().SetFailPolicy(phys.FailPolicy{})
					wantErr(t, err, mmu.ENOMEM)
					wantErr(t, err, ErrShortMove)
					if d := diffStates(before, e.snapshot([2]uint64{src, size}, [2]uint64{dst, size})); d != "" {
						t.Fatalf("allocation %d of %d failed and the source changed:\n%s", i, n, d)
					}
					// The source still works: a write lands, no fault for a
					// page that was mapped.
					if err := e.mm.Write(0, src, 1); err != nil {
						t.Fatal(err)
					}
					e.check()
				}
			})
		}
	}
}

// TestRollbackTakesRmapLocks fails the last page-table allocation of a
// move PTE by PTE into a fresh VMA (need_rmap_locks false: no rmap lock
// forward): the rollback moves the two whole PMD extents already moved
// back with the rmap locks held around each move_ptes (pmc_revert always
// sets need_rmap_locks), one anon_vma lock each.
func TestRollbackTakesRmapLocks(t *testing.T) {
	for _, name := range []string{"x86_64", "arm64"} {
		t.Run(name, func(t *testing.T) {
			setup := func() (*env, uint64) {
				e := newEnv(t, name, "move_pmd=off", "move_pud=off")
				size := 2*e.pmd + 5*e.ps
				e.mmap(e.src, size, mmu.MapFlags{})
				e.fill(e.src, size, 3*e.ps)
				e.reset()
				return e, size
			}
			e, size := setup()
			e.m.Memory().SetFailPolicy(phys.FailPolicy{})
			e.mustMremap(e.src, size, size, MayMove|Fixed, e.dst)
			if got := e.count(cost.RmapLocks); got != 0 {
				t.Fatalf("forward move into a fresh VMA took %d rmap locks, want 0", got)
			}
			n := e.m.Memory().Allocations()
			e, size = setup()
			e.m.Memory().SetFailPolicy(phys.FailPolicy{Nth: n})
			_, err := e.mremap(e.src, size, size, MayMove|Fixed, e.dst)
			e.m.Memory().SetFailPolicy(phys.FailPolicy{})
			wantErr(t, err, ErrShortMove)
			if got := e.count(cost.RmapLocks); got != 2 {
				t.Fatalf("rollback took %d rmap locks, want 2 (one per extent moved back)", got)
			}
			e.check()
		})
	}
}

// TestVMAAllocFailures fails every VMA allocation (vm_area_alloc and
// vm_area_dup, phys.KindSlab) of a move of the middle of a VMA in turn.
// copy_vma's allocation fails the call with ENOMEM and nothing changed;
// the splits of the source's unmap come after the pages moved, and
// unmap_source_vma is best effort: the call returns the new address, the
// pages are there, and the old range, still mapped if the split failed,
// maps nothing.
func TestVMAAllocFailures(t *testing.T) {
	for _, name := range []string{"x86_64", "arm64", "s390x"} {
		for _, v := range []struct {
			fl     Flags
			newLen uint64 // in pages
		}{{MayMove | Fixed, 4}, {MayMove, 6}} {
			fl := v.fl
			t.Run(fmt.Sprintf("%s/%s", name, fl), func(t *testing.T) {
				slab := []phys.Kind{phys.KindSlab}
				setup := func() *env {
					e := newEnv(t, name)
					e.mmap(e.src, 16*e.ps, mmu.MapFlags{})
					e.fill(e.src, 16*e.ps, e.ps)
					return e
				}
				old := func(e *env) uint64 { return e.src + 4*e.ps }
				e := setup()
				e.m.Memory().SetFailPolicy(phys.FailPolicy{Kinds: slab})
				e.mustMremap(old(e), 4*e.ps, v.newLen*e.ps, fl, e.dst)
				n := e.m.Memory().Allocations()
				if n < 2 {
					t.Fatalf("%d VMA allocations: want copy_vma's and the source unmap's", n)
				}
				for i := uint64(1); i <= n; i++ {
					e := setup()
					ps := e.ps
					before := e.snapshot([2]uint64{e.src, 16 * ps})
					e.m.Memory().SetFailPolicy(phys.FailPolicy{Nth: i, Kinds: slab})
					got, err := e.mremap(old(e), 4*ps, v.newLen*ps, fl, e.dst)
					e.m.Memory().SetFailPolicy(phys.FailPolicy{})
					if i == 1 {
						wantErr(t, err, mmu.ENOMEM)
						if d := diffStates(before, e.snapshot([2]uint64{e.src, 16 * ps})); d != "" {
							t.Fatalf("copy_vma failed and the source changed:\n%s", d)
						}
						continue
					}
					if err != nil {
						t.Fatalf("VMA allocation %d of %d (the source unmap) failed the call after the move: %v", i, n, err)
					}
					e.wantContent(got, 4*ps, ps, func(a uint64) uint64 { return a - got + old(e) })
					if !e.mm.PageTable().IsEmpty(old(e), 4*ps) {
						t.Fatalf("allocation %d: the old range still maps pages", i)
					}
					e.wantContent(e.src, 4*ps, ps, func(a uint64) uint64 { return a })
					e.wantContent(e.src+8*ps, 8*ps, ps, func(a uint64) uint64 { return a })
					e.check()
				}
			})
		}
	}
}
