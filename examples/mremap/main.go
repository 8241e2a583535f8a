// Command mremap shows what mremap's page-table moving buys: one mremap
// of 1 GiB of written memory, moved PTE by PTE, by PTE tables (one PMD
// entry per 2 MiB) and by one PMD table (one PUD entry), with the work
// each path does and its simulated time; then the fidelity experiments
// F1-F5 beside the published figures; then why the 2018 seed measured
// 500x on arm64 while the merged patch reported 20x on x86.
//
//	go run ./examples/mremap
//
// The same moves are the script command `mremap` (testdata/mremap).
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/fidelity"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mremap:", err)
		os.Exit(1)
	}
}

// path is one way of moving the 1 GiB.
type path struct {
	name  string
	knobs []string
}

var (
	ptePath = path{"per PTE", []string{"move_pmd=off", "move_pud=off"}}
	pmdPath = path{"PTE tables (PMD moves)", []string{"move_pud=off"}}
	pudPath = path{"PMD table (PUD move)", nil}
	oldRule = "mremap_latency_limit=64"
)

// run writes the three parts to w.
func run(w io.Writer) error {
	if err := paths(w); err != nil {
		return err
	}
	if err := experiments(w); err != nil {
		return err
	}
	return explain(w)
}

// paths moves 1 GiB on x86-64 each way and prints the work.
func paths(w io.Writer) error {
	fmt.Fprintln(w, "=== One mremap of 1 GiB on x86_64 (written memory, PUD-aligned source and target)")
	fmt.Fprintf(w, "%-24s %12s %10s %9s %9s %12s  %s\n", "path", "sim time", "pte_moves", "pmd_moves", "pud_moves", "flush calls", "where the time goes")
	for _, p := range []path{ptePath, pmdPath, pudPath} {
		r, err := fidelity.RunMremap1GiB("x86_64", p.knobs...)
		if err != nil {
			return err
		}
		c := &r.Counts
		fmt.Fprintf(w, "%-24s %12s %10d %9d %9d %12d  %s\n", p.name, simTime(r.NS),
			c[cost.PTEMoves], c[cost.PMDMoves], c[cost.PUDMoves], c[cost.TLBFlushRange], top(c, "x86_64", 2))
	}
	fmt.Fprintln(w)
	return nil
}

// experiments prints F1-F5 beside the published figures.
func experiments(w io.Writer) error {
	fmt.Fprintln(w, "=== Fidelity F1-F5: ptsim beside the published figures (one cost table per arch)")
	var exps []fidelity.Experiment
	for _, e := range fidelity.All() {
		switch e.ID {
		case "F1", "F2", "F3", "F4", "F5":
			exps = append(exps, e)
		}
	}
	results := make([]fidelity.Result, len(exps))
	errs := make([]error, len(exps))
	for i, e := range exps {
		results[i], errs[i] = e.Run()
		if errs[i] != nil {
			return fmt.Errorf("%s: %w", e.ID, errs[i])
		}
	}
	fmt.Fprintln(w, fidelity.Format(exps, results, errs))
	return nil
}

// explain runs per-PTE and PMD moves on both arches under the pre-4.18
// rules (mremap_latency_limit=64) and today's, and prints why the seed's
// ratio and the merged patch's differ.
func explain(w io.Writer) error {
	fmt.Fprintln(w, "=== Why the seed saw 500x and the merged patch 20x")
	type row struct {
		arch, rules  string
		pte, pmd     fidelity.MremapRun
		flushes, tlb uint64
	}
	var rows []row
	for _, a := range []string{"arm64", "x86_64"} {
		for _, rules := range []string{"pre-4.18 (64-page extents)", "4.19 on (one flush per 2 MiB)"} {
			var extra []string
			if strings.HasPrefix(rules, "pre") {
				extra = []string{oldRule}
			}
			pte, err := fidelity.RunMremap1GiB(a, append(extra, ptePath.knobs...)...)
			if err != nil {
				return err
			}
			pmd, err := fidelity.RunMremap1GiB(a, append(extra, pmdPath.knobs...)...)
			if err != nil {
				return err
			}
			tlb := pte.Counts[cost.TLBIOps] + pte.Counts[cost.LocalFullFlushes] + pte.Counts[cost.Invlpg]
			rows = append(rows, row{a, rules, pte, pmd, pte.Counts[cost.TLBFlushRange], tlb})
		}
	}
	fmt.Fprintf(w, "%-7s %-30s %12s %12s %8s  %s\n", "arch", "flush rule", "per PTE", "PMD moves", "ratio", "per-PTE flushes, TLB instructions, top cost")
	for _, r := range rows {
		fmt.Fprintf(w, "%-7s %-30s %12s %12s %7.0fx  %d flushes, %d TLB instructions, %s\n", r.arch, r.rules,
			simTime(r.pte.NS), simTime(r.pmd.NS), float64(r.pte.NS)/float64(r.pmd.NS), r.flushes, r.tlb, top(&r.pte.Counts, r.arch, 1))
	}
	armOld, armNew, x86Old, x86New := rows[0], rows[1], rows[2], rows[3]
	fmt.Fprintf(w, `
The seed (Joel Fernandes, October 2018) measured an Android arm64 kernel that
predates Linux 4.18: move_ptes moved at most 64 pages at a time
(LATENCY_LIMIT) and flushed each such extent of dirty pages, and arm64
flushes a 64-page range with one broadcast TLBI per page. Moving 1 GiB PTE by
PTE cost %d TLBIs, %s of the %s; the PMD moves deferred one flush
to the end: %.0fx (published 160-250 ms -> 0.38-0.40 ms, ~500x).

The merged patch (January 2019) was measured on x86 after Mel Gorman removed
LATENCY_LIMIT (4.18) and Linus moved the flush inside each move (4.19): one
flush per 2 MiB extent on both paths, and x86 does a range above 33 pages as
one local full flush. Per PTE %s, PMD moves %s: %.0fx (published
3.4-3.6 ms -> 144-160 us, ~20x).

Both changes are in the gap. Under the same old rules x86 gives %.0fx: it
never issued per-page TLBIs (its 64-page extents are above the 33-page
ceiling, one full flush each). Under the 4.19 rule arm64 gives %.0fx (its
per-PTE path lost the 64-page flushes), and the flush in every PMD move makes
x86's PMD path %.1fx slower than the deferred one: 500x was arm64's per-page
TLBIs on the old kernel, 20x is x86 on the new one.
`, armOld.pte.Counts[cost.TLBIOps], share(&armOld.pte.Counts, "arm64", cost.TLBIOps), simTime(armOld.pte.NS),
		float64(armOld.pte.NS)/float64(armOld.pmd.NS),
		simTime(x86New.pte.NS), simTime(x86New.pmd.NS), float64(x86New.pte.NS)/float64(x86New.pmd.NS),
		float64(x86Old.pte.NS)/float64(x86Old.pmd.NS), float64(armNew.pte.NS)/float64(armNew.pmd.NS),
		float64(x86New.pmd.NS)/float64(x86Old.pmd.NS))
	return nil
}

// simTime formats simulated nanoseconds.
func simTime(ns uint64) string {
	switch {
	case ns >= 1_000_000:
		return fmt.Sprintf("%.2f ms", float64(ns)/1e6)
	case ns >= 1_000:
		return fmt.Sprintf("%.1f us", float64(ns)/1e3)
	}
	return fmt.Sprintf("%d ns", ns)
}

// costs returns the arch's cost table.
func costs(archName string) *cost.Table { return fidelity.Costs(archName) }

// share returns event e's share of the simulated time of c.
func share(c *cost.Counts, archName string, e cost.Event) string {
	t := costs(archName)
	return fmt.Sprintf("%.0f%%", 100*float64(c[e]*t.Figure(e).PS)/float64(t.PS(c)))
}

// top names the n events that cost most in c.
func top(c *cost.Counts, archName string, n int) string {
	return fidelity.Shares(c, costs(archName), n)
}
