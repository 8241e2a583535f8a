package fidelity

import (
	"strings"
	"testing"

	"github.com/ptsim/ptsim/cost"
)

// TestMremapExperimentsInBand: F1-F5 land in their bands, and F5's note
// names the primitive that dominates.
func TestMremapExperimentsInBand(t *testing.T) {
	for _, e := range mremapExperiments() {
		t.Run(e.ID, func(t *testing.T) {
			r, err := e.Run()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range r.Measures {
				if !m.InBand() {
					t.Errorf("%s %s: %.3g%s outside [%g, %g]", e.ID, m.Name, m.Value, m.Unit, m.Band.Lo, m.Band.Hi)
				}
			}
			if e.ID == "F5" && !strings.Contains(r.Note, "tlbi_ops 9") {
				t.Errorf("F5's note does not name TLBIs as the dominant primitive: %s", r.Note)
			}
			t.Logf("%s: %s", e.ID, r.Note)
		})
	}
}

// TestMremapRunCounts pins the work behind F1-F5 to what Linux does for a
// 1 GiB move: 262,144 PTE moves, 512 PMD moves or one PUD move; one flush
// per table move or per 2 MiB extent, or with the pre-4.18 rules one per
// 64 dirty pages (a TLBI per page on arm64) and a single deferred flush
// for the table moves. The unmap of the source adds one flush when it
// frees tables.
func TestMremapRunCounts(t *testing.T) {
	cases := []struct {
		arch  string
		knobs []string
		want  map[cost.Event]uint64
	}{
		{"x86_64", pathPTE, map[cost.Event]uint64{cost.PTEMoves: 262144, cost.PMDMoves: 0, cost.TLBFlushRange: 512 + 1, cost.LocalFullFlushes: 512 + 1}},
		// 13 entry reads per 2 MiB: get_old_pud (2), alloc_new_pud (1),
		// get_old_pmd (3), alloc_new_pmd (2), the two PMD entries moved
		// (2), and the unmap's zap walk of the emptied range (3).
		{"x86_64", pathPMD, map[cost.Event]uint64{cost.PMDMoves: 512, cost.PTEMoves: 0, cost.TLBFlushRange: 512 + 1, cost.RmapLocks: 512, cost.EntryReads: 13 * 512}},
		{"x86_64", pathPUD, map[cost.Event]uint64{cost.PUDMoves: 1, cost.TLBFlushRange: 1, cost.PTAllocs: 0}},
		{"arm64", pathPMD, map[cost.Event]uint64{cost.PMDMoves: 512, cost.TLBIOps: 512 + 1}},
		{"arm64", append([]string{"mremap_latency_limit=64"}, pathPTE...), map[cost.Event]uint64{cost.PTEMoves: 262144, cost.TLBFlushRange: 4096 + 1, cost.TLBIOps: 262144 + 1}},
		{"arm64", append([]string{"mremap_latency_limit=64"}, pathPMD...), map[cost.Event]uint64{cost.PMDMoves: 512, cost.TLBFlushRange: 1 + 1}},
	}
	for _, c := range cases {
		r, err := RunMremap1GiB(c.arch, c.knobs...)
		if err != nil {
			t.Fatal(err)
		}
		for ev, n := range c.want {
			if got := r.Counts[ev]; got != n {
				t.Errorf("%s %v: %s = %d, want %d", c.arch, c.knobs, ev, got, n)
			}
		}
	}
}
