package mremap

import (
	"io"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// TestQuietMoveCounts pins the simulator's fast paths on mremap's table
// moves to the slow paths a tracer forces (zap_pte_range over emptied
// PTE tables, the zap of an emptied PMD table, the PTE loops): on every
// arch and every path (PTEs, PTE tables, PMD tables), a mremap of
// several PMDs (one partly populated, one a hole) and its move back end
// in the same state with the same counts on every meter, traced or not.
func TestQuietMoveCounts(t *testing.T) {
	paths := []struct {
		name  string
		knobs []string
	}{
		{"pte", []string{"move_pmd=off", "move_pud=off"}},
		{"pmd", []string{"move_pud=off"}},
		{"pud", nil},
	}
	for _, name := range archs.Names() {
		for _, path := range paths {
			t.Run(name+"/"+path.name, func(t *testing.T) {
				run := func(traced bool) (*env, [][2]uint64) {
					e := newEnv(t, name, path.knobs...)
					// A whole PUD where one is at most 1 GiB (the PUD
					// path), else 4 PMDs.
					size := 4 * e.pmd
					if e.pud <= 1<<30 && name != "um32" {
						size = max(size, e.pud)
					}
					e.mmap(e.src, size, mmu.MapFlags{})
					e.fill(e.src, 2*e.pmd, e.ps)           // two whole PMDs
					e.fill(e.src+3*e.pmd, e.pmd/2, 3*e.ps) // a PMD half, sparsely
					e.reset()
					if traced {
						e.m.SetTracer(cost.TextTracer{W: io.Discard})
					}
					e.mustMremap(e.src, size, size, MayMove|Fixed, e.dst)
					e.mustMremap(e.dst, size, size, MayMove|Fixed, e.src)
					// Pages past the fourth PMD were never touched.
					return e, [][2]uint64{{e.src, 4 * e.pmd}, {e.dst, 4 * e.pmd}}
				}
				quiet, ranges := run(false)
				slow, _ := run(true)
				if d := diffStates(quiet.snapshot(ranges...), slow.snapshot(ranges...)); d != "" {
					t.Fatalf("untraced and traced moves differ:\n%s", d)
				}
				meters := func(e *env) []cost.Counts {
					return []cost.Counts{e.mm.Meter().Counts(), e.m.Meter().Counts(), e.m.Kernel().Meter().Counts()}
				}
				q, s := meters(quiet), meters(slow)
				for i := range q {
					for ev := range q[i] {
						if q[i][ev] != s[i][ev] {
							t.Errorf("meter %d %s: untraced %d, traced %d", i, cost.Event(ev), q[i][ev], s[i][ev])
						}
					}
				}
				if quiet.count(cost.EntryReads) == 0 {
					t.Fatal("no entry read counted")
				}
			})
		}
	}
}
