package arch_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/arch/s390"
	"github.com/ptsim/ptsim/arch/sparc"
	"github.com/ptsim/ptsim/arch/um"
	"github.com/ptsim/ptsim/arch/x86"
)

// The capabilities the review of the 2018 mremap patch was about: who may
// move whole tables, who must invalidate live entries, who flushes the
// D-cache on a colour change, and who has contiguous PTEs.
func ExampleCaps() {
	for _, a := range []*arch.Arch{x86.New(x86.FourLevel), arm64.New(arm64.Granule4K), s390.New(), sparc.New(), um.New(um.UM32)} {
		if err := a.Validate(); err != nil {
			panic(err)
		}
		c := a.Caps
		fmt.Printf("%-8s page %5d  move pmd/pud %-5v %-5v  invalidate live %-5v  dcache alias %-5v  CONT_PTES %d\n",
			a.Name, a.PageSize(), c.HaveMovePMD, c.HaveMovePUD, c.LiveEntriesNeedInvalidate, c.DcacheAliasing, c.ContPTEs)
	}
	// Output:
	// x86_64   page  4096  move pmd/pud true  true   invalidate live false  dcache alias false  CONT_PTES 0
	// arm64    page  4096  move pmd/pud true  true   invalidate live false  dcache alias false  CONT_PTES 16
	// s390x    page  4096  move pmd/pud false false  invalidate live true   dcache alias false  CONT_PTES 0
	// sparc64  page  8192  move pmd/pud false false  invalidate live false  dcache alias true   CONT_PTES 0
	// um32     page  4096  move pmd/pud false false  invalidate live false  dcache alias false  CONT_PTES 0
}
