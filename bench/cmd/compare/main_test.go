package main

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Result
		ok   bool
	}{
		{
			name: "full line with custom metric and allocs",
			line: "BenchmarkGVisorMap4K-8   \t   54654\t     20784 ns/op\t        40.59 ns/page\t   20800 B/op\t       9 allocs/op",
			want: Result{Name: "GVisorMap4K", Iters: 54654, Units: map[string]float64{
				"ns/op": 20784, "ns/page": 40.59, "B/op": 20800, "allocs/op": 9,
			}},
			ok: true,
		},
		{
			name: "no GOMAXPROCS suffix",
			line: "BenchmarkLookup 1000000 17.21 ns/op 17.21 ns/page",
			want: Result{Name: "Lookup", Iters: 1000000, Units: map[string]float64{"ns/op": 17.21, "ns/page": 17.21}},
			ok:   true,
		},
		{
			name: "sub-benchmark keeps slash, strips procs",
			line: "BenchmarkMap4K/huge-16 10 5e+06 ns/op",
			want: Result{Name: "Map4K/huge", Iters: 10, Units: map[string]float64{"ns/op": 5e6}},
			ok:   true,
		},
		{
			name: "non-numeric dash suffix is part of the name",
			line: "BenchmarkMap-fast 10 100 ns/op",
			want: Result{Name: "Map-fast", Iters: 10, Units: map[string]float64{"ns/op": 100}},
			ok:   true,
		},
		{name: "header goos", line: "goos: linux"},
		{name: "PASS", line: "PASS"},
		{name: "ok line", line: "ok  \tgithub.com/ptsim/ptsim/bench\t2.581s"},
		{name: "empty", line: ""},
		{name: "bare Benchmark word", line: "Benchmark 10 100 ns/op"},
		{name: "name only (verbose run header)", line: "BenchmarkGVisorMap4K"},
		{name: "failed benchmark", line: "--- FAIL: BenchmarkGVisorMap4K-8"},
		{name: "bad iteration count", line: "BenchmarkX-8 abc 100 ns/op"},
		{name: "odd value/unit fields", line: "BenchmarkX-8 10 100 ns/op 5"},
		{name: "non-numeric value", line: "BenchmarkX-8 10 fast ns/op"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseLine(tc.line)
			if ok != tc.ok {
				t.Fatalf("ParseLine(%q) ok = %v, want %v", tc.line, ok, tc.ok)
			}
			if ok && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseLine(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{41, 40, 39, 44, 40.5}, 40.5},
	}
	for _, tc := range tests {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
}

const sample = `goos: linux
goarch: amd64
pkg: github.com/ptsim/ptsim/bench
cpu: Intel(R) Xeon(R) Processor
BenchmarkGVisorMap4K-2    	   54654	     20784 ns/op	        40.00 ns/page	   20800 B/op	       9 allocs/op
BenchmarkGVisorMap4K-2    	   54654	     20784 ns/op	        42.00 ns/page	   20800 B/op	       9 allocs/op
BenchmarkGVisorMap4K-2    	   54654	     20784 ns/op	        41.00 ns/page	   20800 B/op	       9 allocs/op
BenchmarkMap4K-2          	  100000	     10240 ns/op	        20.00 ns/page	       0 B/op	       0 allocs/op
BenchmarkGVisorLookup-2   	69028149	        17.00 ns/op	        17.00 ns/page	       0 B/op	       0 allocs/op
BenchmarkLookup-2         	50000000	        34.00 ns/op	        34.00 ns/page	       0 B/op	       0 allocs/op
BenchmarkGVisorUnmap-2    	    1000	      5120 ns/op	        10.00 ns/page
BenchmarkOnlyPtsim-2      	    1000	      5120 ns/op	        10.00 ns/page
BenchmarkNoMetric-2       	    1000	      5120 ns/op
PASS
ok  	github.com/ptsim/ptsim/bench	12.3s
`

func TestParseAndCompare(t *testing.T) {
	vals, err := Parse(strings.NewReader(sample), metricUnit)
	if err != nil {
		t.Fatal(err)
	}
	wantVals := map[string][]float64{
		"GVisorMap4K":  {40, 42, 41},
		"Map4K":        {20},
		"GVisorLookup": {17},
		"Lookup":       {34},
		"GVisorUnmap":  {10},
		"OnlyPtsim":    {10},
	}
	if !reflect.DeepEqual(vals, wantVals) {
		t.Fatalf("Parse = %v, want %v", vals, wantVals)
	}

	rows := Compare(vals)
	want := []Row{
		{Bench: "Lookup", GVisor: 17, PTSim: 34, Ratio: 2, Verdict: "slower"},
		{Bench: "Map4K", GVisor: 41, PTSim: 20, Ratio: 20.0 / 41.0, Verdict: "ok"},
		{Bench: "Unmap", GVisor: 10, PTSim: math.NaN(), Ratio: math.NaN(), Verdict: "missing"},
	}
	if len(rows) != len(want) {
		t.Fatalf("Compare returned %d rows %+v, want %d", len(rows), rows, len(want))
	}
	for i := range want {
		if !rowEqual(rows[i], want[i]) {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}

	var sb strings.Builder
	if err := WriteTable(&sb, rows); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for _, s := range []string{"benchmark", "ptsim/gVisor", "Map4K", "41.00", "20.00", "0.488", "ok", "Lookup", "2.000", "slower", "Unmap", "missing"} {
		if !strings.Contains(out, s) {
			t.Errorf("table output lacks %q:\n%s", s, out)
		}
	}
}

func TestRatioExactlyOneIsOK(t *testing.T) {
	rows := Compare(map[string][]float64{"GVisorMap4K": {50}, "Map4K": {50}})
	if len(rows) != 1 || rows[0].Verdict != "ok" || rows[0].Ratio != 1 {
		t.Fatalf("Compare = %+v, want one ok row with ratio 1", rows)
	}
}

func rowEqual(a, b Row) bool {
	eq := func(x, y float64) bool {
		if math.IsNaN(x) || math.IsNaN(y) {
			return math.IsNaN(x) && math.IsNaN(y)
		}
		return math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
	}
	return a.Bench == b.Bench && a.Verdict == b.Verdict && eq(a.GVisor, b.GVisor) && eq(a.PTSim, b.PTSim) && eq(a.Ratio, b.Ratio)
}
