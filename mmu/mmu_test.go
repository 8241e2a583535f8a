package mmu_test

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// newMachine builds a small machine for arch name and fails the test on
// error.
func newMachine(t testing.TB, name string, cpus int) *mmu.Machine {
	t.Helper()
	a, err := archs.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 8 << 30, CPUs: cpus})
	if err != nil {
		t.Fatal(err)
	}
	check(t, m)
	return m
}

func check(t testing.TB, m *mmu.Machine) {
	t.Helper()
	if err := m.Check(); err != nil {
		t.Fatalf("invariants: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// base returns a user address that suits every arch: aligned to 1 GiB and
// inside the smallest user space (um32 ends below 3 GiB).
func base(m *mmu.Machine) uint64 {
	if m.Arch().Name == "um32" {
		return 0x4000_0000
	}
	return 0x10_0000_0000
}

func TestAnonReadZeroThenWriteCOW(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, name, 1)
			mm, err := m.NewMM("init")
			must(t, err)
			va := base(m)
			ps := m.Arch().PageSize()
			must(t, mm.Mmap(va, 4*ps, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
			check(t, m)
			v, err := mm.Read(0, va)
			must(t, err)
			if v != 0 {
				t.Fatalf("fresh anonymous page reads %d", v)
			}
			if tr, ok := mm.Translate(va); !ok || tr.PFN != m.ZeroPage() {
				t.Fatalf("read fault did not map the zero page: %+v %v", tr, ok)
			}
			check(t, m)
			must(t, mm.Write(0, va, 42))
			check(t, m)
			if tr, _ := mm.Translate(va); tr.PFN == m.ZeroPage() {
				t.Fatal("write kept the zero page")
			}
			if got, _ := mm.Read(0, va); got != 42 {
				t.Fatalf("read back %d", got)
			}
			if c := mm.Meter().Count(cost.FaultsCOW); c != 1 {
				t.Fatalf("faults_cow = %d, want 1", c)
			}
			if mm.RSS(mmu.MMAnonPages) != 1 {
				t.Fatalf("rss anon = %d", mm.RSS(mmu.MMAnonPages))
			}
			must(t, mm.Munmap(va, 4*ps))
			check(t, m)
			if _, err := mm.Read(0, va); !errors.Is(err, mmu.EFAULT) {
				t.Fatalf("read after munmap: %v", err)
			}
		})
	}
}

func TestLargeFolioFault(t *testing.T) {
	m := newMachine(t, "x86_64", 1)
	mm, _ := m.NewMM("init")
	va := uint64(0x7f00_0000_0000)
	must(t, mm.Mmap(va, 1<<20, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: 64 << 10}))
	must(t, mm.Write(0, va+0x3000, 7))
	check(t, m)
	for i := uint64(0); i < 16; i++ {
		tr, ok := mm.Translate(va + i<<12)
		if !ok {
			t.Fatalf("page %d not mapped by the 64K fault", i)
		}
		if f := m.Memory().FolioOf(tr.PFN); f.Order != 4 {
			t.Fatalf("page %d in a folio of order %d", i, f.Order)
		}
	}
	if mm.Meter().Count(cost.Faults) != 1 {
		t.Fatalf("faults = %d", mm.Meter().Count(cost.Faults))
	}
	// Unmapping the middle of the folio leaves the rest mapped.
	must(t, mm.Munmap(va+0x4000, 0x2000))
	check(t, m)
	if _, ok := mm.Translate(va + 0x4000); ok {
		t.Fatal("still mapped")
	}
	if got, _ := mm.Read(0, va+0x3000); got != 7 {
		t.Fatalf("read %d", got)
	}
	must(t, mm.Munmap(va, 1<<20))
	check(t, m)
}

func TestTHPMapSplitUnmap(t *testing.T) {
	for _, thp := range []string{"always", "never"} {
		t.Run(thp, func(t *testing.T) {
			m := newMachine(t, "x86_64", 1)
			must(t, m.SetKnob("thp", thp))
			mm, _ := m.NewMM("init")
			va := uint64(0x7f00_0000_0000)
			must(t, mm.Mmap(va, 4<<20, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: 2 << 20}))
			must(t, mm.Write(0, va, 1))
			check(t, m)
			tr, ok := mm.Translate(va + 0x1000)
			wantLevel := pgtable.PMD
			if thp == "never" {
				wantLevel = pgtable.PTE
			}
			if !ok || tr.Level != wantLevel {
				t.Fatalf("mapped at %v, want %v", tr.Level, wantLevel)
			}
			// Partial munmap splits a PMD mapping.
			must(t, mm.Munmap(va+0x10000, 0x1000))
			check(t, m)
			if got, _ := mm.Read(0, va); got != 1 {
				t.Fatalf("read %d", got)
			}
			must(t, mm.Munmap(va, 4<<20))
			check(t, m)
			if mm.RSS(mmu.MMAnonPages) != 0 {
				t.Fatalf("rss %d", mm.RSS(mmu.MMAnonPages))
			}
		})
	}
}

func TestMprotect(t *testing.T) {
	m := newMachine(t, "arm64", 2)
	mm, _ := m.NewMM("init")
	va := uint64(0x10_0000_0000)
	must(t, mm.Mmap(va, 0x10000, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	must(t, mm.Write(1, va+0x2000, 5))
	must(t, mm.Mprotect(va+0x2000, 0x1000, mmu.ProtRead))
	check(t, m)
	if len(mm.VMAs()) != 3 {
		t.Fatalf("vmas = %d, want 3", len(mm.VMAs()))
	}
	if err := mm.Write(1, va+0x2000, 6); !errors.Is(err, mmu.EFAULT) {
		t.Fatalf("write to read-only: %v", err)
	}
	must(t, mm.Mprotect(va+0x2000, 0x1000, mmu.ProtRead|mmu.ProtWrite))
	check(t, m)
	if len(mm.VMAs()) != 1 {
		t.Fatalf("vmas after merge = %d, want 1", len(mm.VMAs()))
	}
	must(t, mm.Write(1, va+0x2000, 6))
	if err := mm.Mprotect(va+0x20000, 0x1000, mmu.ProtRead); !errors.Is(err, mmu.ENOMEM) {
		t.Fatalf("mprotect of unmapped space: %v", err)
	}
	check(t, m)
}

func TestSharedFileVisibleAcrossMMs(t *testing.T) {
	m := newMachine(t, "s390x", 1)
	a, _ := m.NewMM("a")
	b, _ := m.NewMM("b")
	va := uint64(0x10_0000_0000)
	must(t, a.Mmap(va, 0x4000, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{File: "f", Shared: true}))
	must(t, b.Mmap(va+0x100000, 0x4000, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{File: "f", Shared: true}))
	must(t, a.Write(0, va+0x1000, 99))
	got, err := b.Read(0, va+0x100000+0x1000)
	must(t, err)
	if got != 99 {
		t.Fatalf("b reads %d", got)
	}
	// A private mapping copies on write and leaves the file alone.
	c, _ := m.NewMM("c")
	must(t, c.Mmap(va, 0x4000, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{File: "f"}))
	must(t, c.Write(0, va+0x1000, 5))
	if got, _ := a.Read(0, va+0x1000); got != 99 {
		t.Fatalf("private write reached the file: %d", got)
	}
	check(t, m)
}

func TestPinUnpin(t *testing.T) {
	m := newMachine(t, "x86_64", 1)
	mm, _ := m.NewMM("init")
	va := uint64(0x10_0000_0000)
	must(t, mm.Mmap(va, 0x2000, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	must(t, mm.Pin(va, 0x2000))
	check(t, m)
	tr, _ := mm.Translate(va)
	if !m.Memory().MaybeDMAPinned(m.Memory().FolioOf(tr.PFN)) {
		t.Fatal("not pinned")
	}
	must(t, mm.Unpin(va, 0x2000))
	if err := mm.Unpin(va, 0x1000); !errors.Is(err, mmu.EINVAL) {
		t.Fatalf("second unpin: %v", err)
	}
	check(t, m)
}

func TestMmapErrors(t *testing.T) {
	m := newMachine(t, "x86_64", 1)
	mm, _ := m.NewMM("init")
	must(t, mm.Mmap(0x10_0000_0000, 0x2000, mmu.ProtRead, mmu.MapFlags{}))
	cases := []struct {
		name     string
		addr     uint64
		len      uint64
		fl       mmu.MapFlags
		wantErrn error
	}{
		{"overlap", 0x10_0000_1000, 0x1000, mmu.MapFlags{}, mmu.EEXIST},
		{"unaligned", 0x10_0000_0800, 0x1000, mmu.MapFlags{}, mmu.EINVAL},
		{"zero length", 0x20_0000_0000, 0, mmu.MapFlags{}, mmu.EINVAL},
		{"beyond user space", 0x8000_0000_0000, 0x1000, mmu.MapFlags{}, mmu.ENOMEM},
		{"bad folio", 0x20_0000_0000, 0x10000, mmu.MapFlags{FolioSize: 3 << 12}, mmu.EINVAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := mm.Mmap(c.addr, c.len, mmu.ProtRead, c.fl); !errors.Is(err, c.wantErrn) {
				t.Fatalf("got %v, want %v", err, c.wantErrn)
			}
			check(t, m)
		})
	}
}

func TestENOMEMLeavesModelConsistent(t *testing.T) {
	for n := uint64(1); n <= 6; n++ {
		m := newMachine(t, "x86_64", 1)
		mm, _ := m.NewMM("init")
		va := uint64(0x10_0000_0000)
		must(t, mm.Mmap(va, 0x100000, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: 64 << 10}))
		m.Memory().SetFailPolicy(phys.FailPolicy{Nth: n})
		err := mm.Write(0, va, 1)
		m.Memory().SetFailPolicy(phys.FailPolicy{})
		if err != nil && !errors.Is(err, mmu.ENOMEM) {
			t.Fatalf("fail #%d: %v", n, err)
		}
		check(t, m)
		must(t, mm.Munmap(va, 0x100000))
		check(t, m)
	}
}
