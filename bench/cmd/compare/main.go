// Command compare reads `go test -bench` output on standard input and prints
// a side-by-side table of gVisor and ptsim results.
//
// Benchmarks are paired by name: BenchmarkGVisorX (gVisor) is compared with
// BenchmarkX (ptsim), using the custom "ns/page" metric that both report.
// When a benchmark appears several times (-count=N) the median is used.
//
// With -targets it also checks every benchmark and test result in its
// input against TARGETS.md's speed targets P1-P7 and prints them: runs,
// median, range, limit, median as a share of the limit, verdict. The
// project's `make bench` feeds it all of them.
//
// Usage:
//
//	go test -run '^$' -bench . -benchtime=2s . | go run ./cmd/compare
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

const (
	gvisorPrefix = "GVisor"
	metricUnit   = "ns/page"
)

// Result is one parsed benchmark line.
type Result struct {
	Name  string             // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	Iters int64              // b.N
	Units map[string]float64 // unit -> value, e.g. "ns/op", "ns/page", "allocs/op"
}

// ParseLine parses a single benchmark result line such as
//
//	BenchmarkGVisorMap4K-8   54654   20784 ns/op   40.59 ns/page   20800 B/op   9 allocs/op
//
// It returns ok=false for lines that are not benchmark results.
func ParseLine(line string) (r Result, ok bool) {
	fields := strings.Fields(line)
	// Name, iterations, and at least one value/unit pair.
	if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") || len(fields[0]) == len("Benchmark") {
		return Result{}, false
	}
	iters, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || iters <= 0 {
		return Result{}, false
	}
	rest := fields[2:]
	if len(rest)%2 != 0 {
		return Result{}, false
	}
	r = Result{
		Name:  trimProcs(strings.TrimPrefix(fields[0], "Benchmark")),
		Iters: iters,
		Units: make(map[string]float64, len(rest)/2),
	}
	for i := 0; i < len(rest); i += 2 {
		v, err := strconv.ParseFloat(rest[i], 64)
		if err != nil {
			return Result{}, false
		}
		r.Units[rest[i+1]] = v
	}
	return r, true
}

// trimProcs removes a trailing "-N" GOMAXPROCS suffix, if any.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 || i == len(name)-1 {
		return name
	}
	for _, c := range name[i+1:] {
		if c < '0' || c > '9' {
			return name
		}
	}
	return name[:i]
}

// Parse reads benchmark output and returns, per benchmark name, all observed
// values of unit (one per run). Lines that are not results, or results
// without that unit, are ignored.
func Parse(r io.Reader, unit string) (map[string][]float64, error) {
	out := make(map[string][]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		res, ok := ParseLine(sc.Text())
		if !ok {
			continue
		}
		if v, ok := res.Units[unit]; ok {
			out[res.Name] = append(out[res.Name], v)
		}
	}
	return out, sc.Err()
}

// Median returns the median of vs (NaN when empty). vs is not modified.
func Median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Row is one line of the comparison table.
type Row struct {
	Bench   string  // X, as in BenchmarkGVisorX / BenchmarkX
	GVisor  float64 // median ns/page, NaN if missing
	PTSim   float64 // median ns/page, NaN if missing
	Ratio   float64 // PTSim / GVisor, NaN if either is missing
	Verdict string  // "ok", "slower", or "missing"
}

// Compare pairs BenchmarkGVisorX with BenchmarkX. Every X that has a gVisor
// result gets a row (ptsim-only benchmarks have nothing to be compared with);
// rows are sorted by X.
func Compare(vals map[string][]float64) []Row {
	names := make(map[string]bool)
	for name := range vals {
		if x, ok := strings.CutPrefix(name, gvisorPrefix); ok && x != "" {
			names[x] = true
		}
	}
	var rows []Row
	for x := range names {
		g := Median(vals[gvisorPrefix+x])
		p := Median(vals[x])
		row := Row{Bench: x, GVisor: g, PTSim: p, Ratio: math.NaN(), Verdict: "missing"}
		if !math.IsNaN(g) && !math.IsNaN(p) && g > 0 {
			row.Ratio = p / g
			if row.Ratio <= 1.0 {
				row.Verdict = "ok"
			} else {
				row.Verdict = "slower"
			}
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Bench < rows[j].Bench })
	return rows
}

// WriteTable prints rows as an aligned text table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tgVisor ns/page\tptsim ns/page\tptsim/gVisor\tverdict")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Bench, num(r.GVisor, 2), num(r.PTSim, 2), num(r.Ratio, 3), r.Verdict)
	}
	return tw.Flush()
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func main() {
	echo := flag.Bool("echo", false, "copy the benchmark input to stderr while reading it")
	targets := flag.Bool("targets", false, "also print TARGETS.md's P1-P7 from every benchmark and test result in the input")
	flag.Parse()

	var in io.Reader = os.Stdin
	if *echo {
		in = io.TeeReader(os.Stdin, os.Stderr)
	}
	input, err := io.ReadAll(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare: reading input:", err)
		os.Exit(1)
	}
	vals, err := Parse(bytes.NewReader(input), metricUnit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare: reading input:", err)
		os.Exit(1)
	}
	rows := Compare(vals)
	if len(rows) == 0 && !*targets {
		fmt.Fprintf(os.Stderr, "compare: no BenchmarkGVisor* results with a %q metric on stdin\n", metricUnit)
		os.Exit(1)
	}
	if len(rows) > 0 {
		if err := WriteTable(os.Stdout, rows); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
	}
	if *targets {
		res, err := ParseResults(bytes.NewReader(input))
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare: reading input:", err)
			os.Exit(1)
		}
		if len(rows) > 0 {
			fmt.Println()
		}
		if err := WriteTargets(os.Stdout, EvalTargets(res)); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
	}
}
