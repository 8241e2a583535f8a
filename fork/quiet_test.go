package fork_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
)

// TestQuietForkCounts pins the simulator's fast paths to the slow ones
// they stand in for: a tracer turns every quiet path off (folio_pte_batch
// reading the parent's PTEs one by one, zap_pte_range reading every entry
// of an emptied table, set_ptes and wrprotect_ptes entry by entry), so
// the same random workload — fork, then COW faults, reads and a munmap —
// is run untraced and traced on every arch, and every meter (each
// address space's, the machine's, the kernel's) must count exactly the
// same events, the end states (translations, contents, refcounts,
// mapcounts, RSS) must be equal and sim_ns too.
func TestQuietForkCounts(t *testing.T) {
	for _, name := range archs.Names() {
		// Three layouts on x86_64, whose tables the benchmarks time; one
		// elsewhere (under the race detector every step's Check is slow).
		seeds := uint64(1)
		if name == "x86_64" {
			seeds = 3
		}
		for seed := uint64(1); seed <= seeds; seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				var ms [2]*mmu.Machine
				for i, traced := range []bool{false, true} {
					m := newMachine(t, name)
					newMM(t, m, "parent")
					for _, o := range randomLayout(m, seed) {
						o(t, m)
						check(t, m)
					}
					m.Reset()
					if traced {
						m.SetTracer(cost.TextTracer{W: io.Discard})
					}
					p, _ := m.MM("parent")
					_, err := fork.Fork(p, "child")
					must(t, err)
					check(t, m)
					for _, o := range afterFork(m, seed) {
						o(t, m)
						check(t, m)
					}
					ms[i] = m
				}
				quiet, slow := ms[0], ms[1]
				if d := diffStates(capture(t, quiet), capture(t, slow)); d != "" {
					t.Fatalf("untraced and traced runs differ: %s", d)
				}
				meters := func(m *mmu.Machine) map[string]cost.Counts {
					out := map[string]cost.Counts{"machine": m.Meter().Counts(), "kernel": m.Kernel().Meter().Counts()}
					for _, mm := range m.MMs() {
						out[mm.Name()] = mm.Meter().Counts()
					}
					return out
				}
				mq, msl := meters(quiet), meters(slow)
				if len(mq) != len(msl) {
					t.Fatalf("%d meters untraced, %d traced", len(mq), len(msl))
				}
				for owner, q := range mq {
					s, ok := msl[owner]
					if !ok {
						t.Fatalf("meter %s only in the untraced run", owner)
					}
					for ev := range q {
						if q[ev] != s[ev] {
							t.Errorf("%s %s: untraced %d, traced %d", owner, cost.Event(ev), q[ev], s[ev])
						}
					}
				}
				if a, b := quiet.SimNS(), slow.SimNS(); a != b {
					t.Errorf("sim_ns: untraced %d, traced %d", a, b)
				}
				if p, _ := quiet.MM("parent"); count(p, cost.ForkPTEs) == 0 {
					t.Fatal("the fork copied no PTE")
				}
			})
		}
	}
}
