package mmu_test

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// A machine, an address space, a mapping: writes take page faults and
// fill the tables, reads hit the TLB, and the invariant checker audits
// everything. Counts are exact; simulated time (SimNS) depends on the
// arch's cost table.
func ExampleMachine() {
	a, _ := archs.ByName("x86_64")
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, CPUs: 2})
	if err != nil {
		panic(err)
	}
	mm, _ := m.NewMM("task")
	const va = 0x7f00_0000_0000
	if err := mm.Mmap(va, 64<<10, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
		panic(err)
	}
	for p := uint64(0); p < 16; p++ {
		_ = mm.Write(0, va+p<<12, p)
	}
	v, _ := mm.Read(0, va+3<<12)
	c := mm.Meter().Counts()
	fmt.Println("value", v, "faults", c[cost.Faults], "tlb hits", c[cost.TLBHits], "rss", mm.RSS(mmu.MMAnonPages))
	tr, _ := mm.Translate(va + 3<<12)
	fmt.Println("level", tr.Level, "writable", a.Format.Write(tr.Entry, tr.Level))
	_, err = mm.Read(1, va+64<<10) // past the mapping
	fmt.Println(errors.Is(err, mmu.EFAULT))
	fmt.Println("check:", m.Check())
	// Output:
	// value 3 faults 16 tlb hits 1 rss 16
	// level pte writable true
	// true
	// check: <nil>
}

// Mprotect splits the VMA and write-protects the PTEs; the next write
// to the range fails with EFAULT, as SIGSEGV would.
func ExampleMM_Mprotect() {
	a, _ := archs.ByName("arm64")
	m, _ := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30})
	mm, _ := m.NewMM("task")
	const va = 0x10_0000_0000
	_ = mm.Mmap(va, 4<<12, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true})
	_ = mm.Mprotect(va+1<<12, 1<<12, mmu.ProtRead)
	for _, v := range mm.VMAs() {
		fmt.Println(v)
	}
	err := mm.Write(0, va+1<<12, 1)
	fmt.Println(errors.Is(err, mmu.EFAULT), m.Check() == nil)
	// Output:
	// 0x1000000000-0x1000001000 read,write anon
	// 0x1000001000-0x1000002000 read anon
	// 0x1000002000-0x1000004000 read,write anon
	// true true
}
