package tlb_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// A write-protect without the TLB flush that must follow it is caught by
// the validator, with the CPU, the address and what changed.
func ExampleSystem_Validate() {
	a := x86.New(x86.FourLevel)
	mem, _ := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 18})
	meter := &cost.Meter{Name: "mm"}
	pt, _ := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem, Meter: meter, Space: a.User})
	sys, _ := tlb.New(tlb.Config{CPUs: 2, Policy: a.NewTLBPolicy(arch.Platform{CPUs: 2})})
	ctx := sys.NewContext("mm", pt, meter, false)

	const va = 0x7f00_0000_0000
	_ = pt.Map(va, 4096, 0x42, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared})
	cpu := sys.CPU(1)
	cpu.Switch(ctx)
	// What the MMU does after a page walk.
	cpu.Insert(ctx, tlb.Entry{VA: va, Shift: 12, PFN: 0x42, Perm: tlb.PermRead | tlb.PermWrite | tlb.PermUser, Level: pgtable.PTE})

	p, _ := pt.Walk(va, pgtable.PTE)
	pt.PtepSetWrprotect(va, p) // and no flush_tlb_page: a bug
	for _, s := range sys.Validate() {
		fmt.Println(s)
	}
	sys.FlushTLBPage(ctx, va)
	fmt.Println(len(sys.Validate()), "stale after the flush")
	// Output:
	// cpu1 mm va 0x7f0000000000: stale tlb 0x7f0000000000 4K pte pfn 0x42 rw-u--: write permission revoked
	// 0 stale after the flush
}
