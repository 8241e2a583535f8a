package x86_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/pgtable"
)

// Four and five levels (LA57): the tables from the root down, with the
// bytes one entry of each maps.
func ExampleNew() {
	for _, v := range []x86.Variant{x86.FourLevel, x86.LA57} {
		a := x86.New(v)
		fmt.Print(a.Name, ":")
		for _, t := range a.Geometry.Tables {
			fmt.Printf(" %s(%d x %d MiB)", t.Level, t.Entries, t.Size()>>20)
		}
		fmt.Println()
	}
	a := x86.New(x86.FourLevel)
	e := a.Format.MkPTE(0x1234, pgtable.ProtShared|pgtable.ProtRead|pgtable.ProtWrite)
	fmt.Printf("pfn_pte(0x1234, shared rw) = %#x: %s\n", uint64(e), a.Format.Describe(e, pgtable.PTE, false))
	fmt.Println("flush ceiling:", x86.DefaultFlushCeiling, "pages")
	// Output:
	// x86_64: p4d(512 x 524288 MiB) pud(512 x 1024 MiB) pmd(512 x 2 MiB) pte(512 x 0 MiB)
	// x86_64-la57: pgd(512 x 268435456 MiB) p4d(512 x 524288 MiB) pud(512 x 1024 MiB) pmd(512 x 2 MiB) pte(512 x 0 MiB)
	// pfn_pte(0x1234, shared rw) = 0x8000000001234027: rw- user young
	// flush ceiling: 33 pages
}
