package mremap

import (
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
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
