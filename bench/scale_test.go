package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// p6Script is the P6 scenario script, relative to this module.
const p6Script = "../testdata/scale/p6-64g.pts"

// buildPtsim builds the ptsim command from the enclosing module into dir
// and returns its path. It is built there, not in this module, so that the
// command's own dependencies stay out of bench's go.mod.
func buildPtsim(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "ptsim")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ptsim")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/ptsim: %v\n%s", err, out)
	}
	return bin
}

// runMaxRSS runs `ptsim run script` and returns its maximum resident set
// in bytes (getrusage's ru_maxrss of the child, KiB on Linux) and its
// standard output. A failing script fails tb.
func runMaxRSS(tb testing.TB, bin, script string) (uint64, string) {
	tb.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, "run", script)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// The child inherits GOGC and GOMEMLIMIT from the environment
	// unchanged: P6 is measured as a user runs it.
	cmd.Env = os.Environ()
	if err := cmd.Run(); err != nil {
		tb.Fatalf("ptsim run %s: %v\n%s%s", script, err, out.String(), errOut.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		tb.Fatal("no rusage for the child process on this platform")
	}
	return uint64(ru.Maxrss) << 10, out.String()
}

// BenchmarkScale64G is P6 of TARGETS.md: `ptsim run` of
// testdata/scale/p6-64g.pts, which maps, writes and checks 64 GiB of
// anonymous memory (16.7 M pages). The metric MiB-maxrss is the largest
// maximum resident set of the runs (target: at most 1024); ns/op is the
// wall time of one run. Run it with -benchtime=1x: one run takes seconds.
func BenchmarkScale64G(b *testing.B) {
	bin := buildPtsim(b, b.TempDir())
	var maxRSS uint64
	var out string
	for b.Loop() {
		rss, o := runMaxRSS(b, bin, p6Script)
		maxRSS, out = max(maxRSS, rss), o
	}
	if !strings.Contains(out, "rss_anon 16777216") {
		b.Fatalf("the script did not populate 16777216 pages:\n%s", out)
	}
	b.ReportMetric(float64(maxRSS)/(1<<20), "MiB-maxrss")
}

// TestMaxRSSOfSmallRun checks the measurement itself on a small script
// (64 MiB written): the child ran it, and its maximum RSS was read and is
// plausible, more than 2 MiB (no Go program is smaller) and less than
// 1 GiB.
func TestMaxRSSOfSmallRun(t *testing.T) {
	dir := t.TempDir()
	bin := buildPtsim(t, dir)
	script := filepath.Join(dir, "small.pts")
	src := "mmap 0x7f0000000000 64M rw\nwrite 0x7f0000000000 64M\nstats rss_anon\n"
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	rss, out := runMaxRSS(t, bin, script)
	if !strings.Contains(out, "rss_anon 16384") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	if rss < 2<<20 || rss >= 1<<30 {
		t.Fatalf("max RSS %d bytes, want between 2 MiB and 1 GiB", rss)
	}
}
