package mremap_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
)

// Move 4 MiB of written memory to a PMD-aligned address: two PMD entries
// move (each carrying a whole PTE table) instead of 1024 PTEs, and the
// data follows. With move_pmd off every PTE moves.
func ExampleMremap() {
	for _, movePMD := range []string{"on", "off"} {
		a, _ := archs.ByName("x86_64")
		m, _ := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30})
		_ = m.SetKnob("move_pmd", movePMD)
		mm, _ := m.NewMM("task")
		const src, dst = 0x7f00_0000_0000, 0x7f00_4000_0000
		_ = mm.Mmap(src, 4<<20, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{})
		for p := uint64(0); p < 1024; p++ {
			_ = mm.Write(0, src+p<<12, p)
		}
		m.Reset()
		got, err := mremap.Mremap(mm, src, 4<<20, 4<<20, mremap.MayMove|mremap.Fixed, dst)
		if err != nil {
			panic(err)
		}
		c := mm.Meter().Counts()
		v, _ := mm.Read(0, dst+1000<<12)
		fmt.Printf("move_pmd=%s: moved to %#x, pmd_moves %d, pte_moves %d, tlb_flush_range %d, page 1000 holds %d\n",
			movePMD, got, c[cost.PMDMoves], c[cost.PTEMoves], c[cost.TLBFlushRange], v)
	}
	// Output:
	// move_pmd=on: moved to 0x7f0040000000, pmd_moves 2, pte_moves 0, tlb_flush_range 3, page 1000 holds 1000
	// move_pmd=off: moved to 0x7f0040000000, pmd_moves 0, pte_moves 1024, tlb_flush_range 3, page 1000 holds 1000
}

// Errors are Linux's, found before anything changes.
func ExampleMremap_errors() {
	a, _ := archs.ByName("x86_64")
	m, _ := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30})
	mm, _ := m.NewMM("task")
	_ = mm.Mmap(0x10000000, 1<<20, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{})
	_, err := mremap.Mremap(mm, 0x10000000, 1<<20, 1<<20, mremap.Fixed, 0x20000000) // FIXED without MAYMOVE
	fmt.Println(err)
	_, err = mremap.Mremap(mm, 0x30000000, 1<<20, 2<<20, mremap.MayMove, 0) // nothing mapped there
	fmt.Println(err)
	// Output:
	// mremap 0x10000000: fixed without maymove: EINVAL (invalid argument)
	// mremap 0x30000000: no mapping at 0x30000000: EFAULT (bad address)
}
