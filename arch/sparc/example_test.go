package sparc_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/sparc"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
)

// move_pte flushes the D-cache when a present page moves to a virtual
// address of another colour (bit 13): mremap's per-PTE path on sparc64.
func ExampleMovePTE() {
	a := sparc.New()
	e := a.Format.MkPTE(0x40, pgtable.ProtRead|pgtable.ProtWrite|pgtable.ProtShared)
	var m cost.Meter
	sparc.MovePTE(&m, e, 0x10000000, 0x20000000) // same colour
	fmt.Println("same colour:", m.Count(cost.DcacheFlushes))
	sparc.MovePTE(&m, e, 0x10000000, 0x20002000) // bit 13 differs
	fmt.Println("other colour:", m.Count(cost.DcacheFlushes))
	// Output:
	// same colour: 0
	// other colour: 1
}
