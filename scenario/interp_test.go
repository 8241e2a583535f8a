package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// runScript parses and runs src, returning the output and the error.
func runScript(t *testing.T, src string, opt Options) (string, error) {
	t.Helper()
	s, err := Parse("t.pts", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var out bytes.Buffer
	opt.Out = &out
	err = Run(s, opt)
	return out.String(), err
}

func TestRunOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		line     int // 0: success
		expected string
		found    string
	}{
		{name: "all hold", src: "mmap 0x10000000 64K\nwrite 0x10000000 64K\nexpect faults == 16"},
		{name: "expectation fails", src: "mmap 0x10000000 64K\nexpect vmas == 2", line: 2,
			expected: "vmas == 2", found: "vmas = 1"},
		{name: "command fails", src: "mmap 0x10000000 64K\nmunmap 0x10000001 4K", line: 2,
			expected: "success", found: "EINVAL"},
		{name: "bang fails as wanted", src: "mmap 0x10000000 64K\n! mmap 0x10000000 4K"},
		{name: "bang succeeds", src: "! mmap 0x10000000 4K", line: 1, expected: "an error", found: "success"},
		{name: "expect-error matches", src: "mmap 0x10000000 64K\n! mmap 0x10000000 4K\nexpect-error EEXIST"},
		{name: "expect-error marks must-fail", src: "mmap 0x10000000 64K\nmmap 0x10000000 4K\nexpect-error EEXIST"},
		{name: "expect-error other errno", src: "mmap 0x10000000 64K\n! mmap 0x10000000 4K\nexpect-error ENOMEM", line: 3,
			expected: "ENOMEM from line 2 (! mmap 0x10000000 4K)", found: "EEXIST: "},
		{name: "expect-error after success", src: "mmap 0x10000000 64K\nexpect-error EINVAL", line: 1,
			expected: "error EINVAL (expect-error on line 2)", found: "success"},
		{name: "bang expect holds", src: "mmap 0x10000000 64K\n! expect vmas == 2\n! expect vmas != 1\n! expect vmas > 1\n! expect vmas < 1"},
		{name: "bang expect fails", src: "mmap 0x10000000 64K\n! expect vmas == 1", line: 2,
			expected: "it not to hold", found: "it held"},
		{name: "byte-order mark", src: "\ufeffarch arm64\nmmap 0x10000000 64K\nexpect vmas == 1"},
		{name: "dump of nothing", src: "dump 0x10000000 0", line: 1, expected: "success", found: "EINVAL"},
		{name: "expect-error after a mismatch", src: "mmap 0x10000000 64K\n! check 0x10000000 4K val=1\nexpect-error EINVAL", line: 3,
			expected: "EINVAL", found: "an error with no error number"},
		{name: "check mismatch", src: "mmap 0x10000000 64K\nwrite 0x10000000 64K val=3\ncheck 0x10000000 64K val=4", line: 3,
			expected: "page 0x10000000 = 0x4", found: "0x3 (16 of 16 pages differ)"},
		{name: "check unmapped", src: "check 0x10000000 4K", line: 1, expected: "page 0x10000000 = 0x0", found: "not mapped"},
		{name: "unknown mm", src: "use ghost", line: 1, expected: "success", found: "ENOENT"},
		{name: "unpin unpinned", src: "mmap 0x10000000 64K\nwrite 0x10000000\nunpin 0x10000000 4K", line: 3, expected: "success", found: "not pinned"},
		{name: "arch cannot honour", src: "arch um\nconfig thp=always", line: 2, expected: "success", found: "no transparent huge pages"},
		{name: "arch option cannot honour", src: "arch x86_64 contpte=on", line: 1, expected: "success", found: "no contiguous-PTE bit"},
		{name: "config all or nothing", src: "arch s390x\n! config fork_batch=off move_pmd=on\nexpect-error EINVAL"},
		{name: "cpus out of range", src: "cpus 2000", line: 1, expected: "success", found: "EINVAL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runScript(t, tc.src, Options{Audit: true})
			if tc.line == 0 {
				if err != nil {
					t.Fatalf("failed: %v", err)
				}
				return
			}
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("error %v (%T), want a *Failure", err, err)
			}
			if f.File != "t.pts" || f.Line != tc.line || !strings.Contains(f.Expected, tc.expected) || !strings.Contains(f.Found, tc.found) {
				t.Fatalf("failure %+v, want line %d expected %q found %q", f, tc.line, tc.expected, tc.found)
			}
			if ExitStatus(err) != 1 {
				t.Fatalf("exit status %d", ExitStatus(err))
			}
			if !strings.HasPrefix(err.Error(), "t.pts:") {
				t.Fatalf("diagnostic %q", err)
			}
		})
	}
}

// TestConfigAllOrNothing checks that a config line with one bad switch
// changes none.
func TestConfigAllOrNothing(t *testing.T) {
	e := NewEnv(Options{})
	s, _ := Parse("t", []byte("arch s390x\nmm a\n! config fork_batch=off move_pmd=on\n"))
	if err := e.Run(s); err != nil {
		t.Fatal(err)
	}
	if !e.m.Knobs().ForkBatch {
		t.Fatal("fork_batch changed although the line failed")
	}
}

// requiredCounters are the names SCENARIOS.md requires stats to list.
var requiredCounters = strings.Fields(`pte_moves pmd_moves pud_moves huge_pmd_moves pte_sets pte_clears
	pt_allocs pt_frees tlb_flush_page tlb_flush_range tlb_flush_mm tlb_flush_all tlb_flush_kernel
	tlb_invalidated tlb_ipis tlb_hits tlb_misses dcache_flushes faults faults_anon faults_cow
	fork_batches fork_ptes fork_page_copies contpte_folds contpte_unfolds contpte_converts
	vmemmap_splits vmemmap_pages_freed vmemmap_pages_restored spf_attempts spf_success spf_retries
	rss_anon rss_file vmas sim_ns`)

func TestStatsListsEveryCounterSorted(t *testing.T) {
	out, err := runScript(t, "stats", Options{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var names []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("line %q is not `name value`", l)
		}
		names = append(names, f[0])
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("not sorted: %s before %s", names[i-1], names[i])
		}
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	for _, n := range requiredCounters {
		if !have[n] {
			t.Errorf("stats lacks %s", n)
		}
	}
	for e := cost.Event(0); e < cost.NumEvents; e++ {
		if !have[e.String()] {
			t.Errorf("stats lacks event %s", e)
		}
	}
	// stats NAME... prints those, sorted, once each.
	out, err = runScript(t, "stats vmas faults vmas pt_frees", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if out != "faults 0\npt_frees 0\nvmas 0\n" {
		t.Fatalf("stats with names: %q", out)
	}
}

// TestCounters checks where counters are read: the current address
// space, the machine for machine-wide events and sim_ns, and that reset
// zeroes events but not state.
func TestCounters(t *testing.T) {
	e := NewEnv(Options{})
	s, _ := Parse("t", []byte("mm a\nmmap 0x10000000 64K shared\nwrite 0x10000000 64K\nmm b\n"))
	if err := e.Run(s); err != nil {
		t.Fatal(err)
	}
	m := e.m
	a, _ := m.MM("a")
	b, _ := m.MM("b")
	if got := counterValue(b, "faults"); got != 0 {
		t.Fatalf("b's faults %d", got)
	}
	if got := counterValue(a, "faults"); got != 16 || got != a.Meter().Count(cost.Faults) {
		t.Fatalf("a's faults %d", got)
	}
	if got := counterValue(a, "rss_file"); got != 16 || counterValue(a, "rss_shmem") != 16 || counterValue(a, "rss_anon") != 0 {
		t.Fatalf("a's rss: file %d shmem %d anon %d", got, counterValue(a, "rss_shmem"), counterValue(a, "rss_anon"))
	}
	m.TLB().FlushTLBAll()
	for _, mm := range []*mmu.MM{a, b} {
		if got := counterValue(mm, "tlb_flush_all"); got != 1 {
			t.Fatalf("%s sees tlb_flush_all %d, want the machine's 1", mm.Name(), got)
		}
	}
	c := m.Counts()
	if got := counterValue(b, "sim_ns"); got != m.SimNS() || got != m.Arch().Costs.NS(&c) {
		t.Fatalf("sim_ns %d, machine %d", got, m.SimNS())
	}
	s, _ = Parse("t", []byte("use a\nreset\nexpect faults == 0\nexpect tlb_flush_all == 0\nexpect sim_ns == 0\nexpect rss_shmem == 16\nexpect vmas == 1\n"))
	if err := e.Run(s); err != nil {
		t.Fatal(err)
	}
}

// TestCheckCatchesCorruption checks that check compares with the oracle,
// not with the model: a page whose content changes behind the model's
// back fails the check.
func TestCheckCatchesCorruption(t *testing.T) {
	e := NewEnv(Options{})
	s, _ := Parse("t", []byte("mmap 0x10000000 64K\nwrite 0x10000000 64K\ncheck 0x10000000 64K\n"))
	if err := e.Run(s); err != nil {
		t.Fatal(err)
	}
	mm, _ := e.MM()
	tr, ok := mm.Translate(0x10003000)
	if !ok {
		t.Fatal("not mapped")
	}
	e.m.Memory().SetContent(tr.PFN, 1)
	s, _ = Parse("t", []byte("check 0x10000000 64K\n"))
	err := e.Run(s)
	var f *Failure
	if !errors.As(err, &f) || f.Expected != "page 0x10003000 = 0x10003000" || f.Found != "0x1" {
		t.Fatalf("got %v", err)
	}
}

// TestCPUsBetweenCommands checks that cpus rebuilds the TLBs and keeps
// the data and the tables.
func TestCPUsBetweenCommands(t *testing.T) {
	src := `mmap 0x10000000 64K
write 0x10000000 64K
cpus 4
read 0x10000000 64K cpu=3
write 0x10000000 64K cpu=2 val=9
cpus 1
check 0x10000000 64K val=9
! read 0x10000000 cpu=1
expect-error EINVAL
`
	if _, err := runScript(t, src, Options{Audit: true}); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryLine(t *testing.T) {
	tests := []struct {
		name, src string
	}{
		{name: "before the machine", src: "memory 32M\nmmap 0x10000000 64M\n! write 0x10000000 64M\nexpect-error ENOMEM"},
		{name: "rebuild keeps names", src: "mm a\nmm b\nmemory 32M\nexpect vmas == 0\nuse a\nmmap 0x10000000 64M\n! write 0x10000000 64M\nexpect-error ENOMEM"},
		{name: "rebuild keeps the current mm", src: "mm a\nmm b\nmemory 32M\nmm c\nuse b\n"},
		{name: "after stats", src: "mm a\nstats\nmemory 16M\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := runScript(t, tc.src, Options{Audit: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A memory line after something was allocated (pin is not an mmap,
	// so the parser lets it through) fails at run time with EBUSY.
	e := NewEnv(Options{})
	s, _ := Parse("t", []byte("mm a\n"))
	if err := e.Run(s); err != nil {
		t.Fatal(err)
	}
	a, _ := e.MM()
	if err := a.Mmap(0x10000000, 64<<10, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true}); err != nil {
		t.Fatal(err)
	}
	s, _ = Parse("t", []byte("memory 1G\n"))
	if err := e.Run(s); err == nil || !errors.Is(err, mmu.EBUSY) {
		t.Fatalf("memory after mappings: %v", err)
	}
	if err := a.Munmap(0x10000000, 64<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Memory().Alloc(0, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.Run(s); err == nil || !errors.Is(err, mmu.EBUSY) {
		t.Fatalf("memory after an allocation: %v", err)
	}
}

func TestTrace(t *testing.T) {
	out, err := runScript(t, "mmap 0x10000000 8K\ntrace on\nwrite 0x10000000\ntrace off\nwrite 0x10001000\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "init     pte_sets           n=1 addr=0x10000000") {
		t.Fatalf("no pte_sets line for the first write:\n%s", out)
	}
	if strings.Contains(out, "0x10001000") {
		t.Fatalf("traced after trace off:\n%s", out)
	}
}

// TestDeterministic runs one script twice and compares the output byte
// for byte.
func TestDeterministic(t *testing.T) {
	src := `cpus 3
seed 5
mmap 0x10000000 4M folio=64K
write 0x10000000 4M cpu=1
mmap 0x20000000 1M file=x shared
write 0x20000000 1M cpu=2
trace on
mprotect 0x10000000 1M r
trace off
dump
stats
`
	a, err := runScript(t, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := runScript(t, src, Options{})
	if a != b {
		t.Fatal("two runs differ")
	}
}

// TestLimits checks the fuzzing caps.
func TestLimits(t *testing.T) {
	l := limits{maxSize: 1 << 20, maxNum: 8, memory: 64 << 20}
	for _, src := range []string{"mmap 0x10000000 2M", "cpus 9", "memory 128M", "read 0x10000000 4M", "stats faults\nmmap 0x1000000 4K folio=2M"} {
		_, err := runScript(t, src, Options{limits: l})
		if !errors.Is(err, mmu.EINVAL) {
			t.Errorf("%q: %v, want EINVAL from the cap", src, err)
		}
	}
	if _, err := runScript(t, "mmap 0x10000000 1M\nwrite 0x10000000 1M\ncpus 8", Options{limits: l}); err != nil {
		t.Fatal(err)
	}
}

// TestSameOutputAcrossGOMAXPROCS runs the testdata suite with GOMAXPROCS 1
// and 2 and compares the outputs byte for byte (TARGETS.md P7).
func TestSameOutputAcrossGOMAXPROCS(t *testing.T) {
	paths, err := filepath.Glob("../testdata/*.pts")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	outputs := func() []string {
		var outs []string
		for _, p := range paths {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			var out, diag bytes.Buffer
			st := Exec(p, src, &out, &diag, Options{})
			outs = append(outs, fmt.Sprintf("%s%s%d", out.String(), diag.String(), st))
		}
		return outs
	}
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	one := outputs()
	runtime.GOMAXPROCS(2)
	two := outputs()
	for i := range one {
		if one[i] != two[i] {
			t.Errorf("%s: output differs between GOMAXPROCS 1 and 2", paths[i])
		}
	}
}

// TestBootCostsNothing checks that counters and sim_ns start at zero
// after the machine's boot, whatever the arch and the memory size: the
// kernel's setup is not the script's work, and frames cost nothing
// until used (SCENARIOS.md).
func TestBootCostsNothing(t *testing.T) {
	for _, a := range archs.Names() {
		for _, mem := range []string{"", "memory 1G\n", "memory 256G\n"} {
			t.Run(a+"/"+strings.TrimSpace(mem), func(t *testing.T) {
				e := NewEnv(Options{})
				s, err := Parse("t", []byte("arch "+a+"\n"+mem+"audit\n"))
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Run(s); err != nil {
					t.Fatal(err)
				}
				if c := e.m.Counts(); c != (cost.Counts{}) || e.m.SimNS() != 0 {
					t.Fatalf("boot left counts %v, sim_ns %d", c, e.m.SimNS())
				}
			})
		}
	}
}

// TestPanicIsAFailure checks that a command that panics (a bug) fails the
// script at its line with ErrInternal, exit status 1, even on a `!` line,
// instead of crashing with a Go panic trace.
func TestPanicIsAFailure(t *testing.T) {
	boom := &Command{Name: "boom", Usage: "boom", Summary: "panics",
		Run: func(*Env, *Call) error { panic("kaboom") }}
	for _, bang := range []bool{false, true} {
		s := &Script{Name: "t.pts", Calls: []*Call{{Cmd: boom, File: "t.pts", Line: 3, Text: "boom", Bang: bang}}}
		err := Run(s, Options{})
		var f *Failure
		if !errors.As(err, &f) || !errors.Is(err, ErrInternal) || f.Line != 3 || !strings.Contains(f.Found, "kaboom") {
			t.Fatalf("bang %v: error %v (%T)", bang, err, err)
		}
		if ExitStatus(err) != 1 {
			t.Fatalf("exit status %d", ExitStatus(err))
		}
	}
}

// TestPinAllOrNothing checks that a pin that fails part-way releases the
// pins it took: the pages it reached hold no pin afterwards, on every
// arch, while the same range pins and unpins whole when it can.
func TestPinAllOrNothing(t *testing.T) {
	for _, a := range archs.Names() {
		t.Run(a, func(t *testing.T) {
			src := fmt.Sprintf(`arch %s
mmap 0x10000000 1M
write 0x10000000 64K
! pin 0x10000000 2M
expect-error EFAULT
! unpin 0x10000000 4K
expect-error EINVAL
mmap 0x10200000 64K none
! pin 0x10100000 2M
expect-error EFAULT
! unpin 0x10000000 4K
pin 0x10000000 1M
unpin 0x10000000 1M
! unpin 0x10000000 4K
`, a)
			if _, err := runScript(t, src, Options{Audit: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConfigNumbers checks that numeric config values follow the
// script's lexical rules: decimal (a leading zero is not octal), 0x-hex,
// K/M/G/T suffixes; other spellings strconv would take (0b10, 1_0) are
// malformed.
func TestConfigNumbers(t *testing.T) {
	tests := []struct {
		val  string
		want int
	}{{"010", 10}, {"0x40", 64}, {"0X40", 64}, {"1K", 1024}, {"64", 64}, {"0", 0}}
	for _, tc := range tests {
		for _, built := range []bool{false, true} {
			e := NewEnv(Options{})
			src := "config mremap_latency_limit=" + tc.val + "\n"
			if built {
				src = "audit\n" + src
			}
			s, err := Parse("t", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Run(s); err != nil {
				t.Fatal(err)
			}
			m, err := e.Machine()
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Knobs().MremapLatencyLimit; got != tc.want {
				t.Errorf("mremap_latency_limit=%s (machine built first: %v): %d, want %d", tc.val, built, got, tc.want)
			}
		}
	}
	for _, bad := range []string{"0b10", "1_0", "0o7", "1Q"} {
		if _, err := Parse("t", []byte("config mremap_latency_limit="+bad)); ExitStatus(err) != 2 {
			t.Errorf("mremap_latency_limit=%s: %v, want malformed", bad, err)
		}
	}
}

// TestArchAllOrNothing checks that an arch line with a switch the arch
// cannot honour fails without changing the architecture.
func TestArchAllOrNothing(t *testing.T) {
	e := NewEnv(Options{})
	s, err := Parse("t", []byte("! arch s390x move_pmd=on\nexpect-error EINVAL\nmmap 0x10000000 64K\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(s); err != nil {
		t.Fatal(err)
	}
	if got := e.m.Arch().Name; got != DefaultArch {
		t.Fatalf("arch %s after a failed arch line, want %s", got, DefaultArch)
	}
}
