package fork_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
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

// TestQuietForkRuns is TestQuietForkCounts on a layout made for the runs
// of small anonymous folios that an untraced fork copies in one step
// (nothing pinned, so the runs are taken): written 4K pages whose write
// bit changes inside a PTE table (an mprotect), zero-page PTEs from read
// faults, holes from a munmap, a 64K-folio stretch and a private file
// mapping inside the same tables, and a run crossing into the next PTE
// table. Untraced and traced forks must end in the same state with the
// same counts.
func TestQuietForkRuns(t *testing.T) {
	for _, name := range []string{"x86_64", "um", "sparc64", "s390x"} {
		t.Run(name, func(t *testing.T) {
			var ms [2]*mmu.Machine
			for i, traced := range []bool{false, true} {
				m := newMachine(t, name)
				p := newMM(t, m, "parent")
				ps := m.Arch().PageSize()
				pmd := m.Arch().Geometry.Size(pgtable.PMD)
				va := base(m) + pmd - 200*ps // runs cross a PTE table boundary
				mmap(t, p, va, 400*ps, rw, mmu.MapFlags{})
				writeAll(t, p, va, 300*ps, 7)
				for a := va + 300*ps; a < va+400*ps; a += ps {
					_, err := p.Read(0, a) // the zero page
					must(t, err)
				}
				must(t, p.Mprotect(va+40*ps, 30*ps, mmu.ProtRead))
				must(t, p.Munmap(va+100*ps, 5*ps))
				check(t, m)
				big := va + 400*ps + 16*ps
				big -= big % (16 * ps)
				mmap(t, p, big, 64*ps, rw, mmu.MapFlags{FolioSize: 16 * ps})
				writeAll(t, p, big, 64*ps, 9)
				mmap(t, p, big+64*ps, 32*ps, rw, mmu.MapFlags{File: "f"})
				writeAll(t, p, big+64*ps, 32*ps, 11)
				if p.HasPinned() {
					t.Fatal("the layout pinned a page: no runs")
				}
				m.Reset()
				if traced {
					m.SetTracer(cost.TextTracer{W: io.Discard})
				}
				_, err := fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				ms[i] = m
			}
			quiet, slow := ms[0], ms[1]
			if d := diffStates(capture(t, quiet), capture(t, slow)); d != "" {
				t.Fatalf("untraced and traced forks differ: %s", d)
			}
			for _, who := range []string{"parent", "child"} {
				q, _ := quiet.MM(who)
				s, _ := slow.MM(who)
				qc, sc := q.Meter().Counts(), s.Meter().Counts()
				for ev := range qc {
					if qc[ev] != sc[ev] {
						t.Errorf("%s %s: untraced %d, traced %d", who, cost.Event(ev), qc[ev], sc[ev])
					}
				}
			}
			if a, b := quiet.SimNS(), slow.SimNS(); a != b {
				t.Errorf("sim_ns: untraced %d, traced %d", a, b)
			}
		})
	}
}
