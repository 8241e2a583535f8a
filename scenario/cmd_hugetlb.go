package scenario

import (
	"errors"

	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/vmemmap"
)

// hugetlbCommands returns the hugetlb command:
//
//	hugetlb alloc N SIZE
//	hugetlb free N SIZE
//
// allocates or frees N hugetlb folios of SIZE as one batch, as one write
// to nr_hugepages does, with the vmemmap optimisation `config hvo=` and
// `hvo_batch=` select (package vmemmap). It prints the pool afterwards:
// `hugetlb SIZE nr_hugepages=P optimized=O`. A size the arch lacks, a
// count of 0 and freeing more than the pool holds fail with EINVAL and
// change nothing. Running out of memory fails with ENOMEM but, as in
// Linux, keeps what was done: the folios allocated before it stay in the
// pool, and folios whose vmemmap cannot be restored stay in the pool
// instead of being freed.
func hugetlbCommands() []Command {
	return []Command{{
		Name: "hugetlb", Usage: "hugetlb alloc|free N SIZE",
		Summary: "allocate or free N hugetlb folios of SIZE in one batch (one write to nr_hugepages), with vmemmap optimisation as config hvo and hvo_batch say; prints the pool",
		Args: []Arg{
			{Name: "OP", Kind: KindChoice, Choices: []string{"alloc", "free"}},
			{Name: "N", Kind: KindNum},
			{Name: "SIZE", Kind: KindSize},
		},
		Run: runHugeTLB,
	}}
}

func runHugeTLB(e *Env, c *Call) error {
	m, err := e.Machine()
	if err != nil {
		return err
	}
	size := c.Num("SIZE")
	p, err := vmemmap.Of(m).Pool(size)
	if err != nil {
		return err
	}
	// nr_hugepages is a long; a count beyond memory fails as it would.
	n := int(min(c.Num("N"), 1<<40))
	var opErr error
	if c.Word("OP") == "alloc" {
		_, opErr = p.Alloc(n)
	} else {
		_, opErr = p.Free(n)
	}
	if opErr != nil && !errors.Is(opErr, mmu.ENOMEM) {
		return opErr
	}
	optimized := 0
	for _, f := range p.Folios() {
		if p.Optimized(f) {
			optimized++
		}
	}
	e.Printf("hugetlb %s nr_hugepages=%d optimized=%d\n", vmemmap.SizeName(size), p.NrHugePages(), optimized)
	return opErr // nil, or ENOMEM saying how far it got
}
