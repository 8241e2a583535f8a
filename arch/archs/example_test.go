package archs_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/pgtable"
)

// ExampleByName looks up a descriptor and prints its page size, its
// levels and the pte Linux writes for a shared writable page.
func ExampleByName() {
	for _, name := range []string{"arm64", "s390x", "um32"} {
		a, err := archs.ByName(name)
		if err != nil {
			fmt.Println(err)
			return
		}
		prot := pgtable.ProtShared | pgtable.ProtRead | pgtable.ProtWrite
		fmt.Printf("%-6s %5d-byte pages, %d levels, pfn_pte(1, shared rw) = %#x\n",
			a.Name, a.PageSize(), len(a.Geometry.Tables), uint64(a.Format.MkPTE(1, prot)))
	}
	_, err := archs.ByName("vax")
	fmt.Println(err)
	// Output:
	// arm64   4096-byte pages, 4 levels, pfn_pte(1, shared rw) = 0x68000000001fc3
	// s390x   4096-byte pages, 5 levels, pfn_pte(1, shared rw) = 0x1335
	// um32    4096-byte pages, 2 levels, pfn_pte(1, shared rw) = 0x10e1
	// unknown architecture "vax" (valid: x86_64, x86_64-la57, arm64, arm64-16k, arm64-64k, s390x, sparc64, um, um32): EINVAL (invalid argument)
}
