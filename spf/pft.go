package spf

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// PFTConfig describes a page-fault test (Linux's pft, as Axel Rasmussen
// and Mel Gorman ran it on speculative faults): Threads threads of one
// address space each write every page of their own slice of [Addr,
// Addr+Len), while an optional writer thread maps and unmaps elsewhere.
type PFTConfig struct {
	// Threads is the number of faulting threads (thread i runs on CPU i).
	Threads int
	// Addr and Len are the range, which must be mapped.
	Addr, Len uint64
	// Writer is the number of mmap/munmap pairs the writer thread does
	// (on CPU Threads); 0 for no writer.
	Writer int
	// WriterUntilDone keeps the writer mapping and unmapping until the
	// faulting threads are done (Writer then is a maximum; 0 means no
	// maximum).
	WriterUntilDone bool
	// WriterAddr is where the writer maps (0: the first free, unmergeable
	// spot at least 1 GiB above the range); WriterLen its length (0: one
	// page).
	WriterAddr, WriterLen uint64
}

// PFTResult is what a page-fault test measured.
type PFTResult struct {
	// Threads is the number of faulting threads.
	Threads int
	// Faults counts the page faults the faulting threads completed.
	Faults uint64
	// ElapsedPS is the makespan: simulated time from the first fault's
	// start to the last fault's end.
	ElapsedPS uint64
	// WriterPairs counts the mmap/munmap pairs the writer completed.
	WriterPairs int
	// Attempts, Success, Retries are spf_attempts, spf_success and
	// spf_retries during the test.
	Attempts, Success, Retries uint64
	// Seed is the schedule's seed and Hash its digest: the same seed
	// replays the same schedule and hash.
	Seed, Hash uint64
}

// FaultsPerSec returns the fault throughput in simulated time.
func (r PFTResult) FaultsPerSec() float64 {
	if r.ElapsedPS == 0 {
		return 0
	}
	return float64(r.Faults) / (float64(r.ElapsedPS) / 1e12)
}

// PFT runs a page-fault test on mm with the Sim options (mode, PTL model,
// seed, window) and returns its measurements. Every page written holds
// its page-aligned virtual address afterwards, as the `write` command's
// default. Errors: EINVAL for a bad configuration (no threads, threads or
// writer CPU beyond the machine's CPUs, an unaligned or empty range, a
// range not fully mapped), and any error of the run, naming its seed.
func PFT(mm *mmu.MM, cfg PFTConfig, opt Options) (PFTResult, error) {
	var res PFTResult
	if mm == nil {
		return res, fmt.Errorf("pft: no address space: %w", mmu.EINVAL)
	}
	m := mm.Machine()
	ps := m.Arch().PageSize()
	switch {
	case cfg.Threads <= 0:
		return res, fmt.Errorf("pft: %d threads: %w", cfg.Threads, mmu.EINVAL)
	case cfg.Len == 0 || cfg.Addr&(ps-1) != 0 || cfg.Len&(ps-1) != 0 || cfg.Addr+cfg.Len < cfg.Addr:
		return res, fmt.Errorf("pft %#x+%#x: range not page-aligned or empty: %w", cfg.Addr, cfg.Len, mmu.EINVAL)
	case cfg.Writer < 0:
		return res, fmt.Errorf("pft: writer=%d: %w", cfg.Writer, mmu.EINVAL)
	}
	writer := cfg.Writer > 0 || cfg.WriterUntilDone
	need := cfg.Threads
	if writer {
		need++
	}
	if need > m.CPUs() {
		return res, fmt.Errorf("pft: %d threads need %d CPUs, the machine has %d (set cpus): %w", cfg.Threads, need, m.CPUs(), mmu.EINVAL)
	}
	for a := cfg.Addr; a < cfg.Addr+cfg.Len; {
		v := mm.FindVMA(a)
		if v == nil {
			return res, fmt.Errorf("pft %#x+%#x: %#x is not mapped: %w", cfg.Addr, cfg.Len, a, mmu.EINVAL)
		}
		a = v.End
	}
	wlen := cfg.WriterLen
	if wlen == 0 {
		wlen = ps
	}
	waddr := cfg.WriterAddr
	if writer && waddr == 0 {
		var err error
		if waddr, err = writerSpot(mm, cfg.Addr+cfg.Len, wlen); err != nil {
			return res, err
		}
	}
	sim, err := New(mm, opt)
	if err != nil {
		return res, err
	}
	before := mm.Meter().Counts()
	pages := cfg.Len / ps
	done := 0
	for i := 0; i < cfg.Threads; i++ {
		lo := cfg.Addr + pages*uint64(i)/uint64(cfg.Threads)*ps
		hi := cfg.Addr + pages*uint64(i+1)/uint64(cfg.Threads)*ps
		if err := sim.Go(fmt.Sprintf("pft%d", i), i, func(t *Thread) {
			defer func() { done++ }()
			for a := lo; a < hi; a += ps {
				if err := t.Write(a, a); err != nil {
					t.Fail(fmt.Errorf("pft write %#x: %w", a, err))
				}
				t.Yield()
			}
		}); err != nil {
			return res, err
		}
	}
	if writer {
		if err := sim.Go("writer", cfg.Threads, func(t *Thread) {
			for n := 0; cfg.Writer == 0 || n < cfg.Writer; n++ {
				if cfg.WriterUntilDone && done == cfg.Threads {
					return
				}
				if cfg.Writer > 0 && !cfg.WriterUntilDone {
					// Spread the pairs over the faults: pair n waits for
					// n/(Writer+1) of them.
					due := pages * uint64(n+1) / uint64(cfg.Writer+1)
					sim.waitFaults(t, due)
				}
				if err := t.Mmap(waddr, wlen, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
					t.Fail(fmt.Errorf("pft writer mmap %#x: %w", waddr, err))
				}
				if err := t.Munmap(waddr, wlen); err != nil {
					t.Fail(fmt.Errorf("pft writer munmap %#x: %w", waddr, err))
				}
				res.WriterPairs++
				t.Yield()
			}
		}); err != nil {
			return res, err
		}
	}
	if err := sim.Run(); err != nil {
		return res, fmt.Errorf("pft: %w", err)
	}
	after := mm.Meter().Counts()
	d := after.Sub(&before)
	res.Threads = cfg.Threads
	res.Faults = sim.Faults()
	res.ElapsedPS = sim.ElapsedPS()
	res.Attempts, res.Success, res.Retries = d[cost.SPFAttempts], d[cost.SPFSuccess], d[cost.SPFRetries]
	res.Seed, res.Hash = sim.opt.Seed, sim.s.Hash()
	return res, nil
}

// writerSpot returns an address for the writer's mapping: 1 GiB-aligned,
// at least 1 GiB above from, with a free page on each side so that it
// merges with nothing.
func writerSpot(mm *mmu.MM, from, length uint64) (uint64, error) {
	const gib = 1 << 30
	ps := mm.Machine().Arch().PageSize()
	a := (from+gib-1)&^(gib-1) + gib
	user := mm.Machine().Arch().User
	for i := 0; i < 64; i++ {
		if user.Contains(a, length) && len(mm.VMAsIn(a-ps, a+length+ps)) == 0 {
			return a, nil
		}
		a += gib
	}
	return 0, fmt.Errorf("pft: no free spot for the writer above %#x: %w", from, mmu.ENOMEM)
}

// MapFaultConfig describes the shape of Suren Baghdasaryan's spf_test
// (Pixel 6, 2022) and of the Android app launches per-VMA locks were
// built for: Threads threads of one address space start together; each
// maps its areas with mmap(NULL, ...) ("each thread mmaps several areas
// upon startup ... which requires taking mmap_lock in write mode"), then
// writes every page of them ("page faults take mmap_lock in read mode").
// Writers and faults of different threads interleave; the test's time
// runs until the last thread is done.
type MapFaultConfig struct {
	// Threads is the number of threads; thread i runs on CPU i.
	Threads int
	// Areas are the areas each thread maps, in order. Without Areas,
	// each thread maps VMAs unguarded areas of Pages pages (spf_test).
	Areas       []MapFaultArea
	VMAs, Pages int
	// Top is where mmap(NULL) places guarded areas: the highest free
	// range below it, as below mmap_base (0: 0x7f00_0000_0000). Areas
	// mapped one after the other lie next to each other.
	Top uint64
	// SharedTop is where unguarded areas go (0: Top - 1 GiB).
	// Unguarded areas merge with each other where vma_merge would, so
	// that different threads' areas share a VMA; Android names such
	// mappings (PR_SET_VMA_ANON_NAME), and anonymous VMAs merge only
	// with equal names, which the model, without VMA names, keeps apart
	// by placing them in a region of their own.
	SharedTop uint64
	// Interleave writes each area's pages right after mapping it, before
	// mapping the next; else all areas are mapped first.
	Interleave bool
	// WorkingSet is the number of pages each thread then writes in the
	// working-set VMA [WorkingSetAddr, +Threads*WorkingSet pages), which
	// must be mapped, each thread in its own slice (0: none).
	WorkingSet     int
	WorkingSetAddr uint64
}

// MapFaultArea is one area a MapFault thread maps and faults.
type MapFaultArea struct {
	// Pages is its size, every page written.
	Pages int
	// Guard maps a PROT_NONE page right below it (a pthread stack's or
	// bionic signal stack's guard page), so that it never merges.
	Guard bool
}

// MapFault runs the spf_test workload. Its result's ElapsedPS is the
// whole test's makespan (from the threads' start to the last one's
// end), the figure spf_test reports; Faults counts the page faults.
// Errors: EINVAL for a bad shape or too few CPUs, and any error of the
// run, naming its seed.
func MapFault(mm *mmu.MM, cfg MapFaultConfig, opt Options) (PFTResult, error) {
	var res PFTResult
	if mm == nil {
		return res, fmt.Errorf("mapfault: no address space: %w", mmu.EINVAL)
	}
	m := mm.Machine()
	ps := m.Arch().PageSize()
	if cfg.Top == 0 {
		cfg.Top = 0x7f00_0000_0000
	}
	if cfg.SharedTop == 0 && cfg.Top > 1<<30 {
		cfg.SharedTop = cfg.Top - 1<<30
	}
	areas := cfg.Areas
	if len(areas) == 0 && cfg.VMAs > 0 && cfg.Pages > 0 {
		for range cfg.VMAs {
			areas = append(areas, MapFaultArea{Pages: cfg.Pages})
		}
	}
	bad := cfg.Threads <= 0 || len(areas) == 0 || cfg.Threads > m.CPUs()
	for _, top := range []uint64{cfg.Top, cfg.SharedTop} {
		bad = bad || top&(ps-1) != 0 || top < ps || !m.Arch().User.Contains(top-ps, ps)
	}
	for _, a := range areas {
		bad = bad || a.Pages <= 0
	}
	if bad {
		return res, fmt.Errorf("mapfault %+v on %d CPUs: %w", cfg, m.CPUs(), mmu.EINVAL)
	}
	sim, err := New(mm, opt)
	if err != nil {
		return res, err
	}
	before := mm.Meter().Counts()
	var end uint64
	for i := 0; i < cfg.Threads; i++ {
		if err := sim.Go(fmt.Sprintf("map%d", i), i, func(t *Thread) {
			write := func(a uint64, pages int) {
				for p := a; p < a+uint64(pages)*ps; p += ps {
					if err := t.Write(p, p); err != nil {
						t.Fail(err)
					}
					t.Yield()
				}
			}
			addrs := make([]uint64, len(areas))
			for i, ar := range areas {
				top, guard := cfg.SharedTop, uint64(0)
				if ar.Guard {
					top, guard = cfg.Top, ps
				}
				a, err := t.mmapAnon(uint64(ar.Pages)*ps, guard, mmu.ProtRead|mmu.ProtWrite, top)
				if err != nil {
					t.Fail(err)
				}
				addrs[i] = a
				if cfg.Interleave {
					write(a, ar.Pages)
				}
			}
			if !cfg.Interleave {
				for i, a := range addrs {
					write(a, areas[i].Pages)
				}
			}
			if cfg.WorkingSet > 0 {
				write(cfg.WorkingSetAddr+uint64(t.ID()-1)*uint64(cfg.WorkingSet)*ps, cfg.WorkingSet)
			}
			sim.charge(t)
			end = max(end, t.Clock())
		}); err != nil {
			return res, err
		}
	}
	if err := sim.Run(); err != nil {
		return res, fmt.Errorf("mapfault: %w", err)
	}
	after := mm.Meter().Counts()
	d := after.Sub(&before)
	res.Threads = cfg.Threads
	res.Faults = sim.Faults()
	res.ElapsedPS = end
	res.Attempts, res.Success, res.Retries = d[cost.SPFAttempts], d[cost.SPFSuccess], d[cost.SPFRetries]
	res.Seed, res.Hash = sim.opt.Seed, sim.s.Hash()
	return res, nil
}
