package spf_test

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/spf"
	"github.com/ptsim/ptsim/spf/sched"
)

// TestSpeculativeAbortReasons: each abort of Michel Lespinasse's
// speculative fault that needs no concurrent writer, reached on its own
// by one thread: the fault counts one attempt, the one reason and one
// retry, then the classic path under mmap_lock maps the page (or raises
// SIGSEGV); a fault the speculative path can finish counts a success.
// The reasons that need a writer (odd count, VMA copy, the commit's
// checks) are reached by TestSchedulesExerciseAborts.
func TestSpeculativeAbortReasons(t *testing.T) {
	rw := mmu.ProtRead | mmu.ProtWrite
	for _, tc := range []struct {
		name string
		// setup maps and pre-faults (under mmap_lock, before the Sim).
		setup func(t *testing.T, mm *mmu.MM)
		addr  uint64
		write bool
		segv  bool
		// reason is the abort counted, or SPFSuccess.
		reason cost.Event
	}{
		{"no VMA: unmapped", func(t *testing.T, mm *mmu.MM) {}, base, true, true, cost.SPFAbortUnmapped},
		{"VMA ends below the address: unmapped", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, rw, mmu.MapFlags{}))
		}, base + 4*page, true, true, cost.SPFAbortUnmapped},
		{"shared file VMA: no speculation", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, rw, mmu.MapFlags{File: "f", Shared: true}))
		}, base, true, false, cost.SPFAbortNoSpeculate},
		{"write to a read-only VMA: access error", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, mmu.ProtRead, mmu.MapFlags{}))
		}, base, true, true, cost.SPFAbortAccessError},
		{"no PUD table: pud", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, rw, mmu.MapFlags{}))
		}, base, true, false, cost.SPFAbortPUD},
		{"no PTE table: pmd", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, rw, mmu.MapFlags{}))
			must(t, mm.Mmap(base+pmd, 4*page, rw, mmu.MapFlags{}))
			must(t, mm.Write(0, base, 1))
		}, base + pmd, true, false, cost.SPFAbortPMD},
		{"PTE table there, VMA without anon_vma: anon_vma", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, rw, mmu.MapFlags{}))
			must(t, mm.Mmap(base+8*page, 4*page, rw, mmu.MapFlags{}))
			must(t, mm.Write(0, base, 1))
		}, base + 8*page, true, false, cost.SPFAbortAnonVMA},
		{"read fault (zero page not modelled speculatively)", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, rw, mmu.MapFlags{}))
			must(t, mm.Write(0, base, 1))
		}, base + page, false, false, cost.SPFAbortNoSpeculate},
		{"table and anon_vma there: success", func(t *testing.T, mm *mmu.MM) {
			must(t, mm.Mmap(base, 4*page, rw, mmu.MapFlags{}))
			must(t, mm.Write(0, base, 1))
		}, base + page, true, false, cost.SPFSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, mm := machine(t, 2)
			tc.setup(t, mm)
			must(t, m.Check())
			sim, err := spf.New(mm, spf.Options{Mode: mmu.SPFSeq, Seed: 1, Window: sched.Unordered, MaxSteps: 100_000, CheckEachStep: true})
			must(t, err)
			before := mm.Meter().Counts()
			// A second thread keeps mm_users above one: v2 does not
			// speculate for a single-threaded mm.
			done := false
			must(t, sim.Go("idle", 1, func(th *spf.Thread) {
				for !done {
					th.Yield()
				}
			}))
			must(t, sim.Go("fault", 0, func(th *spf.Thread) {
				defer func() { done = true }()
				var err error
				if tc.write {
					err = th.Write(tc.addr, 7)
				} else {
					_, err = th.Read(tc.addr)
				}
				if tc.segv != spf.IsSegv(err) || (err != nil && !tc.segv) {
					th.Fail(err)
				}
			}))
			must(t, sim.Run())
			must(t, m.Check())
			after := mm.Meter().Counts()
			d := after.Sub(&before)
			var reasons []cost.Event
			for e := cost.SPFAbortOdd; e <= cost.SPFAbortMapSeq2; e++ {
				for i := uint64(0); i < d[e]; i++ {
					reasons = append(reasons, e)
				}
			}
			if tc.reason == cost.SPFSuccess {
				if d[cost.SPFAttempts] != 1 || d[cost.SPFSuccess] != 1 || d[cost.SPFRetries] != 0 || len(reasons) != 0 {
					t.Fatalf("attempts %d success %d retries %d aborts %v, want one successful attempt",
						d[cost.SPFAttempts], d[cost.SPFSuccess], d[cost.SPFRetries], reasons)
				}
				return
			}
			if d[cost.SPFAttempts] != 1 || d[cost.SPFRetries] != 1 || d[cost.SPFSuccess] != 0 || len(reasons) != 1 || reasons[0] != tc.reason {
				t.Fatalf("attempts %d success %d retries %d aborts %v, want one attempt aborted by %s",
					d[cost.SPFAttempts], d[cost.SPFSuccess], d[cost.SPFRetries], reasons, tc.reason)
			}
			if !tc.segv {
				if _, ok := mm.Translate(tc.addr); !ok {
					t.Fatalf("the classic retry left %#x unmapped", tc.addr)
				}
			}
		})
	}
}

// TestNoSpeculationSingleThreaded: v2 (28/35) does not try a speculative
// fault while the mm has one user: a lone thread's faults go straight to
// mmap_lock and count no attempt; with a second thread alive the same
// fault speculates.
func TestNoSpeculationSingleThreaded(t *testing.T) {
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			m, mm := machine(t, 2)
			must(t, mm.Mmap(base, 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
			must(t, mm.Write(0, base, 1))
			sim, err := spf.New(mm, spf.Options{Mode: mmu.SPFSeq, Seed: 1, Window: sched.Unordered, MaxSteps: 100_000, CheckEachStep: true})
			must(t, err)
			done := false
			if threads == 2 {
				must(t, sim.Go("idle", 1, func(th *spf.Thread) {
					for !done {
						th.Yield()
					}
				}))
			}
			before := mm.Meter().Counts()
			must(t, sim.Go("fault", 0, func(th *spf.Thread) {
				defer func() { done = true }()
				for p := uint64(1); p < 4; p++ {
					if err := th.Write(base+p*page, p); err != nil {
						th.Fail(err)
					}
				}
			}))
			must(t, sim.Run())
			must(t, m.Check())
			after := mm.Meter().Counts()
			d := after.Sub(&before)
			want := uint64(0)
			if threads == 2 {
				want = 3
			}
			if d[cost.SPFAttempts] != want || d[cost.SPFSuccess] != want {
				t.Fatalf("spf_attempts %d spf_success %d, want %d", d[cost.SPFAttempts], d[cost.SPFSuccess], want)
			}
			for p := uint64(1); p < 4; p++ {
				if v, ok := mm.Content(base + p*page); !ok || v != p {
					t.Fatalf("page %d: %d %v", p, v, ok)
				}
			}
		})
	}
}
