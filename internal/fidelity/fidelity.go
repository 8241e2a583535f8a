// Package fidelity holds the fidelity experiments of TARGETS.md (F1-F14):
// each runs the model with the arch's one cost table and compares a ratio
// of simulated times (or counts) with what Linux developers published.
// `ptsim demo` prints them all; tests assert each lands in its band.
//
// Experiments never tune costs: they build a machine, run the workload the
// publication describes, and read counters and simulated time.
package fidelity

import (
	"fmt"
	"strings"
)

// Band is the range a ptsim figure must land in.
type Band struct {
	Lo, Hi float64
}

// Contains reports whether v lies in the band, ends included.
func (b Band) Contains(v float64) bool { return v >= b.Lo && v <= b.Hi }

// Measure is one figure an experiment reports.
type Measure struct {
	// Name says what is measured ("per-PTE / PMD").
	Name string
	// Published is the figure as the source gives it ("3.4-3.6 ms -> 144-160 us (~23x)").
	Published string
	// Band is where ours must land.
	Band Band
	// Value is ours.
	Value float64
	// Unit is "x" for ratios, or another unit.
	Unit string
}

// InBand reports whether the measure lands in its band.
func (m Measure) InBand() bool { return m.Band.Contains(m.Value) }

// Result is what an experiment found.
type Result struct {
	// Measures are the figures, in the order the target lists them.
	Measures []Measure
	// Note explains the result (which primitive dominates, for example).
	Note string
}

// Experiment is one fidelity experiment.
type Experiment struct {
	// ID is the target's number ("F1").
	ID string
	// Title says what runs ("x86_64 mremap 1 GiB: per-PTE vs PMD moves").
	Title string
	// Run runs the experiment. It must be deterministic.
	Run func() (Result, error)
}

// All returns every experiment, in target order.
func All() []Experiment {
	var all []Experiment
	for _, group := range [][]Experiment{
		mremapExperiments(),
		forkExperiments(),
		contpteExperiments(),
		vmemmapExperiments(),
		spfExperiments(),
	} {
		all = append(all, group...)
	}
	return all
}

// Format renders a result table row by row: experiment, measure,
// published figure, ours, in band.
func Format(exps []Experiment, results []Result, errs []error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %-44s %-40s %12s  %s\n", "exp", "measure", "published", "ptsim", "in band")
	for i, e := range exps {
		if errs[i] != nil {
			fmt.Fprintf(&b, "%-4s %-44s error: %v\n", e.ID, e.Title, errs[i])
			continue
		}
		for _, m := range results[i].Measures {
			verdict := "yes"
			if !m.InBand() {
				verdict = "NO"
			}
			val := fmt.Sprintf("%.3g%s", m.Value, m.Unit)
			band := fmt.Sprintf("[%g-%g]", m.Band.Lo, m.Band.Hi)
			fmt.Fprintf(&b, "%-4s %-44s %-40s %12s  %s %s\n", e.ID, m.Name, m.Published, val, verdict, band)
		}
		if results[i].Note != "" {
			fmt.Fprintf(&b, "     note: %s\n", results[i].Note)
		}
	}
	return b.String()
}
