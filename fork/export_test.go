package fork

import (
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
)

// ForkWithStepHook forks with hook called after every refcount and
// mapcount change of a shared folio.
func ForkWithStepHook(parent *mmu.MM, child string, o Options, hook func(phys.Folio)) (*mmu.MM, error) {
	o.afterStep = hook
	return ForkWith(parent, child, o)
}
