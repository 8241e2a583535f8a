package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/internal/fidelity"
	"github.com/ptsim/ptsim/scenario"
)

// td is the repository's testdata folder.
const td = "../../testdata/"

func TestRun(t *testing.T) {
	tmp := t.TempDir()
	good := filepath.Join(tmp, "good.pts")
	if err := os.WriteFile(good, []byte("mmap 0x10000000 64K\nwrite 0x10000000 64K\nstats faults\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(tmp, "bad.pts")
	if err := os.WriteFile(bad, []byte("mmap 0x10000000 64K\nstats faults\nmmapp 1 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		status     int
		stdout     []string // substrings, in order
		stderr     []string
		noStdout   bool
		exactStdio string // whole stdout, when set
	}{
		{name: "no args", args: nil, status: 2, stderr: []string{"usage:"}, noStdout: true},
		{name: "unknown subcommand", args: []string{"fly"}, status: 2, stderr: []string{`unknown command "fly"`}},
		{name: "run without files", args: []string{"run"}, status: 2, stderr: []string{"no script files"}},
		{name: "run bad flag", args: []string{"run", "-bogus", good}, status: 2, stderr: []string{"bogus"}},
		{name: "run one", args: []string{"run", good}, status: 0, exactStdio: "faults 16\n"},
		{name: "run audited", args: []string{"run", "-audit", good}, status: 0, exactStdio: "faults 16\n"},
		{name: "run flag after file", args: []string{"run", good, "-audit"}, status: 0, exactStdio: "faults 16\n"},
		{name: "run bad flag after file", args: []string{"run", good, "-bogus"}, status: 2, stderr: []string{"bogus"}, noStdout: true},
		{name: "run files after --", args: []string{"run", "--", good}, status: 0, exactStdio: "faults 16\n"},
		{name: "run two", args: []string{"run", good, good}, status: 0,
			exactStdio: "== " + good + " ==\nfaults 16\n\n== " + good + " ==\nfaults 16\n"},
		{name: "run missing file", args: []string{"run", filepath.Join(tmp, "nope.pts")}, status: 2,
			stderr: []string{"nope.pts: cannot read"}, noStdout: true},
		// A malformed file stops every file before anything runs.
		{name: "malformed stops all", args: []string{"run", good, bad}, status: 2,
			stderr: []string{bad + `:3: unknown command "mmapp"`}, noStdout: true},
		{name: "expectation fails", args: []string{"run", td + "fail/expect.pts"}, status: 1,
			stderr: []string{td + "fail/expect.pts:5: expect faults == 15: expected faults == 15, found faults = 16"}, noStdout: true},
		// A failing file does not stop the next one; the worst status wins.
		{name: "fail then good", args: []string{"run", td + "fail/expect.pts", good}, status: 1,
			stdout: []string{"== " + good + " ==", "faults 16"}, stderr: []string{"fail/expect.pts:5:"}},
		{name: "demo with args", args: []string{"demo", "x"}, status: 2, stderr: []string{"no arguments"}},
		{name: "demo bad flag", args: []string{"demo", "-z"}, status: 2, stderr: []string{"-z"}},
		{name: "walk", args: []string{"walk", "-arch", "arm64", "0x7f0000001234", "0x7f0000001000"}, status: 0,
			stdout: []string{"Virtual Address 0x7f0000001234", "Translates to Physical Address", "Virtual Address 0x7f0000001000"}},
		{name: "walk default arch", args: []string{"walk", "0x10000000"}, status: 0, stdout: []string{"p4d 0, pud 0, pmd 128, pte 0"}},
		{name: "walk unknown arch", args: []string{"walk", "-arch", "vax", "0x1000"}, status: 2, stderr: []string{"unknown architecture"}},
		{name: "walk no address", args: []string{"walk"}, status: 2, stderr: []string{"at least one address"}},
		{name: "walk bad address", args: []string{"walk", "0xzz"}, status: 2, stderr: []string{"bad number"}},
		{name: "walk beyond user space", args: []string{"walk", "-arch", "um32", "0xf0000000"}, status: 1, stderr: []string{"ENOMEM"}},
		{name: "exercise list", args: []string{"exercise", "-list"}, status: 0, stdout: []string{"translate", "mremap", "fork", "contpte", "tlb", "archs: x86_64"}},
		{name: "exercise problem", args: []string{"exercise", "-s", "7", "-kind", "translate", "-arch", "arm64"}, status: 0,
			stdout: []string{"Exercise: translate, seed 7, arm64", "Translate (give the physical address"}},
		{name: "exercise bad kind", args: []string{"exercise", "-kind", "paging"}, status: 2, stderr: []string{`exercise kind "paging"`}, noStdout: true},
		{name: "exercise bad arch", args: []string{"exercise", "-kind", "tlb", "-arch", "arm64"}, status: 2, stderr: []string{"supports x86_64"}, noStdout: true},
		{name: "exercise extra arg", args: []string{"exercise", "x"}, status: 2, stderr: []string{"unexpected argument"}},
		{name: "exercise bad flag", args: []string{"exercise", "-q"}, status: 2, stderr: []string{"usage: ptsim exercise"}},
		{name: "plot no dir", args: []string{"plot"}, status: 2, stderr: []string{"usage: ptsim plot"}},
		{name: "plot unknown figure", args: []string{"plot", "-only", "nope", "x"}, status: 2, stderr: []string{`no figure "nope"`}, noStdout: true},
		{name: "help", args: []string{"help"}, status: 0, stdout: []string{"Commands:", "mmap ADDR LEN", "Architectures:", "Counters:"}},
		{name: "help one", args: []string{"help", "mmap"}, status: 0, stdout: []string{"mmap ADDR LEN [PROT]"}},
		{name: "help unknown", args: []string{"help", "fly"}, status: 2, stderr: []string{`no command "fly"`}},
		{name: "dash h", args: []string{"-h"}, status: 0, stdout: []string{"usage:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			status := run(tc.args, &out, &errb)
			if status != tc.status {
				t.Errorf("status %d, want %d\nstdout:\n%s\nstderr:\n%s", status, tc.status, out.String(), errb.String())
			}
			if tc.exactStdio != "" && out.String() != tc.exactStdio {
				t.Errorf("stdout %q, want %q", out.String(), tc.exactStdio)
			}
			if tc.noStdout && out.Len() != 0 {
				t.Errorf("stdout not empty: %q", out.String())
			}
			inOrder(t, "stdout", out.String(), tc.stdout)
			inOrder(t, "stderr", errb.String(), tc.stderr)
			if strings.Contains(errb.String(), "goroutine ") || strings.Contains(errb.String(), "panic") {
				t.Errorf("panic trace on stderr: %s", errb.String())
			}
		})
	}
}

// TestDemo checks the demo's table and summary with stand-in experiments
// (the real ones are slow and tested in internal/fidelity): one in band,
// one out of band, one that fails to run; and the empty registry.
func TestDemo(t *testing.T) {
	exps := []fidelity.Experiment{
		{ID: "F1", Title: "in band", Run: func() (fidelity.Result, error) {
			return fidelity.Result{Measures: []fidelity.Measure{{Name: "a / b", Published: "23x", Band: fidelity.Band{Lo: 15, Hi: 35}, Value: 20, Unit: "x"}}, Note: "moves dominate"}, nil
		}},
		{ID: "F2", Title: "out of band", Run: func() (fidelity.Result, error) {
			return fidelity.Result{Measures: []fidelity.Measure{{Name: "c / d", Published: "13x", Band: fidelity.Band{Lo: 8, Hi: 20}, Value: 40, Unit: "x"}}}, nil
		}},
		{ID: "F3", Title: "broken", Run: func() (fidelity.Result, error) { return fidelity.Result{}, errors.New("no memory") }},
	}
	var out bytes.Buffer
	if st := demo(exps, true, &out); st != 0 {
		t.Fatalf("status %d", st)
	}
	inOrder(t, "demo", out.String(), []string{"measure", "published", "ptsim", "band", "in band",
		"F1  in band\n", "a / b", "23x", "20x", "15x-35x", "yes\n",
		"F2  out of band\n", "c / d", "13x", "40x", "8x-20x", "NO\n",
		"F3  broken\n", "error: no memory",
		"Notes:\n", "F1   moves dominate\n",
		"summary: 3 experiments, 1 of 2 measures in band, 1 experiments failed to run\n",
		"out of band: F2 c / d\n"})
	out.Reset()
	if st := demo(exps, false, &out); st != 0 || strings.Contains(out.String(), "Notes:") {
		t.Fatalf("demo -q printed notes: %d %q", st, out.String())
	}
	out.Reset()
	if st := demo(nil, true, &out); st != 0 || !strings.HasSuffix(out.String(), "summary: 0 experiments, 0 measures\n") {
		t.Fatalf("empty demo: %d %q", st, out.String())
	}
}

// inOrder checks that every part occurs in s, in order.
func inOrder(t *testing.T, what, s string, parts []string) {
	t.Helper()
	rest := s
	for _, p := range parts {
		i := strings.Index(rest, p)
		if i < 0 {
			t.Errorf("%s lacks %q (in order):\n%s", what, p, s)
			return
		}
		rest = rest[i+len(p):]
	}
}

// TestRunMatchesGolden runs every testdata script through the CLI and
// compares stdout with the script output its golden file records, and the
// exit status with the one it records.
func TestRunMatchesGolden(t *testing.T) {
	scripts, err := filepath.Glob(td + "*.pts")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	more, _ := filepath.Glob(td + "*/*.pts")
	// testdata/scale holds the 64 GiB P6 script, which `make bench` runs.
	more = slices.DeleteFunc(more, func(p string) bool { return strings.HasPrefix(p, td+"scale/") })
	for _, path := range append(scripts, more...) {
		t.Run(strings.TrimPrefix(path, td), func(t *testing.T) {
			golden, err := os.ReadFile(strings.TrimSuffix(path, ".pts") + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			want, status := string(golden), 0
			if i := strings.Index(want, "exit status "); i >= 0 && (i == 0 || want[i-1] == '\n') {
				status = int(want[i+len("exit status ")] - '0')
				want = want[:i]
			}
			var out, errb bytes.Buffer
			if got := run([]string{"run", path}, &out, &errb); got != status {
				t.Fatalf("status %d, want %d: %s", got, status, errb.String())
			}
			if status == 2 {
				want = "" // nothing runs
			}
			if out.String() != want {
				t.Errorf("stdout differs from the golden file:\n%s\nwant:\n%s", out.String(), want)
			}
		})
	}
}

// TestHelpListsEveryCommand keeps the help text in step with the table.
func TestHelpListsEveryCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if run([]string{"help"}, &out, &errb) != 0 {
		t.Fatal(errb.String())
	}
	for _, c := range scenario.Commands() {
		if !strings.Contains(out.String(), "  "+c.Usage+"\n") {
			t.Errorf("help lacks %s", c.Usage)
		}
	}
}

// TestReadmeQuickstart keeps the README's quickstart true: its script is
// testdata/quickstart.pts and its output is what ptsim prints for it.
func TestReadmeQuickstart(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(marker string) string {
		s := string(readme)
		i := strings.Index(s, marker+"\n```\n")
		if i < 0 {
			t.Fatalf("README lacks %s", marker)
		}
		s = s[i+len(marker)+5:]
		return s[:strings.Index(s, "```\n")]
	}
	script, err := os.ReadFile(td + "quickstart.pts")
	if err != nil {
		t.Fatal(err)
	}
	if got := block("<!-- quickstart-script -->"); got != string(script) {
		t.Errorf("README script differs from testdata/quickstart.pts:\n%s", got)
	}
	var out, errb bytes.Buffer
	if st := run([]string{"run", td + "quickstart.pts"}, &out, &errb); st != 0 {
		t.Fatalf("status %d: %s", st, errb.String())
	}
	if got := block("<!-- quickstart-output -->"); got != out.String() {
		t.Errorf("README output differs from what ptsim prints:\n%s\nprints:\n%s", got, out.String())
	}
}

// TestExerciseAnswer checks that -c prints the same problem followed by
// its answer, and that the output is the same on every run.
func TestExerciseAnswer(t *testing.T) {
	for _, kind := range []string{"translate", "mremap", "fork", "contpte", "tlb"} {
		var p, a, a2, errb bytes.Buffer
		if st := run([]string{"exercise", "-s", "11", "-kind", kind}, &p, &errb); st != 0 {
			t.Fatalf("%s: status %d: %s", kind, st, errb.String())
		}
		run([]string{"exercise", "-s", "11", "-kind", kind, "-c"}, &a, &errb)
		run([]string{"exercise", "-c", "-kind", kind, "-s", "11"}, &a2, &errb)
		if !strings.HasPrefix(a.String(), p.String()) || !strings.Contains(a.String()[p.Len():], "Answer (ptsim exercise -s 11 -kind "+kind) {
			t.Errorf("%s: -c does not print the problem then the answer:\n%s", kind, a.String())
		}
		if a.String() != a2.String() {
			t.Errorf("%s: two runs differ", kind)
		}
	}
}

// TestPlot draws one figure through the CLI and checks the files.
func TestPlot(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if st := run([]string{"plot", "-only", "page-fault3", dir}, &out, &errb); st != 0 {
		t.Fatalf("status %d: %s", st, errb.String())
	}
	for _, ext := range []string{".svg", ".png"} {
		p := filepath.Join(dir, "page-fault3"+ext)
		if !strings.Contains(out.String(), p+"\n") {
			t.Errorf("output lacks %s: %q", p, out.String())
		}
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
}
