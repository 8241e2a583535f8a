package exercise

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// TestGolden pins the problem and answer of two seeds per kind, byte for
// byte: the same seed must give the same exercise on any machine.
func TestGolden(t *testing.T) {
	for _, k := range Kinds() {
		for _, seed := range []uint64{1, 42} {
			name := fmt.Sprintf("%s-%d", k, seed)
			t.Run(name, func(t *testing.T) {
				e, err := Generate(Options{Seed: seed, Kind: k})
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join("testdata", name+".golden")
				if *update {
					if err := os.WriteFile(path, []byte(e.String()), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if e.String() != string(want) {
					t.Errorf("exercise differs from %s (go test -update rewrites it after review):\n%s", path, e.String())
				}
			})
		}
	}
}

// TestDeterministic generates every kind on every arch it supports twice
// and compares the bytes, and checks that a seed that picks the kind and
// arch gives what naming them gives.
func TestDeterministic(t *testing.T) {
	for _, k := range Kinds() {
		for _, a := range KindArchs(k) {
			for seed := uint64(0); seed < 3; seed++ {
				e1, err := Generate(Options{Seed: seed, Kind: k, Arch: a})
				if err != nil {
					t.Fatalf("%s %s seed %d: %v", k, a, seed, err)
				}
				e2, err := Generate(Options{Seed: seed, Kind: k, Arch: a})
				if err != nil {
					t.Fatal(err)
				}
				if e1.String() != e2.String() {
					t.Errorf("%s %s seed %d: two runs differ", k, a, seed)
				}
				if !strings.Contains(e1.Problem, "seed "+fmt.Sprint(seed)) || !strings.Contains(e1.Answer, "-c)") {
					t.Errorf("%s %s seed %d: header missing:\n%s", k, a, seed, e1.Problem[:80])
				}
			}
		}
	}
	for seed := uint64(0); seed < 10; seed++ {
		e, err := Generate(Options{Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		named, err := Generate(Options{Seed: seed, Kind: e.Kind, Arch: e.Arch})
		if err != nil {
			t.Fatal(err)
		}
		if named.String() != e.String() {
			t.Errorf("seed %d: picking %s/%s differs from naming them", seed, e.Kind, e.Arch)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"unknown kind", Options{Kind: "paging"}, `exercise kind "paging"`},
		{"unsupported arch", Options{Kind: "contpte", Arch: "x86_64"}, "supports arm64"},
		{"unknown arch", Options{Kind: "translate", Arch: "vax"}, "unknown architecture"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(tc.o)
			if err == nil || !errors.Is(err, errno.EINVAL) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want EINVAL with %q", err, tc.want)
			}
		})
	}
	if len(Kinds()) != 5 || Summary("tlb") == "" || Summary("x") != "" || KindArchs("x") != nil {
		t.Errorf("kinds: %v", Kinds())
	}
}

// seeds is how many seeds the verification tests try per kind and arch.
func seeds() uint64 {
	if testing.Short() {
		return 3
	}
	return 12
}

// The verification tests check each kind's answer against the model
// through other observers than the ones the answer was read from: the
// MMU's access path, the counters, content, probes and the invariant
// checker.

func TestVerifyTranslate(t *testing.T) {
	for _, a := range KindArchs("translate") {
		for seed := uint64(0); seed < seeds(); seed++ {
			_, tc, err := buildTranslate(newRNG(seed, 7), a)
			if err != nil {
				t.Fatalf("%s seed %d: %v", a, seed, err)
			}
			ps := tc.m.Arch().PageSize()
			cases := map[string]int{}
			for _, tr := range tc.addrs {
				cases[tr.why]++
				if tr.ok {
					// The MMU (TLB, hardware walk) reaches the same frame.
					pfn, err := tc.mm.Access(0, tr.addr, mmu.Read)
					if err != nil {
						t.Fatalf("%s seed %d %#x: %v", a, seed, tr.addr, err)
					}
					if got := uint64(pfn)*ps + tr.addr%ps; got != tr.pa {
						t.Errorf("%s seed %d %#x: MMU reaches %#x, answer says %#x", a, seed, tr.addr, got, tr.pa)
					}
					continue
				}
				if _, ok := tc.mm.Translate(tr.addr); ok {
					t.Errorf("%s seed %d %#x: answer says fault, but it is mapped", a, seed, tr.addr)
				}
				if tr.why == "upper-none" && tc.mm.FindVMA(tr.addr) == nil {
					if _, err := tc.mm.Read(0, tr.addr); !errors.Is(err, mmu.EFAULT) {
						t.Errorf("%s seed %d %#x: read of a hole: %v, want EFAULT", a, seed, tr.addr, err)
					}
				}
			}
			if cases["page"] < 2 || cases["pte-none"] < 1 || cases["upper-none"] < 1 {
				t.Errorf("%s seed %d: cases %v lack one", a, seed, cases)
			}
			if err := tc.m.Check(); err != nil {
				t.Fatalf("%s seed %d: %v", a, seed, err)
			}
		}
	}
}

func TestVerifyMremap(t *testing.T) {
	paths := map[string]int{}
	for _, a := range KindArchs("mremap") {
		for seed := uint64(0); seed < seeds(); seed++ {
			_, tc, err := buildMremap(newRNG(seed, 7), a)
			if err != nil {
				t.Fatalf("%s seed %d: %v", a, seed, err)
			}
			var sum [4]uint64 // pte, pmd, pud, huge-pmd
			flushes := uint64(len(tc.afterFlushes))
			for _, st := range tc.steps {
				paths[st.path]++
				sum[map[string]int{"pte": 0, "pmd": 1, "pud": 2, "huge-pmd": 3}[st.path]] += st.entries
				flushes += uint64(len(st.flushes))
			}
			c := tc.counts
			if want := [4]uint64{c[cost.PTEMoves], c[cost.PMDMoves], c[cost.PUDMoves], c[cost.HugePMDMoves]}; sum != want {
				t.Errorf("%s seed %d: steps add up to %v, counters say %v", a, seed, sum, want)
			}
			if flushes != c[cost.TLBFlushRange] {
				t.Errorf("%s seed %d: %d flushes listed, tlb_flush_range %d", a, seed, flushes, c[cost.TLBFlushRange])
			}
			if c[cost.PTEMoves] > uint64(len(tc.values)) && c[cost.PMDMoves]+c[cost.PUDMoves] == 0 {
				t.Errorf("%s seed %d: %d PTEs moved, %d pages written", a, seed, c[cost.PTEMoves], len(tc.values))
			}
			// The data followed the move; the old range is gone.
			for va, v := range tc.values {
				got, err := tc.mm.Read(0, va-tc.src+tc.dst)
				if err != nil || got != v {
					t.Fatalf("%s seed %d: page %#x moved to %#x holds %#x, %v; want %#x", a, seed, va, va-tc.src+tc.dst, got, err, v)
				}
			}
			if tc.mm.FindVMA(tc.src) != nil && tc.mm.FindVMA(tc.src).Contains(tc.src) {
				t.Errorf("%s seed %d: old range still mapped", a, seed)
			}
			if err := tc.m.Check(); err != nil {
				t.Fatalf("%s seed %d: %v", a, seed, err)
			}
		}
	}
	for _, p := range []string{"pte", "pmd", "pud"} {
		if paths[p] == 0 {
			t.Errorf("no seed exercised the %s path: %v", p, paths)
		}
	}
}

func TestVerifyFork(t *testing.T) {
	for _, a := range KindArchs("fork") {
		for seed := uint64(0); seed < seeds(); seed++ {
			_, tc, err := buildFork(newRNG(seed, 7), a)
			if err != nil {
				t.Fatalf("%s seed %d: %v", a, seed, err)
			}
			if err := tc.m.Check(); err != nil {
				t.Fatalf("%s seed %d: %v", a, seed, err)
			}
			// The child's leaves, counted apart: fork_ptes and the
			// folio's new references.
			ps := tc.m.Arch().PageSize()
			var childPTEs, inFolio uint64
			for _, reg := range tc.regions {
				tc.child.PageTable().Leaves(reg.start, reg.end, func(l pgtable.Leaf) bool {
					childPTEs += l.Size / ps
					if tc.folio.Contains(tc.m.Arch().Format.PFN(l.Entry, l.Level)) {
						inFolio++
					}
					return true
				})
			}
			if childPTEs != tc.counts[cost.ForkPTEs] {
				t.Errorf("%s seed %d: child has %d PTEs, fork_ptes %d", a, seed, childPTEs, tc.counts[cost.ForkPTEs])
			}
			if uint64(tc.refAfter-tc.refBefore) != inFolio || uint64(tc.mapAfter-tc.mapBefore) != inFolio {
				t.Errorf("%s seed %d: folio refs %d->%d maps %d->%d, child maps %d of its pages", a, seed,
					tc.refBefore, tc.refAfter, tc.mapBefore, tc.mapAfter, inFolio)
			}
			// A write to a page the answer calls write-protected in the
			// parent faults; a write to one it calls writable does not.
			for _, p := range tc.pages {
				v := tc.parent.FindVMA(p.va)
				if !p.parent.present || v == nil || !mmu.AccessAllowed(v, mmu.Write) {
					continue
				}
				before := tc.parent.Meter().Count(cost.Faults)
				if err := tc.parent.Write(0, p.va, 1); err != nil {
					t.Fatalf("%s seed %d: write %#x: %v", a, seed, p.va, err)
				}
				faulted := tc.parent.Meter().Count(cost.Faults) > before
				if faulted == p.parent.write {
					t.Errorf("%s seed %d %#x: answer says writable=%v, but a write faulted=%v", a, seed, p.va, p.parent.write, faulted)
				}
			}
			if err := tc.m.Check(); err != nil {
				t.Fatalf("%s seed %d after writes: %v", a, seed, err)
			}
		}
	}
}

func TestVerifyContpte(t *testing.T) {
	folded := 0
	for seed := uint64(0); seed < 4*seeds(); seed++ {
		_, tc, err := buildContpte(newRNG(seed, 7), "arm64")
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		var folds, unfolds uint64
		for _, st := range tc.steps {
			folds += st.folds
			unfolds += st.unfolds
			if st.converts != st.folds+st.unfolds {
				t.Errorf("seed %d %s: converts %d != folds %d + unfolds %d", seed, st.op, st.converts, st.folds, st.unfolds)
			}
		}
		c := tc.mm.Meter().Counts()
		if folds != c[cost.ContpteFolds] || unfolds != c[cost.ContpteUnfolds] {
			t.Errorf("seed %d: steps %d folds %d unfolds, counters %d %d", seed, folds, unfolds, c[cost.ContpteFolds], c[cost.ContpteUnfolds])
		}
		// The last step's verdict against the leaves' contiguous bits.
		f := &tc.m.Arch().Format
		cont := 0
		tc.mm.PageTable().Leaves(tc.block, tc.block+64<<10, func(l pgtable.Leaf) bool {
			if f.Cont(l.Entry, l.Level) {
				cont++
			}
			return true
		})
		last := tc.steps[len(tc.steps)-1]
		if last.folded != (cont == 16) {
			t.Errorf("seed %d: answer says folded=%v, %d leaves carry PTE_CONT", seed, last.folded, cont)
		}
		if last.folded {
			folded++
		}
		if err := tc.m.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	if folded == 0 || folded == int(4*seeds()) {
		t.Errorf("%d of %d exercises end folded: want both outcomes", folded, 4*seeds())
	}
}

func TestVerifyTLB(t *testing.T) {
	kinds := map[bool]int{}
	for seed := uint64(0); seed < 4*seeds(); seed++ {
		_, tc, err := buildTLB(newRNG(seed, 7), "x86_64")
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		c := tc.counts
		full := c[cost.LocalFullFlushes] > 0
		kinds[full]++
		cpus := len(tc.before)
		if c[cost.TLBIPIs] != uint64(cpus-1) {
			t.Errorf("seed %d: %d IPIs for %d CPUs running the mm", seed, c[cost.TLBIPIs], cpus)
		}
		dropped := uint64(0)
		for cpu := range cpus {
			for i := 0; i < tc.pages; i++ {
				gone := tc.before[cpu][i] && !tc.after[cpu][i]
				if gone {
					dropped++
				}
				inRange := i >= tc.lo && i < tc.hi
				if tc.before[cpu][i] && (full || inRange) != gone {
					t.Errorf("seed %d cpu %d page %d: full=%v in range=%v dropped=%v", seed, cpu, i, full, inRange, gone)
				}
			}
		}
		if full != (tc.hi-tc.lo > 33) {
			t.Errorf("seed %d: %d pages, full flush %v", seed, tc.hi-tc.lo, full)
		}
		if dropped > c[cost.TLBInvalidated] {
			t.Errorf("seed %d: %d entries dropped, tlb_invalidated %d", seed, dropped, c[cost.TLBInvalidated])
		}
		if err := tc.m.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	if kinds[true] == 0 || kinds[false] == 0 {
		t.Errorf("flush kinds seen: %v", kinds)
	}
}

func TestPageList(t *testing.T) {
	for _, tc := range []struct {
		set  []bool
		want string
	}{
		{nil, "none"},
		{[]bool{true, true, false, true}, "0-1, 3"},
		{[]bool{false, true, true, true}, "1-3"},
	} {
		if got := pageList(tc.set); got != tc.want {
			t.Errorf("pageList(%v) = %q, want %q", tc.set, got, tc.want)
		}
	}
}
