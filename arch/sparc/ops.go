package sparc

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/pgtable"
)

// PTEOps is sparc64's implementation of the public PTE functions. They
// are Linux's generic ones: every pte store is __set_pte_at, whose
// tlb_batch_add TLBPolicy runs when it sees the entry write, so nothing
// needs overriding. The ops exist to hand TLBPolicy the machine's
// physical memory, which tlb_batch_add's D-cache rule reads to tell a
// page-cache page (folio_flush_mapping) from an anonymous or reserved
// one.
type PTEOps struct {
	pgtable.GenericOps
}

// NewPTEOps returns the PTE operations of one user address space and
// registers env.Memory with the address space's TLB state.
func NewPTEOps(env arch.Env) pgtable.ArchOps {
	if env.TLB != nil && env.Context != nil {
		state(env.TLB, env.Context).mem = env.Memory
	}
	return PTEOps{}
}
