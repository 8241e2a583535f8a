package scenario

import (
	"sort"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// State counters: they describe the current address space's state, and
// reset leaves them alone.
const (
	// CounterRSSAnon is MM_ANONPAGES.
	CounterRSSAnon = "rss_anon"
	// CounterRSSFile is MM_FILEPAGES + MM_SHMEMPAGES: every resident page
	// with a file behind it, shmem included, as SCENARIOS.md's "resident
	// pages, as Linux's RSS counters" reads (Linux's RssFile in
	// /proc/PID/status leaves shmem out; rss_shmem shows that part).
	CounterRSSFile = "rss_file"
	// CounterRSSShmem is MM_SHMEMPAGES alone.
	CounterRSSShmem = "rss_shmem"
	// CounterVMAs is the number of VMAs.
	CounterVMAs = "vmas"
	// CounterSimNS is the simulated time of all work since the last
	// reset, machine-wide (mmu.Machine.SimNS).
	CounterSimNS = "sim_ns"
)

// counterNames lists every counter, sorted: every cost event, plus the
// state counters and sim_ns.
var counterNames = func() []string {
	names := []string{CounterRSSAnon, CounterRSSFile, CounterRSSShmem, CounterVMAs, CounterSimNS}
	for e := cost.Event(0); e < cost.NumEvents; e++ {
		names = append(names, e.String())
	}
	sort.Strings(names)
	return names
}()

// Counters returns every counter name `stats` prints and `expect` reads,
// sorted. Event counters belong to the current address space, except the
// machine-wide ones (cost.Event.MachineWide: tlb_flush_all,
// tlb_flush_kernel, vmemmap_*) and sim_ns, which sum every meter.
func Counters() []string { return append([]string(nil), counterNames...) }

// IsCounter reports whether name is a counter.
func IsCounter(name string) bool {
	i := sort.SearchStrings(counterNames, name)
	return i < len(counterNames) && counterNames[i] == name
}

// Counter returns the value of the counter called name for the current
// address space (see Counters). Reading builds the machine and the init
// address space if the script has not yet.
func (e *Env) Counter(name string) (uint64, error) {
	mm, err := e.MM()
	if err != nil {
		return 0, err
	}
	return counterValue(mm, name), nil
}

// counterValue reads one counter of mm (0 for an unknown name, which the
// parser rejects before anything runs).
func counterValue(mm *mmu.MM, name string) uint64 {
	m := mm.Machine()
	switch name {
	case CounterRSSAnon:
		return uint64(mm.RSS(mmu.MMAnonPages))
	case CounterRSSFile:
		return uint64(mm.RSS(mmu.MMFilePages) + mm.RSS(mmu.MMShmemPages))
	case CounterRSSShmem:
		return uint64(mm.RSS(mmu.MMShmemPages))
	case CounterVMAs:
		return uint64(len(mm.VMAs()))
	case CounterSimNS:
		return m.SimNS()
	}
	ev, ok := cost.EventByName(name)
	if !ok {
		return 0
	}
	if ev.MachineWide() {
		c := m.Counts()
		return c[ev]
	}
	return mm.Meter().Count(ev)
}
