package um_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/um"
)

// UML's two variants: 64-bit with three levels, 32-bit with two, where
// there is no PMD table for mremap to move.
func ExampleNew() {
	for _, v := range []um.Variant{um.UM64, um.UM32} {
		a := um.New(v)
		fmt.Print(a.Name, ":")
		for _, t := range a.Geometry.Tables {
			fmt.Printf(" %s(%d)", t.Level, t.Entries)
		}
		fmt.Printf(", user space %d MiB\n", a.User.End>>20)
	}
	// Output:
	// um: pud(512) pmd(512) pte(512), user space 524288 MiB
	// um32: pmd(1024) pte(1024), user space 3068 MiB
}
