package fork_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
)

// Fork 1 MiB of 64 KiB folios: one copy step per folio, all charged to
// the parent; then a write in the child copies one page.
func ExampleFork() {
	a, _ := archs.ByName("x86_64")
	m, _ := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30})
	_ = m.SetKnob("thp", "never")
	parent, _ := m.NewMM("parent")
	const va = 0x10000000
	_ = parent.Mmap(va, 1<<20, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true, FolioSize: 64 << 10})
	_ = parent.Write(0, va, 42)
	m.Reset()

	child, err := fork.Fork(parent, "child")
	if err != nil {
		panic(err)
	}
	pc := parent.Meter()
	fmt.Println("fork_batches", pc.Count(cost.ForkBatches), "fork_ptes", pc.Count(cost.ForkPTEs), "tlb_flush_mm", pc.Count(cost.TLBFlushMM))
	fmt.Println("child counters start at zero:", child.Meter().Counts() == cost.Counts{})

	_ = child.Write(0, va, 7)
	pv, _ := parent.Read(0, va)
	cv, _ := child.Read(0, va)
	fmt.Println("parent", pv, "child", cv, "child COW faults", child.Meter().Count(cost.FaultsCOW))
	fmt.Println("invariants:", m.Check() == nil)
	// Output:
	// fork_batches 16 fork_ptes 256 tlb_flush_mm 1
	// child counters start at zero: true
	// parent 42 child 7 child COW faults 1
	// invariants: true
}
