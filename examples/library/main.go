// Command library uses ptsim as a Go library: an x86-64 machine, a
// process that maps and writes 4 MiB, a fork, a copy-on-write fault in
// the child and an mremap that moves whole PTE tables; after each step,
// the simulated time and the work counted. README.md shows this file.
//
//	go run ./examples/library
package main

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
)

func main() { run(os.Stdout) }

func run(w io.Writer) {
	m := must(mmu.New(mmu.Config{Arch: must(archs.ByName("x86_64")), CPUs: 2}))
	parent := must(m.NewMM("parent"))
	m.Reset() // count from here, not the kernel's own setup
	const src, dst, size = 0x7f00_0000_0000, 0x7f00_4000_0000, 4 << 20
	check(parent.Mmap(src, size, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	for page := uint64(0); page < size/4096; page++ {
		check(parent.Write(0, src+page*4096, page+1))
	}
	report(w, m, "map and write 4 MiB", cost.Faults, cost.PTAllocs)

	child := must(fork.Fork(parent, "child"))
	report(w, m, "fork", cost.PTESets, cost.TLBFlushMM)

	check(child.Write(1, src, 42)) // copy on write
	fmt.Fprintf(w, "  parent reads %d, child reads %d\n", must(parent.Read(0, src)), must(child.Read(1, src)))
	report(w, m, "child writes one page", cost.Faults, cost.FolioAllocs)

	must(mremap.Mremap(parent, src, size, size, mremap.MayMove|mremap.Fixed, dst))
	report(w, m, "mremap to a PMD-aligned address", cost.PMDMoves, cost.PTEMoves)

	check(m.Check()) // tables, TLBs, refcounts, mapcounts, RSS, leaks
}

// report prints the simulated time and the counters of events since the
// last reset, then starts over.
func report(w io.Writer, m *mmu.Machine, what string, events ...cost.Event) {
	c := m.Counts()
	fmt.Fprintf(w, "%-32s %7.1f µs", what, float64(m.SimNS())/1000)
	for _, e := range events {
		fmt.Fprintf(w, "  %s %d", e, c[e])
	}
	fmt.Fprintln(w)
	m.Reset()
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
