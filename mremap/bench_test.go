package mremap

import (
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
)

// BenchmarkMremap1GiB is P3 of TARGETS.md: one mremap of 1 GiB of
// populated anonymous memory on x86-64, PUD-aligned on both sides, moved
// PTE by PTE (pte), by PTE tables (pmd) and by one PMD table (pud). Only
// the mremap is timed; the memory is populated once and moved back and
// forth. Targets: <= 3 ms, <= 50 us, <= 5 us per op.
func BenchmarkMremap1GiB(b *testing.B) {
	for _, c := range []struct {
		name  string
		knobs [][2]string
	}{
		{"pte", [][2]string{{"move_pmd", "off"}, {"move_pud", "off"}}},
		{"pmd", [][2]string{{"move_pud", "off"}}},
		{"pud", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			a, err := archs.ByName("x86_64")
			if err != nil {
				b.Fatal(err)
			}
			m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 2 << 30, NoAudit: true})
			if err != nil {
				b.Fatal(err)
			}
			for _, kv := range c.knobs {
				if err := m.SetKnob(kv[0], kv[1]); err != nil {
					b.Fatal(err)
				}
			}
			mm, err := m.NewMM("bench")
			if err != nil {
				b.Fatal(err)
			}
			const size = 1 << 30
			src, dst := uint64(0x7f00_0000_0000), uint64(0x7f40_0000_0000)
			if err := mm.Mmap(src, size, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true}); err != nil {
				b.Fatal(err)
			}
			if err := mm.Write(0, src, 1); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Mremap(mm, src, size, size, MayMove|Fixed, dst); err != nil {
					b.Fatal(err)
				}
				src, dst = dst, src
			}
		})
	}
}
