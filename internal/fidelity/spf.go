package fidelity

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/spf"
)

// spfPagesPerThread is each pft thread's slice; spfWriterEvery is how
// many faults the writer's mmap/munmap pairs are spread over (one pair
// per this many faults): "many threads faulting while another thread
// maps and unmaps" elsewhere in the address space.
const (
	spfPagesPerThread = 256
	spfWriterEvery    = 1024
)

// spfThreads are the thread counts of F13: 16 (the band's floor), 32 and
// 64 (growth).
var spfThreads = []int{16, 32, 64}

// pftRun runs pft on a fresh x86_64 machine with threads+1 CPUs in the
// given mode and returns the fault throughput (faults per simulated
// second) and the result.
func pftRun(mode mmu.SPFMode, threads int) (float64, spf.PFTResult, error) {
	a, err := archs.ByName("x86_64")
	if err != nil {
		return 0, spf.PFTResult{}, err
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, CPUs: threads + 1})
	if err != nil {
		return 0, spf.PFTResult{}, err
	}
	mm, err := m.NewMM("pft")
	if err != nil {
		return 0, spf.PFTResult{}, err
	}
	const base = 0x7f00_0000_0000
	pages := threads * spfPagesPerThread
	length := uint64(pages) * a.PageSize()
	if err := mm.Mmap(base, length, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
		return 0, spf.PFTResult{}, err
	}
	r, err := spf.PFT(mm, spf.PFTConfig{Threads: threads, Addr: base, Len: length, Writer: pages / spfWriterEvery},
		spf.Options{Mode: mode, PTL: mmu.PTLRCU, Seed: 1})
	if err != nil {
		return 0, r, err
	}
	if err := m.Check(); err != nil {
		return 0, r, fmt.Errorf("pft %s %d threads: %w", mode, threads, err)
	}
	return r.FaultsPerSec(), r, nil
}

// spfExperiments returns F13 and F14.
func spfExperiments() []Experiment {
	return []Experiment{
		{ID: "F13", Title: "x86_64 pft + mmap/munmap writer: SPF / mmap_lock", Run: runF13},
		{ID: "F14", Title: "x86_64 pft: per-VMA-lock gain / SPF gain", Run: runF14},
	}
}

// runF13 measures speculative / mmap_lock fault throughput at 16, 32
// and 64 threads.
func runF13() (Result, error) {
	var res Result
	var notes []string
	for _, n := range spfThreads {
		off, roff, err := pftRun(mmu.SPFOff, n)
		if err != nil {
			return res, err
		}
		seq, rseq, err := pftRun(mmu.SPFSeq, n)
		if err != nil {
			return res, err
		}
		pub := "pft +65% @21, +99% @79, +136% @112"
		band := AtLeast(1.3)
		res.Measures = append(res.Measures, Measure{
			Name: fmt.Sprintf("faults/s SPF / mmap_lock, %d threads", n), Published: pub, Band: band, Value: seq / off, Unit: "x",
		})
		notes = append(notes, fmt.Sprintf("%d thr: mmap_lock %.2f M/s, SPF %.2f M/s (success %.1f%% of %d attempts, %d faults, %d writer pairs)",
			n, off/1e6, seq/1e6, 100*float64(rseq.Success)/float64(max(rseq.Attempts, 1)), rseq.Attempts, roff.Faults, roff.WriterPairs))
	}
	res.Note = "mmap_lock's count word is one cache line bounced by every faulting CPU (100 ns a transfer, serialised): " +
		"the locked path saturates near 1/(2 transfers) while speculative faults read mmap_seq shared. " + strings.Join(notes, "; ") +
		". The model has no other shared resource (zone lock, LRU lock, memcg), so SPF scales linearly and overshoots the published ratio at high thread counts."
	return res, nil
}

// runF14 measures the per-VMA-lock gain as a share of the speculative
// gain at 32 threads of the F13 workload.
func runF14() (Result, error) {
	const n = 32
	off, _, err := pftRun(mmu.SPFOff, n)
	if err != nil {
		return Result{}, err
	}
	seq, _, err := pftRun(mmu.SPFSeq, n)
	if err != nil {
		return Result{}, err
	}
	vma, _, err := pftRun(mmu.SPFVMA, n)
	if err != nil {
		return Result{}, err
	}
	share := (vma - off) / (seq - off)
	return Result{
		Measures: []Measure{{Name: "(vma - mmap_lock) / (SPF - mmap_lock), 32 thr", Published: "~75% of SPF's benefit (per-VMA locks v4)",
			Band: Band{Lo: 0.5, Hi: 1.0}, Value: share, Unit: ""}},
		Note: fmt.Sprintf("32 threads: mmap_lock %.2f M/s, SPF %.2f M/s, per-VMA %.2f M/s. All pft threads fault one VMA, so its vma_lock "+
			"is one line bounced like mmap_lock's and per-VMA locks keep only the writer-blocking part of the gain; Suren's 75%% came "+
			"from mmap-heavy Android workloads, which this pft does not reproduce", off/1e6, seq/1e6, vma/1e6),
	}, nil
}
