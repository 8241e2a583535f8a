package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Target is one speed target of TARGETS.md (P1-P7) as a benchmark result
// must meet it.
type Target struct {
	// ID is the target's number in TARGETS.md ("P3").
	ID string
	// Bench is the benchmark's name without "Benchmark" and the
	// GOMAXPROCS suffix ("Mremap1GiB/pmd"), or the test's name for P7.
	Bench string
	// Unit is the metric compared ("ns/op", "ns/page", "B/page",
	// "MiB-maxrss"); "test" for a test that must pass.
	Unit string
	// Limit is the largest value that meets the target; with VsGVisor it
	// is gVisor's median of the same metric instead.
	Limit    float64
	VsGVisor bool
}

// Targets are TARGETS.md's P1-P7.
var Targets = []Target{
	{ID: "P1", Bench: "Map4K", Unit: "ns/page", VsGVisor: true},
	{ID: "P2", Bench: "Lookup", Unit: "ns/page", VsGVisor: true},
	{ID: "P3", Bench: "Mremap1GiB/pte", Unit: "ns/op", Limit: 3e6},
	{ID: "P3", Bench: "Mremap1GiB/pmd", Unit: "ns/op", Limit: 50e3},
	{ID: "P3", Bench: "Mremap1GiB/pud", Unit: "ns/op", Limit: 5e3},
	{ID: "P4", Bench: "Fork1GiB/4k", Unit: "ns/op", Limit: 10e6},
	{ID: "P4", Bench: "Fork1GiB/64k", Unit: "ns/op", Limit: 4e6},
	{ID: "P5", Bench: "MemoryPerPage", Unit: "B/page", Limit: 32},
	{ID: "P6", Bench: "Scale64G", Unit: "MiB-maxrss", Limit: 1024},
	{ID: "P7", Bench: "TestDeterminism", Unit: "test"},
}

// Results holds everything read from `go test` output: per benchmark and
// unit the values of every run, and per test whether it passed (false if
// any run failed).
type Results struct {
	Bench map[string]map[string][]float64
	Tests map[string]bool
}

// ParseResults reads benchmark lines (every unit) and the `--- PASS:` and
// `--- FAIL:` lines of `go test -v`.
func ParseResults(r io.Reader) (Results, error) {
	res := Results{Bench: map[string]map[string][]float64{}, Tests: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if b, ok := ParseLine(line); ok {
			m := res.Bench[b.Name]
			if m == nil {
				m = map[string][]float64{}
				res.Bench[b.Name] = m
			}
			for u, v := range b.Units {
				m[u] = append(m[u], v)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "---" && (f[1] == "PASS:" || f[1] == "FAIL:") {
			name := f[2]
			pass := f[1] == "PASS:"
			if old, seen := res.Tests[name]; seen {
				pass = pass && old
			}
			res.Tests[name] = pass
		}
	}
	return res, sc.Err()
}

// TargetRow is one line of the targets table.
type TargetRow struct {
	Target
	// N is the number of runs; Median, Min and Max summarise them (NaN
	// when there is none).
	N                int
	Median, Min, Max float64
	// Limit is the limit applied (gVisor's median for P1 and P2).
	Limit float64
	// Verdict is "ok", "over", "missing" (no result), "pass" or "FAIL".
	Verdict string
}

// EvalTargets checks every target against res.
func EvalTargets(res Results) []TargetRow {
	var rows []TargetRow
	for _, t := range Targets {
		row := TargetRow{Target: t, Median: math.NaN(), Min: math.NaN(), Max: math.NaN(), Limit: t.Limit, Verdict: "missing"}
		if t.Unit == "test" {
			if pass, ok := res.Tests[t.Bench]; ok {
				row.N, row.Verdict = 1, "pass"
				if !pass {
					row.Verdict = "FAIL"
				}
			}
			rows = append(rows, row)
			continue
		}
		vals := res.Bench[t.Bench][t.Unit]
		if t.VsGVisor {
			row.Limit = Median(res.Bench[gvisorPrefix+t.Bench][t.Unit])
		}
		if len(vals) > 0 && !math.IsNaN(row.Limit) {
			row.N = len(vals)
			row.Median, row.Min, row.Max = Median(vals), slices.Min(vals), slices.Max(vals)
			row.Verdict = "ok"
			if row.Median > row.Limit {
				row.Verdict = "over"
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// WriteTargets prints the targets table: median and the range of the
// runs, the limit, the median as a share of the limit, and the verdict.
func WriteTargets(w io.Writer, rows []TargetRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tbenchmark\truns\tmedian\tmin-max\tlimit\tmedian/limit\tverdict")
	for _, r := range rows {
		if r.Unit == "test" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Bench, runs(r.N), "-", "-", "passes", "-", r.Verdict)
			continue
		}
		limit := quantity(r.Limit, r.Unit)
		if r.VsGVisor {
			limit = "gVisor " + limit
		}
		share := "-"
		if !math.IsNaN(r.Median) && r.Limit > 0 {
			share = strconv.FormatFloat(r.Median/r.Limit, 'f', 2, 64)
		}
		rng := "-"
		if r.N > 0 {
			rng = spread(r.Min, r.Max, r.Unit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Bench, runs(r.N), quantity(r.Median, r.Unit), rng, limit, share, r.Verdict)
	}
	return tw.Flush()
}

func runs(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// quantity formats v of unit for people: times per operation in ns, µs or
// ms, other metrics with their unit.
func quantity(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	num, suffix := scaled(v, v, unit)
	return num + " " + suffix
}

// spread formats the range lo-hi in the scale of hi.
func spread(lo, hi float64, unit string) string {
	a, _ := scaled(lo, hi, unit)
	b, suffix := scaled(hi, hi, unit)
	return a + "-" + b + " " + suffix
}

// scaled returns v as a number in the scale that suits ref, and the
// scale's unit.
func scaled(v, ref float64, unit string) (string, string) {
	if unit != "ns/op" {
		return strconv.FormatFloat(v, 'f', 1, 64), unit
	}
	switch {
	case ref >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64), "ms"
	case ref >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64), "µs"
	}
	return strconv.FormatFloat(v, 'f', 0, 64), "ns"
}
