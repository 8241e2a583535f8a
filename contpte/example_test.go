package contpte_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// Example shows the fold Kefeng Wang's page_fault3 regression was about:
// write faults map a 64K file folio one page at a time, and the 16th
// write, the last entry of the block, folds it with a contpte_convert
// (16 clears, a TLBI per page and a DSB, 16 repaints). Mapping the whole
// folio in one set_ptes sets the contiguous bit without a convert.
func Example() {
	for _, whole := range []string{"off", "on"} {
		m, _ := mmu.New(mmu.Config{Arch: arm64.New(arm64.Granule4K)})
		_ = m.SetKnob("fault_whole_folio", whole)
		mm, _ := m.NewMM("pf3")
		_ = mm.Mmap(1<<30, 64<<10, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{File: "f", Shared: true, FolioSize: 64 << 10})
		for i := uint64(0); i < 16; i++ {
			_ = mm.Write(0, 1<<30+i<<12, i)
		}
		c := mm.Meter().Counts()
		tr, _ := mm.Translate(1 << 30)
		fmt.Printf("fault_whole_folio=%s: faults %d, folds %d, converts %d, tlbi %d, contiguous %v\n",
			whole, c[cost.Faults], c[cost.ContpteFolds], c[cost.ContpteConverts], c[cost.TLBIOps],
			m.Arch().Format.Cont(tr.Entry, tr.Level))
	}
	// Output:
	// fault_whole_folio=off: faults 16, folds 1, converts 1, tlbi 16, contiguous true
	// fault_whole_folio=on: faults 1, folds 0, converts 0, tlbi 0, contiguous true
}
