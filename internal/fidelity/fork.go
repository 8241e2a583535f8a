package fidelity

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
)

// The fork experiments (F6, F7) fork a process whose memory is 1 GiB of
// written anonymous memory, PTE-mapped in folios of one size, and compare
// the simulated time of the fork alone with fork_batch on and off:
//
//   - F6 is David Hildenbrand's measurement for "mm/memory: optimize
//     fork() with PTE-mapped THP" (v2/v3 cover, Xeon Silver 4210R):
//     fork() of 1 GiB filled with folios of 4K to 2M (THP disabled for
//     the PMD size, so 2M folios are PTE-mapped), v6.8-rc1 against the
//     series; on x86_64.
//   - F7 is Ryan Roberts' contpte v5 cover (Ampere Altra): fork of
//     order-9 PTE-mapped memory, "contpte-basic" (write-protecting one PTE
//     at a time unfolds every contiguous block: +1948.7%) against the
//     batched APIs (-1.9%); on arm64 with 4K pages and contpte on.
const (
	forkVA   = 0x7f00_0000_0000
	forkSize = 1 << 30
)

// ForkRun is one timed fork of an experiment.
type ForkRun struct {
	// NS is the simulated time of the fork.
	NS uint64
	// Counts are the primitives it performed (all charged to the parent).
	Counts cost.Counts
}

// RunFork1GiB builds a machine of the named arch with the given `config`
// settings ("fork_batch=off"), maps and writes 1 GiB of private anonymous
// memory in folios of folioSize bytes (0: base pages), and times one fork
// of it: the run behind F6 and F7, exported so that examples can show the
// counts.
func RunFork1GiB(archName string, folioSize uint64, knobs ...string) (ForkRun, error) {
	a, err := archs.ByName(archName)
	if err != nil {
		return ForkRun{}, err
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 2 << 30})
	if err != nil {
		return ForkRun{}, err
	}
	for _, kv := range knobs {
		k, v, _ := strings.Cut(kv, "=")
		if err := m.SetKnob(k, v); err != nil {
			return ForkRun{}, err
		}
	}
	mm, err := m.NewMM("bench")
	if err != nil {
		return ForkRun{}, err
	}
	// MAP_POPULATE on a private writable mapping write-faults every page,
	// as the benchmarks' memset did.
	if err := mm.Mmap(forkVA, forkSize, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true, FolioSize: folioSize}); err != nil {
		return ForkRun{}, err
	}
	if err := mm.Write(0, forkVA, 1); err != nil {
		return ForkRun{}, err
	}
	if tr, ok := mm.Translate(forkVA); !ok || uint64(1)<<(m.Memory().FolioOf(tr.PFN).Order+uint8(a.Geometry.PageShift)) != max(folioSize, a.PageSize()) {
		return ForkRun{}, fmt.Errorf("fork run: memory not populated in %d-byte folios", folioSize)
	}
	m.Reset()
	c, err := fork.Fork(mm, "child")
	if err != nil {
		return ForkRun{}, err
	}
	run := ForkRun{NS: m.SimNS(), Counts: m.Counts()}
	if v, err := c.Read(0, forkVA); err != nil || v != 1 {
		return ForkRun{}, fmt.Errorf("child reads %#x, %v", v, err)
	}
	return run, nil
}

func forkExperiments() []Experiment {
	return []Experiment{
		{ID: "F6", Title: "x86_64 fork 1 GiB PTE-mapped folios: batched / unbatched", Run: runF6},
		{ID: "F7", Title: "arm64 contpte fork of order-9 memory: per-PTE / batched", Run: runF7},
	}
}

// f6Sizes are F6's folio sizes with the published change and band.
var f6Sizes = []struct {
	name      string
	size      uint64
	published string
	band      Band
}{
	{"4K", 4 << 10, "0.014328 -> 0.014035 s (-2%)", Band{0.93, 1.05}},
	{"16K", 16 << 10, "0.014263 -> 0.01196 s (-16%)", Band{0.75, 0.92}},
	{"64K", 64 << 10, "0.014046 -> 0.010444 s (-26%)", Band{0.65, 0.83}},
	{"2M", 2 << 20, "0.014305 -> 0.010076 s (-30%)", Band{0.60, 0.80}},
}

func runF6() (Result, error) {
	var r Result
	var notes []string
	for _, s := range f6Sizes {
		on, err := RunFork1GiB("x86_64", s.size, "thp=never", "fork_batch=on")
		if err != nil {
			return Result{}, err
		}
		off, err := RunFork1GiB("x86_64", s.size, "thp=never", "fork_batch=off")
		if err != nil {
			return Result{}, err
		}
		r.Measures = append(r.Measures, Measure{
			Name: "batched / unbatched, " + s.name + " folios", Published: s.published,
			Band: s.band, Value: float64(on.NS) / float64(off.NS), Unit: "x",
		})
		notes = append(notes, fmt.Sprintf("%s %s -> %s", s.name, forkMS(off.NS), forkMS(on.NS)))
	}
	r.Note = "ours (unbatched -> batched): " + strings.Join(notes, "; ")
	return r, nil
}

func runF7() (Result, error) {
	const order9 = 2 << 20
	off, err := RunFork1GiB("arm64", order9, "thp=never", "contpte=on", "fork_batch=off")
	if err != nil {
		return Result{}, err
	}
	on, err := RunFork1GiB("arm64", order9, "thp=never", "contpte=on", "fork_batch=on")
	if err != nil {
		return Result{}, err
	}
	base, err := RunFork1GiB("arm64", order9, "thp=never", "contpte=off", "fork_batch=on")
	if err != nil {
		return Result{}, err
	}
	return Result{
		Measures: []Measure{{Name: "per-PTE / batched write-protect", Published: "+1948.7% vs -1.9% (~20x)",
			Band: Band{8, 40}, Value: float64(off.NS) / float64(on.NS), Unit: "x"}},
		Note: fmt.Sprintf("ours %s (%d unfolds, %d folds) -> %s (%d converts); batched / contpte off %.3f",
			forkMS(off.NS), off.Counts[cost.ContpteUnfolds], off.Counts[cost.ContpteFolds],
			forkMS(on.NS), on.Counts[cost.ContpteConverts], float64(on.NS)/float64(base.NS)),
	}, nil
}

// forkMS formats simulated nanoseconds as milliseconds.
func forkMS(ns uint64) string { return fmt.Sprintf("%.3f ms", float64(ns)/1e6) }
