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
	"math"
	"strconv"
	"strings"
)

// Band is the range a ptsim figure must land in: [Lo, Hi], ends
// included, or, when Hi is +Inf (AtLeast), anything above Lo, as a
// target written "> 1.3x" reads.
type Band struct {
	Lo, Hi float64
}

// AtLeast returns the open-ended band of figures above lo.
func AtLeast(lo float64) Band { return Band{Lo: lo, Hi: math.Inf(1)} }

// Open reports whether the band has no upper end.
func (b Band) Open() bool { return math.IsInf(b.Hi, 1) }

// Contains reports whether v lies in the band: Lo <= v <= Hi, or v > Lo
// for an open band.
func (b Band) Contains(v float64) bool {
	if b.Open() {
		return v > b.Lo
	}
	return v >= b.Lo && v <= b.Hi
}

// Text spells the band for a reader, with the measure's unit: "15x-35x",
// "-90%..-60%" (an end below zero), "= 2" (one value), "> 1.3x" (open).
func (b Band) Text(unit string) string {
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) + unit }
	switch {
	case b.Open():
		return "> " + num(b.Lo)
	case b.Lo == b.Hi:
		return "= " + num(b.Lo)
	case b.Lo < 0 || b.Hi < 0:
		return num(b.Lo) + ".." + num(b.Hi)
	}
	return num(b.Lo) + "-" + num(b.Hi)
}

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

// ValueText spells ptsim's figure with its unit, to three significant
// digits.
func (m Measure) ValueText() string { return strconv.FormatFloat(m.Value, 'g', 3, 64) + m.Unit }

// Verdict is "yes" when the measure lands in its band, "NO" otherwise.
func (m Measure) Verdict() string {
	if m.InBand() {
		return "yes"
	}
	return "NO"
}

// Format renders the results as a table a first-time reader can follow:
// a header row, then per experiment a line with its ID and title and one
// line per measure (what is measured, the published figure, ptsim's
// figure, the band the target sets, and whether ptsim lands in it); an
// experiment that failed to run shows its error instead. Notes are left
// to FormatNotes.
func Format(exps []Experiment, results []Result, errs []error) string {
	type row struct{ name, pub, val, band, verdict string }
	var rows [][]row
	wName, wPub, wVal, wBand := len("measure"), len("published"), len("ptsim"), len("band")
	for i := range exps {
		var rs []row
		if errs[i] == nil {
			for _, m := range results[i].Measures {
				r := row{m.Name, m.Published, m.ValueText(), m.Band.Text(m.Unit), m.Verdict()}
				wName, wPub = max(wName, len(r.name)), max(wPub, len(r.pub))
				wVal, wBand = max(wVal, len(r.val)), max(wBand, len(r.band))
				rs = append(rs, r)
			}
		}
		rows = append(rows, rs)
	}
	var b strings.Builder
	line := func(name, pub, val, band, verdict string) {
		fmt.Fprintf(&b, "  %-*s  %-*s  %*s  %-*s  %s\n", wName, name, wPub, pub, wVal, val, wBand, band, verdict)
	}
	line("measure", "published", "ptsim", "band", "in band")
	line(strings.Repeat("-", wName), strings.Repeat("-", wPub), strings.Repeat("-", wVal), strings.Repeat("-", wBand), "-------")
	for i, e := range exps {
		fmt.Fprintf(&b, "%s  %s\n", e.ID, e.Title)
		if errs[i] != nil {
			fmt.Fprintf(&b, "  error: %v\n", errs[i])
			continue
		}
		for _, r := range rows[i] {
			line(r.name, r.pub, r.val, r.band, r.verdict)
		}
	}
	return b.String()
}

// FormatNotes renders each experiment's note, wrapped to width columns
// (at least 40) under its ID: why the figures come out as they do.
func FormatNotes(exps []Experiment, results []Result, errs []error, width int) string {
	width = max(width, 40)
	var b strings.Builder
	for i, e := range exps {
		if errs[i] != nil || results[i].Note == "" {
			continue
		}
		prefix := fmt.Sprintf("%-4s ", e.ID)
		col := 0
		for j, w := range strings.Fields(results[i].Note) {
			switch {
			case j == 0:
				b.WriteString(prefix + w)
				col = len(prefix) + len(w)
			case col+1+len(w) > width:
				b.WriteString("\n" + strings.Repeat(" ", len(prefix)) + w)
				col = len(prefix) + len(w)
			default:
				b.WriteString(" " + w)
				col += 1 + len(w)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
