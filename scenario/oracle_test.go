package scenario

import (
	"math/rand/v2"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
)

// TestPageMapMatchesNaive drives the run-based page map and a plain map
// with the same random operations and compares every key after each.
func TestPageMapMatchesNaive(t *testing.T) {
	const keys = 96
	for seed := uint64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var p pageMap
		naive := map[uint64]uint64{}
		for step := 0; step < 300; step++ {
			a := rng.Uint64N(keys)
			b := a + rng.Uint64N(keys-a+1)
			switch op := rng.IntN(4); op {
			case 0, 1: // set, constant or stepping
				base, stride := rng.Uint64N(1000), uint64(0)
				if op == 1 {
					stride = 4096
				}
				p.set(a, b, base, stride)
				for k := a; k < b; k++ {
					naive[k] = base + (k-a)*stride
				}
			case 2:
				p.clear(a, b)
				for k := a; k < b; k++ {
					delete(naive, k)
				}
			case 3: // move [a,b) to d (as Oracle.Move does)
				d := rng.Uint64N(keys)
				rs := p.extract(a, b)
				p.clear(a, b)
				p.clear(d, d+(b-a))
				p.place(rs, d-a)
				moved := map[uint64]uint64{}
				for k := a; k < b; k++ {
					if v, ok := naive[k]; ok {
						moved[k-a+d] = v
					}
					delete(naive, k)
				}
				for k := d; k < d+(b-a); k++ {
					delete(naive, k)
				}
				for k, v := range moved {
					naive[k] = v
				}
			}
			for k := uint64(0); k < 2*keys; k++ {
				got, ok := p.get(k)
				want, wok := naive[k]
				if ok != wok || got != want {
					t.Fatalf("seed %d step %d: key %d = %d,%v; want %d,%v (runs %v)", seed, step, k, got, ok, want, wok, p.runs)
				}
			}
			// Runs stay sorted, non-empty, disjoint and maximal.
			for i, r := range p.runs {
				if r.start >= r.end || i > 0 && (p.runs[i-1].end > r.start || p.runs[i-1].continues(r)) {
					t.Fatalf("seed %d step %d: bad runs %v", seed, step, p.runs)
				}
			}
		}
	}
}

// TestPageMapBigWriteIsOneRun checks the point of runs: 64 GiB of default
// values is one run, and a move keeps it one run.
func TestPageMapBigWriteIsOneRun(t *testing.T) {
	var p pageMap
	const pages = 64 << 18
	p.set(1<<20, 1<<20+pages, 1<<32, 4096)
	rs := p.extract(1<<20, 1<<20+pages)
	p.clear(1<<20, 1<<20+pages)
	p.place(rs, 1<<24)
	if len(p.runs) != 1 {
		t.Fatalf("%d runs", len(p.runs))
	}
	if v, _ := p.get(1<<20 + 1<<24 + 5); v != 1<<32+5*4096 {
		t.Fatalf("value %#x", v)
	}
}

func oracleMachine(t *testing.T) (*mmu.Machine, *mmu.MM) {
	t.Helper()
	a, err := archs.ByName("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	mm, err := m.NewMM("a")
	if err != nil {
		t.Fatal(err)
	}
	return m, mm
}

func wantExpected(t *testing.T, o *Oracle, mm *mmu.MM, va, want uint64) {
	t.Helper()
	got, ok := o.Expected(mm, va)
	if !ok || got != want {
		t.Fatalf("Expected(%s, %#x) = %#x, %v; want %#x", mm.Name(), va, got, ok, want)
	}
}

// TestOracle checks the oracle's bookkeeping against Linux's semantics,
// operation by operation, on real VMAs.
func TestOracle(t *testing.T) {
	m, mm := oracleMachine(t)
	o := NewOracle()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rw := mmu.ProtRead | mmu.ProtWrite
	must(mm.Mmap(0x10000000, 64<<10, rw, mmu.MapFlags{}))
	wantExpected(t, o, mm, 0x10000000, 0) // anonymous: zero
	if _, ok := o.Expected(mm, 0x20000000); ok {
		t.Fatal("an unmapped address has an expected value")
	}
	o.WriteDefault(mm, 0x10001000, 0x3000)
	wantExpected(t, o, mm, 0x10002000, 0x10002000)
	o.Write(mm, 0x10002000, 1, 9) // one byte: its page
	wantExpected(t, o, mm, 0x10002000, 9)
	wantExpected(t, o, mm, 0x10003000, 0x10003000)
	// Move carries values to the new place and empties the old one.
	must(mm.Mmap(0x20000000, 64<<10, rw, mmu.MapFlags{}))
	o.Move(mm, 0x10000000, 0x20000000, 64<<10)
	wantExpected(t, o, mm, 0x20003000, 0x10003000)
	wantExpected(t, o, mm, 0x20002000, 9)
	wantExpected(t, o, mm, 0x10003000, 0)
	// Copy into another address space, then Fork.
	mm2, err := m.NewMM("b")
	must(err)
	must(mm2.Mmap(0x30000000, 64<<10, rw, mmu.MapFlags{}))
	o.Copy(mm, 0x20000000, mm2, 0x30000000, 64<<10)
	wantExpected(t, o, mm2, 0x30003000, 0x10003000)
	mm3, err := m.NewMM("c")
	must(err)
	must(mm3.Mmap(0x20000000, 64<<10, rw, mmu.MapFlags{}))
	o.Fork(mm, mm3)
	wantExpected(t, o, mm3, 0x20002000, 9)
	o.Write(mm, 0x20002000, 4096, 10) // the parent's write does not show in the child
	wantExpected(t, o, mm3, 0x20002000, 9)
	o.Unmap(mm3, 0x20000000, 64<<10)
	wantExpected(t, o, mm3, 0x20002000, 0)
	o.Drop(mm3)
	wantExpected(t, o, mm3, 0x20002000, 0)

	// Files: a shared write reaches every view; a private view follows the
	// file until it copies.
	must(mm.Mmap(0x40000000, 64<<10, rw, mmu.MapFlags{File: "f", Shared: true}))
	must(mm.Mmap(0x50000000, 64<<10, rw, mmu.MapFlags{File: "f", Offset: 16 << 10}))
	must(mm2.Mmap(0x40000000, 64<<10, mmu.ProtRead, mmu.MapFlags{File: "f", Shared: true}))
	o.WriteDefault(mm, 0x40000000, 64<<10)
	wantExpected(t, o, mm2, 0x40005000, 0x40005000)
	wantExpected(t, o, mm, 0x50001000, 0x40005000) // page 5 of the file
	o.Write(mm, 0x50001000, 4096, 77)              // private copy
	wantExpected(t, o, mm, 0x50001000, 77)
	wantExpected(t, o, mm, 0x40005000, 0x40005000)
	o.CopyOnWrite(mm, 0x50000000, 64<<10) // populate: every page copied now
	o.Write(mm, 0x40000000, 64<<10, 5)
	wantExpected(t, o, mm, 0x50002000, 0x40006000)
	wantExpected(t, o, mm, 0x50001000, 77)
	wantExpected(t, o, mm, 0x5000c000, 0) // beyond what the file held
	wantExpected(t, o, mm2, 0x40006000, 5)
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
}
