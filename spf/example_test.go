package spf_test

import (
	"fmt"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/spf"
)

// A page-fault test: four threads write-fault their slices of 4 MiB while
// a fifth maps and unmaps elsewhere, first with every fault under
// mmap_lock, then speculatively. Every page is faulted once either way;
// the speculative run retries some faults under the lock when a writer
// got in between, and the last thread left alone faults under the lock
// without trying (mm_users is 1). The makespan (ElapsedPS) follows the
// cost table.
func ExamplePFT() {
	for _, mode := range []mmu.SPFMode{mmu.SPFOff, mmu.SPFSeq} {
		a, _ := archs.ByName("x86_64")
		m, _ := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, CPUs: 5})
		mm, _ := m.NewMM("pft")
		const va = 0x7f00_0000_0000
		_ = mm.Mmap(va, 4<<20, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{})
		r, err := spf.PFT(mm, spf.PFTConfig{Threads: 4, Addr: va, Len: 4 << 20, Writer: 2}, spf.Options{Mode: mode})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %d faults by %d threads, %d writer pairs, speculative attempts %d, all succeeded or retried: %v, check: %v\n",
			mode, r.Faults, r.Threads, r.WriterPairs, r.Attempts, r.Success+r.Retries == r.Attempts, m.Check())
	}
	// Output:
	// off: 1024 faults by 4 threads, 2 writer pairs, speculative attempts 0, all succeeded or retried: true, check: <nil>
	// seq: 1024 faults by 4 threads, 2 writer pairs, speculative attempts 1022, all succeeded or retried: true, check: <nil>
}
