package vmemmap_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/vmemmap"
)

// Allocate 64 2 MiB hugetlb folios with the vmemmap optimisation, batched
// and not: the same pages are freed, but the batched flow flushes twice
// per batch instead of once or twice per folio.
func ExamplePool_Alloc() {
	for _, batch := range []string{"off", "on"} {
		a, _ := archs.ByName("x86_64")
		m, _ := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, CPUs: 4})
		_ = m.SetKnob("hvo", "on")
		_ = m.SetKnob("hvo_batch", batch)
		p, err := vmemmap.Of(m).Pool(2 << 20)
		if err != nil {
			panic(err)
		}
		n, err := p.Alloc(64)
		if err != nil {
			panic(err)
		}
		c := m.Counts()
		fmt.Printf("hvo_batch=%s: %d folios, %d optimized, vmemmap pages freed %d, splits %d, flush_tlb_kernel_range %d, flush_tlb_all %d\n",
			batch, n, countOptimized(p), c[cost.VmemmapPagesFreed], c[cost.VmemmapSplits], c[cost.TLBFlushKernel], c[cost.TLBFlushAll])
	}
	fmt.Println("per 2 MiB folio:", 8-1, "of 8 vmemmap pages can go")
	// Output:
	// hvo_batch=off: 64 folios, 64 optimized, vmemmap pages freed 448, splits 2, flush_tlb_kernel_range 66, flush_tlb_all 0
	// hvo_batch=on: 64 folios, 64 optimized, vmemmap pages freed 448, splits 2, flush_tlb_kernel_range 0, flush_tlb_all 2
	// per 2 MiB folio: 7 of 8 vmemmap pages can go
}

func countOptimized(p *vmemmap.Pool) int {
	n := 0
	for _, f := range p.Folios() {
		if p.Optimized(f) {
			n++
		}
	}
	return n
}
