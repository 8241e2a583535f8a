package spf_test

import (
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/spf"
)

// TestVMALockNoVMAIsAbort: lock_vma_under_rcu counts VMA_LOCK_ABORT, not
// VMA_LOCK_MISS, when the lookup finds no VMA (Linux 6.4's goto inval),
// and so for a VMA it may not lock (anonymous without an anon_vma, not
// anonymous, userfaultfd armed); either way the fault falls back to mmap_lock, which maps
// the page or raises SIGSEGV.
func TestVMALockNoVMAIsAbort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(mm *mmu.MM) error
		segv  bool
		// write faults the address twice: the second fault, on the
		// next page, finds the anon_vma the first one made.
		twice                         bool
		attempts, abort, success, ret uint64
	}{
		{"no VMA", func(mm *mmu.MM) error { return nil }, true, false, 1, 1, 0, 1},
		{"anonymous, no anon_vma yet, then locked", func(mm *mmu.MM) error {
			return mm.Mmap(base, 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{})
		}, false, true, 2, 1, 1, 1},
		{"userfaultfd armed (uffd-wp)", func(mm *mmu.MM) error {
			if err := mm.Mmap(base, 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
				return err
			}
			if err := mm.Write(0, base+page, 1); err != nil {
				return err
			}
			mm.FindVMA(base).Flags |= mmu.VMUffdWP
			return nil
		}, false, false, 1, 1, 0, 1},
		{"shared file VMA (not anonymous)", func(mm *mmu.MM) error {
			return mm.Mmap(base, 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{File: "f", Shared: true})
		}, false, false, 1, 1, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, mm := machine(t, 2)
			must(t, tc.setup(mm))
			must(t, m.Check())
			sim, err := spf.New(mm, spf.Options{Mode: mmu.SPFVMA, Seed: 1, CheckEachStep: true})
			must(t, err)
			must(t, sim.Go("fault", 0, func(th *spf.Thread) {
				err := th.Write(base, 1)
				if tc.segv != spf.IsSegv(err) || (err != nil && !tc.segv) {
					th.Fail(err)
				}
				if tc.twice {
					if err := th.Write(base+page, 2); err != nil {
						th.Fail(err)
					}
				}
			}))
			must(t, sim.Run())
			must(t, m.Check())
			c := mm.Meter().Counts()
			got := [5]uint64{c[cost.SPFAttempts], c[cost.VMALockAbort], c[cost.VMALockMiss], c[cost.SPFSuccess], c[cost.SPFRetries]}
			want := [5]uint64{tc.attempts, tc.abort, 0, tc.success, tc.ret}
			if got != want {
				t.Fatalf("attempts, vma_lock_abort, vma_lock_miss, spf_success, spf_retries = %v, want %v", got, want)
			}
		})
	}
}

// TestVMALockMissRetries: a VMA the lookup found under RCU but a writer
// detached before vma_start_read counts VMA_LOCK_MISS, and
// lock_vma_under_rcu looks again in the same attempt (the area was
// replaced with another one), so every attempt still ends in exactly one
// success or one abort: spf_attempts == spf_success + vma_lock_abort
// (the workload's VMAs allow every access, so no access error falls
// back). Counting a miss as an attempt's end (or an abort for a detached
// VMA) breaks that sum or leaves the miss unseen in every schedule.
func TestVMALockMissRetries(t *testing.T) {
	n := uint64(400)
	if raceEnabled {
		n = 150
	}
	misses := uint64(0)
	for seed := uint64(1); seed <= n; seed++ {
		_, mm := machine(t, 3)
		if _, err := raceOn(t, mm, seed, mmu.SPFVMA); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		c := mm.Meter().Counts()
		if c[cost.SPFAttempts] != c[cost.SPFSuccess]+c[cost.VMALockAbort] {
			t.Fatalf("seed %d: spf_attempts %d != spf_success %d + vma_lock_abort %d (vma_lock_miss %d)",
				seed, c[cost.SPFAttempts], c[cost.SPFSuccess], c[cost.VMALockAbort], c[cost.VMALockMiss])
		}
		if c[cost.SPFRetries] != c[cost.VMALockAbort] {
			t.Fatalf("seed %d: spf_retries %d != vma_lock_abort %d", seed, c[cost.SPFRetries], c[cost.VMALockAbort])
		}
		misses += c[cost.VMALockMiss]
	}
	if misses == 0 {
		t.Fatalf("no schedule in %d detached a VMA between lookup and lock", n)
	}
	t.Logf("%d misses in %d schedules", misses, n)
}
