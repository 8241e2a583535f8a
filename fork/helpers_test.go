package fork_test

import (
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

const (
	kib = uint64(1) << 10
	mib = uint64(1) << 20
)

// rw is the protection of most test mappings.
const rw = mmu.ProtRead | mmu.ProtWrite

// newMachine builds a machine for arch name with knobs set from
// "key=value" pairs, and checks it.
func newMachine(t testing.TB, name string, knobs ...string) *mmu.Machine {
	t.Helper()
	a, err := archs.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 8 << 30, CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(knobs); i += 2 {
		must(t, m.SetKnob(knobs[i], knobs[i+1]))
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

// base returns a user address that suits every arch: aligned to 1 GiB
// and inside the smallest user space (um32 ends below 3 GiB).
func base(m *mmu.Machine) uint64 {
	if m.Arch().Name == "um32" {
		return 0x4000_0000
	}
	return 0x10_0000_0000
}

// newMM creates an address space and checks the machine.
func newMM(t testing.TB, m *mmu.Machine, name string) *mmu.MM {
	t.Helper()
	mm, err := m.NewMM(name)
	must(t, err)
	return mm
}

// mmap maps and checks.
func mmap(t testing.TB, mm *mmu.MM, va, size uint64, prot mmu.Prot, fl mmu.MapFlags) {
	t.Helper()
	must(t, mm.Mmap(va, size, prot, fl))
	check(t, mm.Machine())
}

// writeAll writes every page of [va, va+size) with value base+index.
func writeAll(t testing.TB, mm *mmu.MM, va, size, val uint64) {
	t.Helper()
	ps := mm.Machine().Arch().PageSize()
	for a := va; a < va+size; a += ps {
		must(t, mm.Write(0, a, val+(a-va)/ps))
	}
	check(t, mm.Machine())
}

// count returns one counter of mm.
func count(mm *mmu.MM, e cost.Event) uint64 { return mm.Meter().Count(e) }

// pte returns the PTE that maps va (the raw entry) and the frame.
func pte(t testing.TB, mm *mmu.MM, va uint64) (pgtable.Entry, phys.PFN) {
	t.Helper()
	tr, ok := mm.Translate(va)
	if !ok {
		t.Fatalf("%s: %#x not mapped", mm.Name(), va)
	}
	return tr.Entry, tr.PFN
}

// folioOf returns the folio that maps va in mm.
func folioOf(t testing.TB, mm *mmu.MM, va uint64) phys.Folio {
	t.Helper()
	_, pfn := pte(t, mm, va)
	return mm.Machine().Memory().FolioOf(pfn)
}
