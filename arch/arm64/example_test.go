package arm64_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/arm64"
)

// The three granules: page size, levels, and CONT_PTES, the entries of a
// contiguous block.
func ExampleNew() {
	for _, g := range []arm64.Granule{arm64.Granule4K, arm64.Granule16K, arm64.Granule64K} {
		a := arm64.New(g)
		fmt.Printf("%-9s %2d KiB pages, %d levels, CONT_PTES %3d (%d KiB blocks)\n", a.Name, a.PageSize()>>10,
			len(a.Geometry.Tables), a.Caps.ContPTEs, uint64(a.Caps.ContPTEs)*a.PageSize()>>10)
	}
	// Output:
	// arm64      4 KiB pages, 4 levels, CONT_PTES  16 (64 KiB blocks)
	// arm64-16k 16 KiB pages, 4 levels, CONT_PTES 128 (2048 KiB blocks)
	// arm64-64k 64 KiB pages, 3 levels, CONT_PTES  32 (2048 KiB blocks)
}
