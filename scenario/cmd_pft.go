package scenario

import (
	"fmt"

	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/spf"
)

// pftCommands returns the page-fault test command:
//
//	pft THREADS ADDR LEN [writer=N]
//
// THREADS simulated threads of the current address space (thread i on
// CPU i) each write every page of their own slice of the range, with the
// `write` default value, while with writer=N one more thread (on CPU
// THREADS) does N mmap/munmap pairs of one page elsewhere, spread over
// the faults. The fault path is `config spf=`, the PTE-lock model
// `config spf_ptl=`; the deterministic scheduler takes the seed and runs
// the threads in simulated-time order. It prints
// `pft threads=T faults=F elapsed_ns=E`, E being the makespan from the
// first fault to the last. The machine needs THREADS CPUs (one more with
// a writer): EINVAL otherwise, as for a range that is not mapped. A range
// with a mapping the threads may not write fails with EFAULT before
// anything runs.
func pftCommands() []Command {
	return []Command{{
		Name: "pft", Usage: "pft THREADS ADDR LEN [writer=N]",
		Summary: "page-fault test: THREADS threads write their slices of the range (write faults) while a writer maps and unmaps elsewhere; prints threads, faults and the simulated makespan",
		Args:    []Arg{{Name: "THREADS", Kind: KindNum}, {Name: "ADDR", Kind: KindAddr}, {Name: "LEN", Kind: KindSize}},
		Opts:    []Opt{{Name: "writer", Kind: KindNum}},
		Run:     runPFT,
	}}
}

func runPFT(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	ps := mm.Machine().Arch().PageSize()
	first, n, err := pageRange(mm, "pft", c.Num("ADDR"), c.Num("LEN"))
	if err != nil {
		return err
	}
	threads := int(min(c.Num("THREADS"), 1<<20))
	writer := int(min(c.Num("writer"), 1<<20))
	// The threads write every page: a mapping they may not write would
	// fail them part-way (SIGSEGV in Linux's pft), so refuse the range
	// before anything runs, as write fails on such a page.
	for _, v := range mm.VMAsIn(first, first+n*ps) {
		if v.Flags&mmu.VMWrite == 0 {
			return fmt.Errorf("pft %#x: %s mapping is not writable: %w", max(v.Start, first), v.Flags, mmu.EFAULT)
		}
	}
	r, err := spf.PFT(mm, spf.PFTConfig{Threads: threads, Addr: first, Len: n * ps, Writer: writer},
		spf.Options{FromKnobs: true})
	if err != nil {
		// Threads may have written pages before the failure (out of
		// memory, the scheduler's step limit); which, the interleaving
		// decided. Record the pages that now hold what pft writes and
		// that the oracle expected otherwise, so check stays true.
		for i := uint64(0); i < n; i++ {
			va := first + i*ps
			got, mapped := mm.Content(va)
			if want, ok := e.oracle.Expected(mm, va); mapped && ok && got != want && got == DefaultValue(mm, va) {
				e.oracle.WriteDefault(mm, va, ps)
			}
		}
		return err
	}
	e.oracle.WriteDefault(mm, first, n*ps)
	e.Printf("pft threads=%d faults=%d elapsed_ns=%d\n", r.Threads, r.Faults, r.ElapsedPS/1000)
	return nil
}
