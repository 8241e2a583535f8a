package arm64

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/contpte"
	"github.com/ptsim/ptsim/pgtable"
)

// ContPTEs returns CONT_PTES for a granule's page shift
// (1 << CONFIG_ARM64_CONT_PTE_SHIFT): 16 for 4 KiB pages, 128 for 16 KiB,
// 32 for 64 KiB; 0 for a page shift arm64 does not have.
func ContPTEs(pageShift uint) int {
	for i := range granules {
		if granules[i].pageShift == pageShift {
			return granules[i].contPTEs
		}
	}
	return 0
}

// NewPTEOps returns arm64's operations under the public PTE functions for
// one user address space: package contpte's Ops, which fold and unfold
// contiguous blocks transparently while the contpte switch is on and
// behave as pgtable.GenericOps while it is off. mmu installs them for user
// address spaces only; init_mm keeps the generic ones (contpte's mm_is_user
// rule: adding or removing the contiguous bit can fault, which kernel
// mappings cannot tolerate). The switches are read from env.Knobs at every
// call; a nil env.Knobs means contpte on, BBML2 off.
func NewPTEOps(env arch.Env) pgtable.ArchOps {
	if env.Memory == nil {
		return pgtable.GenericOps{}
	}
	cfg := contpte.Config{
		ContPTEs: ContPTEs(env.Memory.PageShift()),
		TLB:      env.TLB,
		Context:  env.Context,
		Memory:   env.Memory,
		Meter:    env.Meter,
	}
	if env.Knobs != nil {
		knobs := env.Knobs
		cfg.Switches = func() contpte.Switches {
			k := knobs()
			return contpte.Switches{ContPTE: k.ContPTE, BBML2: k.BBML2}
		}
	}
	ops, err := contpte.New(cfg)
	if err != nil {
		return pgtable.GenericOps{}
	}
	return ops
}
