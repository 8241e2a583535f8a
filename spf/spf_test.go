package spf_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/spf"
	"github.com/ptsim/ptsim/spf/sched"
)

const (
	base = 0x7f00_0000_0000
	pmd  = 2 << 20
	page = 4096
)

// machine returns a small x86_64 machine with cpus CPUs and an address
// space, failing the test on error.
func machine(t testing.TB, cpus int) (*mmu.Machine, *mmu.MM) {
	t.Helper()
	a, err := archs.ByName("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 8 << 20, CPUs: cpus, TLBEntries: 16, TLBWays: 4})
	if err != nil {
		t.Fatal(err)
	}
	mm, err := m.NewMM("init")
	if err != nil {
		t.Fatal(err)
	}
	return m, mm
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var modes = []mmu.SPFMode{mmu.SPFOff, mmu.SPFSeq, mmu.SPFVMA}

// pft runs pft with 4 threads over 64 pages (and a writer) in mode and
// returns the machine, the address space and the result.
func pft(t *testing.T, mode mmu.SPFMode, seed uint64, writer int) (*mmu.Machine, *mmu.MM, spf.PFTResult) {
	t.Helper()
	m, mm := machine(t, 5)
	must(t, mm.Mmap(base, 64*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	r, err := spf.PFT(mm, spf.PFTConfig{Threads: 4, Addr: base, Len: 64 * page, Writer: writer},
		spf.Options{Mode: mode, Seed: seed, CheckEachStep: true})
	must(t, err)
	must(t, m.Check())
	return m, mm, r
}

// TestPFTPathsAgree is the differential oracle: the three fault paths
// leave the same translations, contents and RSS; only costs differ.
func TestPFTPathsAgree(t *testing.T) {
	type state struct {
		vals []uint64
		rss  int64
		vmas int
	}
	var ref *state
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			m, mm, r := pft(t, mode, 3, 4)
			st := &state{rss: mm.RSS(mmu.MMAnonPages), vmas: len(mm.VMAs())}
			for a := uint64(base); a < base+64*page; a += page {
				v, ok := mm.Content(a)
				if !ok || v != a {
					t.Fatalf("page %#x holds %#x (ok %v), want its address", a, v, ok)
				}
				tr, ok := mm.Translate(a)
				if !ok || tr.PFN == m.ZeroPage() {
					t.Fatalf("page %#x not mapped to its own page", a)
				}
				st.vals = append(st.vals, v)
			}
			if r.Faults != 64 {
				t.Fatalf("%d faults, want 64", r.Faults)
			}
			if mode != mmu.SPFOff && r.Attempts != r.Success+r.Retries {
				t.Fatalf("attempts %d != success %d + retries %d", r.Attempts, r.Success, r.Retries)
			}
			if mode == mmu.SPFOff && r.Attempts != 0 {
				t.Fatalf("spf=off made %d speculative attempts", r.Attempts)
			}
			if mode != mmu.SPFOff && r.Success == 0 {
				t.Fatalf("no fault completed without mmap_lock: %+v", r)
			}
			if r.WriterPairs != 4 {
				t.Fatalf("writer did %d pairs, want 4", r.WriterPairs)
			}
			if ref == nil {
				ref = st
				return
			}
			if fmt.Sprint(*st) != fmt.Sprint(*ref) {
				t.Fatalf("end state differs from spf=off: %v vs %v", *st, *ref)
			}
		})
	}
}

func TestPFTReplaysFromSeed(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			_, _, a := pft(t, mode, 11, 2)
			_, _, b := pft(t, mode, 11, 2)
			if a != b {
				t.Fatalf("seed 11 replayed differently:\n%+v\n%+v", a, b)
			}
			_, _, c := pft(t, mode, 12, 2)
			if c.Hash == a.Hash {
				t.Fatalf("seeds 11 and 12 gave the same schedule")
			}
		})
	}
}

func TestPFTErrors(t *testing.T) {
	m, mm := machine(t, 3)
	must(t, mm.Mmap(base, 16*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	before := mm.Meter().Counts()
	for _, tc := range []struct {
		name string
		cfg  spf.PFTConfig
	}{
		{"no threads", spf.PFTConfig{Threads: 0, Addr: base, Len: 16 * page}},
		{"too many threads", spf.PFTConfig{Threads: 3, Addr: base, Len: 16 * page, Writer: 1}},
		{"unaligned", spf.PFTConfig{Threads: 1, Addr: base + 1, Len: 16 * page}},
		{"empty", spf.PFTConfig{Threads: 1, Addr: base, Len: 0}},
		{"unmapped", spf.PFTConfig{Threads: 1, Addr: base, Len: 32 * page}},
		{"negative writer", spf.PFTConfig{Threads: 1, Addr: base, Len: 16 * page, Writer: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := spf.PFT(mm, tc.cfg, spf.Options{Mode: mmu.SPFSeq})
			if !errors.Is(err, mmu.EINVAL) {
				t.Fatalf("want EINVAL, got %v", err)
			}
		})
	}
	if after := mm.Meter().Counts(); after != before {
		t.Fatal("a refused pft changed the counters")
	}
	must(t, m.Check())
}

// schedules returns how many seeded schedules the correctness test runs:
// SPF_SCHEDULES when set (a long run: SPF_SCHEDULES=100000), else 10,000
// (about 45 s on this project's machines), or 300 under the race
// detector or -short, where each schedule costs thirty times more.
func schedules(t *testing.T) int {
	if s := os.Getenv("SPF_SCHEDULES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("SPF_SCHEDULES=%q: want a positive number", s)
		}
		return n
	}
	if raceEnabled || testing.Short() {
		t.Logf("race detector or -short: 300 schedules (go test ./spf/ runs 10,000)")
		return 300
	}
	return 10_000
}

// chunk returns the address of chunk i: four pages alone in a PMD, so
// that unmapping it frees its PTE table.
func chunk(i int) uint64 { return base + uint64(i)*pmd }

// race runs one schedule: two threads write every page of two chunks
// (each its own half of each chunk), while a writer unmaps a chunk and
// maps it again twice. The machine's checker and the Sim's invariants
// (no lost or torn write, no mapping into an unmapped VMA) run after
// every step.
func race(t *testing.T, seed uint64, mode mmu.SPFMode, ptl mmu.SPFPTLModel) (*spf.Sim, error) {
	t.Helper()
	m, mm := machine(t, 3)
	for i := 0; i < 2; i++ {
		must(t, mm.Mmap(chunk(i), 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	}
	sim, err := spf.New(mm, spf.Options{Mode: mode, PTL: ptl, Seed: seed, Window: sched.Unordered, CheckEachStep: true, MaxSteps: 100_000})
	must(t, err)
	for w := 0; w < 2; w++ {
		must(t, sim.Go(fmt.Sprintf("fault%d", w), w, func(th *spf.Thread) {
			for pass := 0; pass < 2; pass++ {
				for i := 0; i < 2; i++ {
					for p := 0; p < 2; p++ {
						a := chunk(i) + uint64(2*w+p)*page
						err := th.Write(a, a^uint64(th.ID())<<40|uint64(pass))
						if err != nil && !spf.IsSegv(err) {
							th.Fail(err)
						}
						th.Yield()
					}
				}
			}
		}))
	}
	must(t, sim.Go("writer", 2, func(th *spf.Thread) {
		for k := 0; k < 2; k++ {
			c := chunk(k % 2)
			if err := th.Munmap(c, 4*page); err != nil {
				th.Fail(err)
			}
			th.Yield()
			if err := th.Mmap(c, 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
				th.Fail(err)
			}
			th.Yield()
		}
	}))
	err = sim.Run()
	if err == nil {
		err = m.Check()
	}
	return sim, err
}

// TestSchedules runs 10,000 seeded schedules of faulting threads against
// an mmap/munmap writer, cycling through the fault paths and the safe PTE
// lock models, with every invariant checked after every step. A failure
// names its seed; TestReplay shows that a seed replays exactly.
func TestSchedules(t *testing.T) {
	n := schedules(t)
	safe := []mmu.SPFPTLModel{mmu.PTLRCU, mmu.PTLTableLifetime}
	for i := 0; i < n; i++ {
		seed := uint64(i + 1)
		mode := modes[i%3]
		ptl := safe[(i/3)%2]
		if _, err := race(t, seed, mode, ptl); err != nil {
			t.Fatalf("schedule seed %d (spf=%s spf_ptl=%s): %v\nreplay: race(t, %d, %v, %v)", seed, mode, ptl, err, seed, mode, ptl)
		}
	}
}

// TestSchedulesExerciseAborts checks that the schedules reach the
// speculative commit's aborts and the per-VMA lock's fallbacks: a test
// that never races proves nothing. (pmd_same never fails here: every PMD
// change comes from an mmap writer, whose odd count the first sequence
// check sees first. The aborts a lone thread reaches are in
// TestSpeculativeAbortReasons.)
func TestSchedulesExerciseAborts(t *testing.T) {
	reasons := map[cost.Event]uint64{}
	n := uint64(400)
	if raceEnabled {
		n = 150
	}
	for seed := uint64(1); seed <= n; seed++ {
		for _, mode := range []mmu.SPFMode{mmu.SPFSeq, mmu.SPFVMA} {
			_, mm := machine(t, 3)
			if _, err := raceOn(t, mm, seed, mode); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			c := mm.Meter().Counts()
			for e := cost.SPFAbortOdd; e <= cost.VMALockAbort; e++ {
				reasons[e] += c[e]
			}
			reasons[cost.SPFSuccess] += c[cost.SPFSuccess]
		}
	}
	for _, e := range []cost.Event{cost.SPFSuccess, cost.SPFAbortOdd, cost.SPFAbortUnmapped, cost.SPFAbortVMACopy, cost.SPFAbortPMD,
		cost.SPFAbortAnonVMA, cost.SPFAbortMapSeq1, cost.SPFAbortMapPTL, cost.SPFAbortMapSeq2, cost.VMALockMiss, cost.VMALockAbort} {
		if reasons[e] == 0 {
			t.Errorf("%s never happened in %d schedules", e, n)
		}
	}
}

// raceOn is race on a given address space, in the safe rcu model.
func raceOn(t *testing.T, mm *mmu.MM, seed uint64, mode mmu.SPFMode) (*spf.Sim, error) {
	t.Helper()
	for i := 0; i < 2; i++ {
		must(t, mm.Mmap(chunk(i), 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	}
	sim, err := spf.New(mm, spf.Options{Mode: mode, Seed: seed, Window: sched.Unordered, MaxSteps: 100_000})
	must(t, err)
	for w := 0; w < 2; w++ {
		must(t, sim.Go(fmt.Sprintf("fault%d", w), w, func(th *spf.Thread) {
			for pass := 0; pass < 2; pass++ {
				for i := 0; i < 2; i++ {
					for p := 0; p < 2; p++ {
						a := chunk(i) + uint64(2*w+p)*page
						if err := th.Write(a, a); err != nil && !spf.IsSegv(err) {
							th.Fail(err)
						}
						th.Yield()
					}
				}
			}
		}))
	}
	must(t, sim.Go("writer", 2, func(th *spf.Thread) {
		for k := 0; k < 2; k++ {
			c := chunk(k % 2)
			if err := th.Munmap(c, 4*page); err != nil {
				th.Fail(err)
			}
			th.Yield()
			if err := th.Mmap(c, 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
				th.Fail(err)
			}
			th.Yield()
		}
	}))
	err = sim.Run()
	if err == nil {
		err = mm.Machine().Check()
	}
	return sim, err
}

// TestHildenbrandHazard: with free_early, munmap frees a PTE table's lock
// before the table, and some schedule lets a speculative commit's
// trylock touch the freed lock; the validator reports it with the seed,
// the seed replays it, and the fixes run the same seeds clean.
func TestHildenbrandHazard(t *testing.T) {
	var found uint64
	var msg string
	for seed := uint64(1); seed <= 3000 && found == 0; seed++ {
		_, err := race(t, seed, mmu.SPFSeq, mmu.PTLFreeEarly)
		if err == nil {
			continue
		}
		if !strings.Contains(err.Error(), "freed PTE lock") {
			t.Fatalf("seed %d failed otherwise: %v", seed, err)
		}
		found, msg = seed, err.Error()
	}
	if found == 0 {
		t.Fatal("no schedule in 3000 reached the freed-lock trylock")
	}
	if !strings.Contains(msg, fmt.Sprintf("seed %d", found)) {
		t.Fatalf("report does not name the seed: %s", msg)
	}
	_, again := race(t, found, mmu.SPFSeq, mmu.PTLFreeEarly)
	if again == nil || again.Error() != msg {
		t.Fatalf("seed %d did not replay: %v", found, again)
	}
	for _, fix := range []mmu.SPFPTLModel{mmu.PTLTableLifetime, mmu.PTLRCU} {
		for seed := uint64(1); seed <= found; seed++ {
			if _, err := race(t, seed, mmu.SPFSeq, fix); err != nil {
				t.Fatalf("spf_ptl=%s seed %d: %v", fix, seed, err)
			}
		}
	}
	t.Logf("hazard first found at seed %d: %s", found, msg)
}
