package main

import (
	"math"
	"strings"
	"testing"
)

const targetsSample = `goos: linux
BenchmarkMremap1GiB/pte-2   634   1741023 ns/op   2519241 B/op   533 allocs/op
BenchmarkMremap1GiB/pte-2   634   1841023 ns/op   2519241 B/op   533 allocs/op
BenchmarkMremap1GiB/pte-2   634   1791023 ns/op   2519241 B/op   533 allocs/op
BenchmarkMremap1GiB/pmd-2   26967   51000 ns/op   10088 B/op   12 allocs/op
BenchmarkGVisorMap4K-2   54654   20784 ns/op   40.00 ns/page
BenchmarkMap4K-2   100000   10240 ns/op   20.00 ns/page
BenchmarkGVisorLookup-2   100   17 ns/op   17.00 ns/page
BenchmarkMemoryPerPage-2   1   3000000000 ns/op   29.50 B/page   30.1 B/page-with-machine
BenchmarkScale64G-2   1   4975233636 ns/op   495.3 MiB-maxrss
=== RUN   TestDeterminism
--- PASS: TestDeterminism (38.81s)
--- FAIL: TestOther (0.01s)
--- PASS: TestOther (0.01s)
`

func TestEvalTargets(t *testing.T) {
	res, err := ParseResults(strings.NewReader(targetsSample))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Tests["TestDeterminism"] || res.Tests["TestOther"] {
		t.Fatalf("tests = %v: a test that failed in any run fails", res.Tests)
	}
	rows := EvalTargets(res)
	if len(rows) != len(Targets) {
		t.Fatalf("%d rows for %d targets", len(rows), len(Targets))
	}
	by := map[string]TargetRow{}
	for _, r := range rows {
		by[r.Bench] = r
	}
	cases := []struct {
		bench            string
		n                int
		median, min, max float64
		limit            float64
		verdict          string
	}{
		{"Map4K", 1, 20, 20, 20, 40, "ok"},
		{"Lookup", 0, math.NaN(), math.NaN(), math.NaN(), 17, "missing"},
		{"Mremap1GiB/pte", 3, 1791023, 1741023, 1841023, 3e6, "ok"},
		{"Mremap1GiB/pmd", 1, 51000, 51000, 51000, 50e3, "over"},
		{"Mremap1GiB/pud", 0, math.NaN(), math.NaN(), math.NaN(), 5e3, "missing"},
		{"MemoryPerPage", 1, 29.5, 29.5, 29.5, 32, "ok"},
		{"Scale64G", 1, 495.3, 495.3, 495.3, 1024, "ok"},
		{"TestDeterminism", 1, math.NaN(), math.NaN(), math.NaN(), 0, "pass"},
	}
	same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
	for _, c := range cases {
		r := by[c.bench]
		if r.N != c.n || !same(r.Median, c.median) || !same(r.Min, c.min) || !same(r.Max, c.max) || !same(r.Limit, c.limit) || r.Verdict != c.verdict {
			t.Errorf("%s: %+v, want n=%d median=%v min=%v max=%v limit=%v %s", c.bench, r, c.n, c.median, c.min, c.max, c.limit, c.verdict)
		}
	}
	var sb strings.Builder
	if err := WriteTargets(&sb, rows); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for _, s := range []string{"P3", "1.79 ms", "1.74-1.84 ms", "3.00 ms", "0.60", "51.0 µs", "over", "gVisor 40.0 ns/page", "495.3 MiB-maxrss", "P7", "pass"} {
		if !strings.Contains(out, s) {
			t.Errorf("targets table lacks %q:\n%s", s, out)
		}
	}
}

func TestFailedTestIsFAIL(t *testing.T) {
	res, err := ParseResults(strings.NewReader("--- FAIL: TestDeterminism (1.00s)\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range EvalTargets(res) {
		if r.Bench == "TestDeterminism" && r.Verdict != "FAIL" {
			t.Fatalf("verdict %q, want FAIL", r.Verdict)
		}
	}
}
