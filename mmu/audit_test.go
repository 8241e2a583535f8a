package mmu_test

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
)

// TestNoAuditOnlyInBenchmarks checks Config.NoAudit's guard: a test that
// asks for it gets EPERM and no machine; a benchmark gets a machine whose
// TLB system has the write checks off.
func TestNoAuditOnlyInBenchmarks(t *testing.T) {
	a, err := archs.ByName("arm64")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, NoAudit: true}); !errors.Is(err, mmu.EPERM) || m != nil {
		t.Fatalf("NoAudit in a test: machine %v, error %v; want EPERM and no machine", m, err)
	}
	var m *mmu.Machine
	testing.Benchmark(func(b *testing.B) {
		m, err = mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, NoAudit: true})
	})
	if err != nil {
		t.Fatalf("NoAudit in a benchmark: %v", err)
	}
	if m.TLB().Audit() {
		t.Fatal("NoAudit machine audits")
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	m, err = mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30})
	if err != nil || !m.TLB().Audit() {
		t.Fatalf("default machine: audit %v, error %v", m != nil && m.TLB().Audit(), err)
	}
}
