package fidelity

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// contpteExperiments returns F8 and F9.
func contpteExperiments() []Experiment {
	return []Experiment{
		{ID: "F8", Title: "arm64 page_fault3: write faults one page at a time into 64K file folios, 128 CPUs", Run: runF8},
		{ID: "F9", Title: "arm64 contpte_convert with BBML2 (no intermediate TLBI) vs without", Run: runF9},
	}
}

// F8 parameters: will-it-scale page_fault3_processes -t 128 (Kefeng
// Wang's report): 128 processes on 128 CPUs, each mapping its own 128 MiB
// file MAP_SHARED and storing to every page, then munmap, in a loop. The
// processes are identical and independent but for one thing: every
// broadcast TLBI reaches the other 127 CPUs, all busy with their own
// copy. The model runs f8Procs of them in full, on CPUs 0..f8Procs-1, and
// keeps the other CPUs running address spaces of their own, so that each
// TLBI is received by 127 busy CPUs as in the benchmark; per process the
// work is the same. Each maps f8Pages pages (the file is smaller than the
// benchmark's 128 MiB: only mmap and munmap's fixed work is shared by
// fewer pages, and it stays under 1% of a pass).
const (
	f8CPUs  = 128
	f8Procs = 4
	f8Pages = 8192 // 32 MiB per process: 512 blocks of 16 pages
	f8Iters = 1    // measured passes, after one that fills the page cache
	f8Base  = uint64(1) << 32
)

// f8Config is one configuration of Kefeng Wang's table.
type f8Config struct {
	// name says what is on.
	name string
	// knobs are the config switches that differ from today's defaults.
	knobs [][2]string
}

var f8Configs = []f8Config{
	{"large folios off", [][2]string{{"file_large_folios", "off"}, {"fault_whole_folio", "off"}}},
	{"large folios, contpte on", [][2]string{{"fault_whole_folio", "off"}}},
	{"large folios, contpte off", [][2]string{{"fault_whole_folio", "off"}, {"contpte", "off"}}},
	{"large folios, whole-folio finish_fault", nil},
}

// f8Run is what one configuration measured.
type f8Run struct {
	// pages is the number of pages faulted in the measured iterations.
	pages uint64
	// ns is the simulated CPU time of the simulated processes over the
	// measured iterations.
	ns uint64
	// counts are the measured iterations' counts.
	counts cost.Counts
	// table is the arch's cost table.
	table *cost.Table
}

// throughput returns pages per simulated second of the simulated
// processes: each runs on a CPU of its own, in parallel, so elapsed time
// is their CPU time over their number. (The benchmark's figure is this
// times 128/f8Procs.)
func (r f8Run) throughput() float64 {
	return float64(r.pages) / (float64(r.ns) / f8Procs / 1e9)
}

// runF8Config runs page_fault3 on a fresh arm64 machine with 128 CPUs.
func runF8Config(c f8Config) (f8Run, error) {
	a := arm64.New(arm64.Granule4K)
	m, err := mmu.New(mmu.Config{Arch: a, CPUs: f8CPUs, MemorySize: 8 << 30, Seed: 8})
	if err != nil {
		return f8Run{}, err
	}
	for _, kv := range c.knobs {
		if err := m.SetKnob(kv[0], kv[1]); err != nil {
			return f8Run{}, err
		}
	}
	mms := make([]*mmu.MM, f8Procs)
	for i := range mms {
		if mms[i], err = m.NewMM(fmt.Sprintf("pf3-%d", i)); err != nil {
			return f8Run{}, err
		}
	}
	// The other CPUs run the other processes: each is switched to an
	// address space of its own.
	for c := f8Procs; c < f8CPUs; c++ {
		other, err := m.NewMM(fmt.Sprintf("pf3-%d", c))
		if err != nil {
			return f8Run{}, err
		}
		m.TLB().CPU(c).Switch(other.TLBContext())
	}
	ps := a.PageSize()
	size := uint64(f8Pages) * ps
	iteration := func() error {
		for i, mm := range mms {
			// Process i runs on CPU i: its faults' flushes start there.
			if err := m.TLB().SetLocalCPU(i); err != nil {
				return err
			}
			fl := mmu.MapFlags{File: mm.Name(), Shared: true, FolioSize: 64 << 10}
			if err := mm.Mmap(f8Base, size, mmu.ProtRead|mmu.ProtWrite, fl); err != nil {
				return err
			}
			// Every process stores to each page once, in order
			// (c[i] = 0 in page_fault3): one write fault per page, or
			// per folio with whole-folio mapping. Each store's line
			// comes from DRAM: the page was last touched a 128 MiB pass
			// ago, and the model keeps no data caches, so the workload
			// counts the miss itself.
			for p := uint64(0); p < f8Pages; p++ {
				if err := mm.Write(i, f8Base+p*ps, 0); err != nil {
					return err
				}
				mm.Meter().Add(cost.UserMisses, 1)
			}
		}
		for i, mm := range mms {
			if err := m.TLB().SetLocalCPU(i); err != nil {
				return err
			}
			if err := mm.Munmap(f8Base, size); err != nil {
				return err
			}
		}
		return nil
	}
	// The first pass allocates and zeroes the file's folios; the
	// benchmark runs for seconds, so the page cache is warm.
	if err := iteration(); err != nil {
		return f8Run{}, err
	}
	if err := m.Check(); err != nil {
		return f8Run{}, fmt.Errorf("F8 %s: %w", c.name, err)
	}
	m.Reset()
	for it := 0; it < f8Iters; it++ {
		if err := iteration(); err != nil {
			return f8Run{}, err
		}
	}
	if err := m.Check(); err != nil {
		return f8Run{}, fmt.Errorf("F8 %s: %w", c.name, err)
	}
	return f8Run{pages: f8Procs * f8Pages * f8Iters, ns: m.SimNS(), counts: m.Counts(), table: a.Costs}, nil
}

// runF8 runs the four configurations and compares their throughput with
// large folios off.
func runF8() (Result, error) {
	runs := make([]f8Run, len(f8Configs))
	for i, c := range f8Configs {
		r, err := runF8Config(c)
		if err != nil {
			return Result{}, err
		}
		runs[i] = r
	}
	base := runs[0].throughput()
	if runs[0].ns == 0 {
		return Result{}, fmt.Errorf("F8: the arm64 cost table prices none of the work")
	}
	ratio := func(i int) float64 { return runs[i].throughput() / base }
	on, whole := runs[1], runs[3]
	res := Result{
		Measures: []Measure{
			{Name: "contpte on / large folios off", Published: "16164943 / 92378735 = 0.175", Band: Band{0.08, 0.35}, Value: ratio(1), Unit: "x"},
			{Name: "contpte off / large folios off", Published: "80364074 / 92378735 = 0.87", Band: Band{0.70, 1.00}, Value: ratio(2), Unit: "x"},
			{Name: "whole-folio finish_fault / large folios off", Published: "299656874 / 92378735 = 3.24", Band: Band{2.0, 5.0}, Value: ratio(3), Unit: "x"},
		},
		Note: fmt.Sprintf("contpte on: %d folds for %d pages, one per 16-page block at its 16th write fault "+
			"(contpte_try_fold's gate), each a contpte_convert: 16 get-and-clears, 16 TLBI VALE1IS and a DSB ISH "+
			"(no FEAT_TLBIRANGE on that server), 16 repaints. The converts take %.0f%% of the simulated time "+
			"(published: contpte_convert 76%% of CPU), nearly all of it the broadcast TLBIs: every one is received by "+
			"the 127 other CPUs, all running page_fault3 too, so the convert's cost grows with the CPUs "+
			"(top events: %s). Large folios with contpte off lose a little because ext4's block_page_mkwrite "+
			"walks all 16 blocks of the folio on every fault. Whole-folio finish_fault maps a folio with one "+
			"set_ptes(16), setting PTE_CONT directly: one fault, one page-cache lookup and one page_mkwrite per 16 "+
			"pages, no fold, no TLBI; what is left per page is the store's DRAM miss, the PTE write and clear and "+
			"the rmap atomics (top events: %s).",
			on.counts[cost.ContpteFolds], on.pages, 100*convertShare(on), topEvents(on, 3), topEvents(whole, 3)),
	}
	return res, nil
}

// convertShare returns the part of r's simulated time spent in the
// primitives of contpte_convert: its clears and repaints (per entry a
// read, a clear and a write), its TLBIs and DSBs, and the other CPUs'
// work receiving those TLBIs.
func convertShare(r f8Run) float64 {
	t := r.table
	n := uint64(16) * r.counts[cost.ContpteConverts]
	ps := n*(t.Figure(cost.EntryReads).PS+t.Figure(cost.PTEClears).PS+t.Figure(cost.PTESets).PS) +
		r.counts[cost.TLBIOps]*t.Figure(cost.TLBIOps).PS +
		r.counts[cost.TLBSyncs]*t.Figure(cost.TLBSyncs).PS +
		r.counts[cost.TLBIRemote]*t.Figure(cost.TLBIRemote).PS
	if total := t.PS(&r.counts); total > 0 {
		return float64(ps) / float64(total)
	}
	return 0
}

// topEvents lists the n events that take most of r's simulated time, with
// their shares.
func topEvents(r f8Run, n int) string {
	type ev struct {
		e  cost.Event
		ps uint64
	}
	var evs []ev
	total := r.table.PS(&r.counts)
	for e := cost.Event(0); e < cost.NumEvents; e++ {
		if ps := r.counts[e] * r.table.Figure(e).PS; ps > 0 {
			evs = append(evs, ev{e, ps})
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ps > evs[j].ps })
	var parts []string
	for i := 0; i < len(evs) && i < n; i++ {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", evs[i].e, 100*float64(evs[i].ps)/float64(total)))
	}
	return strings.Join(parts, ", ")
}

// F9 parameters: Catalin Marinas's apply note for Mikołaj Lenczewski's
// "Elide tlbi in contpte_convert() under BBML2": a microbenchmark built to
// force the contpte_convert path ran 12% faster, an 80% reduction in the
// cost of contpte_convert. The model forces the path as the garbage
// collectors of Ryan Roberts's rationale do: mprotect(PROT_READ) then
// mprotect(PROT_READ|PROT_WRITE) of the last page of folded blocks, each
// pair one unfold and one fold, on one CPU of a machine whose CPUs have
// FEAT_TLBIRANGE (every BBML2-noabort CPU on the allow-list does).
const (
	f9CPUs   = 8
	f9Blocks = 32
	f9Rounds = 4
)

// convertMeter sums, from the trace, the simulated cost of each
// contpte_convert: every primitive from its contpte_converts record to
// the last of its CONT_PTES repainting writes.
type convertMeter struct {
	// table prices the records; n is CONT_PTES.
	table *cost.Table
	n     uint64
	// in is set inside a convert; sets counts its repainting writes.
	in   bool
	sets uint64
	// converts and ps are the converts seen and their total cost.
	converts, ps uint64
	// tlbi and syncs count the converts' TLBI instructions and DSBs.
	tlbi, syncs uint64
}

// Trace implements cost.Tracer.
func (c *convertMeter) Trace(r cost.Record) {
	if r.Event == cost.ContpteConverts {
		c.in, c.sets = true, 0
		c.converts++
		return
	}
	if !c.in {
		return
	}
	c.ps += r.N * c.table.Figure(r.Event).PS
	switch r.Event {
	case cost.TLBIOps:
		c.tlbi += r.N
	case cost.TLBSyncs:
		c.syncs += r.N
	case cost.PTESets:
		c.sets += r.N
		if c.sets >= c.n {
			c.in = false
		}
	}
}

// runF9Config runs the microbenchmark with BBML2 on or off and returns
// the cost of the converts alone and of the whole benchmark, and the
// whole benchmark's counts.
func runF9Config(bbml2 bool) (*convertMeter, uint64, cost.Counts, error) {
	a := arm64.New(arm64.Granule4K)
	m, err := mmu.New(mmu.Config{Arch: a, CPUs: f9CPUs, MemorySize: 1 << 30, Seed: 9})
	if err != nil {
		return nil, 0, cost.Counts{}, err
	}
	on := "off"
	if bbml2 {
		on = "on"
	}
	for _, kv := range [][2]string{{"range_tlbi", "on"}, {"bbml2", on}} {
		if err := m.SetKnob(kv[0], kv[1]); err != nil {
			return nil, 0, cost.Counts{}, err
		}
	}
	mm, err := m.NewMM("gc")
	if err != nil {
		return nil, 0, cost.Counts{}, err
	}
	n := a.Caps.ContPTEs
	ps := a.PageSize()
	block := uint64(n) * ps
	base := uint64(1) << 32
	if err := mm.Mmap(base, f9Blocks*block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: block}); err != nil {
		return nil, 0, cost.Counts{}, err
	}
	for b := uint64(0); b < f9Blocks; b++ {
		if err := mm.Write(0, base+b*block, b); err != nil {
			return nil, 0, cost.Counts{}, err
		}
	}
	m.Reset()
	cm := &convertMeter{table: a.Costs, n: uint64(n)}
	m.SetTracer(cm)
	for r := 0; r < f9Rounds; r++ {
		for b := uint64(0); b < f9Blocks; b++ {
			last := base + b*block + block - ps
			if err := mm.Mprotect(last, ps, mmu.ProtRead); err != nil {
				return nil, 0, cost.Counts{}, err
			}
			if err := mm.Mprotect(last, ps, mmu.ProtRead|mmu.ProtWrite); err != nil {
				return nil, 0, cost.Counts{}, err
			}
		}
	}
	m.SetTracer(nil)
	if err := m.Check(); err != nil {
		return nil, 0, cost.Counts{}, fmt.Errorf("F9 bbml2=%s: %w", on, err)
	}
	if want := uint64(2 * f9Rounds * f9Blocks); cm.converts != want {
		return nil, 0, cost.Counts{}, fmt.Errorf("F9 bbml2=%s: %d converts, want %d (one unfold and one fold per mprotect pair)", on, cm.converts, want)
	}
	return cm, m.SimNS(), m.Counts(), nil
}

// runF9 compares the cost of contpte_convert with and without BBML2.
func runF9() (Result, error) {
	without, benchWithout, counts, err := runF9Config(false)
	if err != nil {
		return Result{}, err
	}
	with, benchWith, _, err := runF9Config(true)
	if err != nil {
		return Result{}, err
	}
	if without.ps == 0 || benchWithout == 0 {
		return Result{}, fmt.Errorf("F9: the arm64 cost table prices none of the convert's work")
	}
	per := func(c *convertMeter) float64 { return float64(c.ps) / float64(c.converts) / 1000 }
	change := 100 * (per(with)/per(without) - 1)
	bench := float64(benchWith)/float64(benchWithout) - 1
	return Result{
		Measures: []Measure{
			{Name: "contpte_convert cost, BBML2 vs not", Published: "-80% (Catalin Marinas, apply note)", Band: Band{-90, -60}, Value: change, Unit: "%"},
		},
		Note: fmt.Sprintf("per convert %.0f ns without BBML2 (%d entry clears, %.0f TLBI RVALE1IS, %.0f DSB ISH, %d repaints) and %.0f ns with it "+
			"(clears and repaints only; the stale small and contiguous entries may coexist until the caller's flush, which BBML2 without conflict aborts allows). "+
			"The whole mprotect(r)/mprotect(rw) microbenchmark changes by %+.0f%% (published: 12%% faster); without BBML2 its time is %s: "+
			"per mprotect pair two syscall entries (%.1f us each), the two converts' TLBIs and DSBs, and a VMA split and merge "+
			"(vma_ops, %.1f us each).",
			per(without), without.n, float64(without.tlbi)/float64(without.converts), float64(without.syncs)/float64(without.converts), without.n,
			per(with), 100*bench, Shares(&counts, armCosts(), 4),
			float64(armCosts().Figure(cost.Syscalls).PS)/1e6, float64(armCosts().Figure(cost.VMAOps).PS)/1e6),
	}, nil
}
