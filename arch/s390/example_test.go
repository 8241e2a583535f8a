package s390_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/s390"
	"github.com/ptsim/ptsim/pgtable"
)

// s390 starts with three table levels (4 TiB of address space) and grows
// to five as addresses need; an empty entry is an invalid pattern, not 0.
func ExampleNew() {
	a := s390.New()
	fmt.Println(a.Name, "starts with", a.Geometry.MinTables, "of", len(a.Geometry.Tables), "levels; grows:", a.Caps.GrowLevels)
	fmt.Printf("empty pte %#x, empty pmd %#x\n", uint64(a.Format.None[pgtable.PTE]), uint64(a.Format.None[pgtable.PMD]))
	fmt.Println("live entries need IPTE/IDTE:", a.Caps.LiveEntriesNeedInvalidate)
	// Output:
	// s390x starts with 3 of 5 levels; grows: true
	// empty pte 0x400, empty pmd 0x20
	// live entries need IPTE/IDTE: true
}
