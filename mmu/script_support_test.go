package mmu_test

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
)

// TestSetCPUs changes the CPU count of a machine with live address spaces
// on every arch: the data, tables and counters stay, every CPU works, the
// invariants hold, and bad requests change nothing.
func TestSetCPUs(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, name, 2)
			a, err := m.NewMM("a")
			must(t, err)
			b, err := m.NewMM("b")
			must(t, err)
			va := base(m)
			ps := m.Arch().PageSize()
			for i, mm := range []*mmu.MM{a, b} {
				must(t, mm.Mmap(va, 64*ps, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
				for p := uint64(0); p < 64; p++ {
					must(t, mm.Write(i, va+p*ps, uint64(i)<<32|p))
				}
			}
			before := a.Meter().Counts()
			asidA, asidB := a.TLBContext().ASID(), b.TLBContext().ASID()
			must(t, m.SetCPUs(5, 0, 0))
			check(t, m)
			if m.CPUs() != 5 || m.TLB().CPUs() != 5 {
				t.Fatalf("CPUs %d, TLB CPUs %d", m.CPUs(), m.TLB().CPUs())
			}
			if a.TLBContext().ASID() != asidA || b.TLBContext().ASID() != asidB {
				t.Fatalf("ASIDs changed: %d,%d -> %d,%d", asidA, asidB, a.TLBContext().ASID(), b.TLBContext().ASID())
			}
			if a.Meter().Counts() != before {
				t.Fatal("SetCPUs counted work")
			}
			for cpu := 0; cpu < 5; cpu++ {
				for i, mm := range []*mmu.MM{a, b} {
					got, err := mm.Read(cpu, va+3*ps)
					must(t, err)
					if want := uint64(i)<<32 | 3; got != want {
						t.Fatalf("cpu %d %s reads %#x, want %#x", cpu, mm.Name(), got, want)
					}
				}
			}
			must(t, a.Mprotect(va, 64*ps, mmu.ProtRead)) // a flush across the new CPUs
			check(t, m)
			must(t, a.Munmap(va, 32*ps))
			check(t, m)
			for _, bad := range []struct {
				n, entries, ways int
			}{{0, 0, 0}, {mmu.MaxCPUs + 1, 0, 0}, {3, 3, 2}} {
				if err := m.SetCPUs(bad.n, bad.entries, bad.ways); !errors.Is(err, mmu.EINVAL) {
					t.Fatalf("SetCPUs(%v): %v, want EINVAL", bad, err)
				}
				if m.CPUs() != 5 || m.TLB().CPUs() != 5 {
					t.Fatalf("a failed SetCPUs changed the machine: %d CPUs", m.CPUs())
				}
			}
			check(t, m)
			must(t, m.SetCPUs(1, 64, 4))
			check(t, m)
			if _, err := b.Read(1, va); !errors.Is(err, mmu.EINVAL) {
				t.Fatalf("read on a CPU that is gone: %v", err)
			}
			if got, err := b.Read(0, va+63*ps); err != nil || got != 1<<32|63 {
				t.Fatalf("after shrinking: %#x, %v", got, err)
			}
			check(t, m)
		})
	}
}
