package vmemmap

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
)

const (
	m2 = 2 << 20
	g1 = 1 << 30
)

// rig is a machine with its hugetlb subsystem.
type rig struct {
	t testing.TB
	m *mmu.Machine
	h *HugeTLB
}

// newRig builds a machine of arch name with cpus CPUs and mem bytes and
// sets the knobs given as key, value pairs.
func newRig(t testing.TB, name string, cpus int, mem uint64, knobs ...string) *rig {
	t.Helper()
	a, err := archs.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	// "hvo" "forced" turns HVO on where the arch does not select it, as
	// if its Kconfig did (a private copy of the descriptor with the
	// capability on, the knob set at build time since SetKnob refuses):
	// the tests that show why arm64 does not select
	// ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP use it.
	k := mmu.DefaultKnobs(a)
	var rest []string
	for i := 0; i+1 < len(knobs); i += 2 {
		if knobs[i] == "hvo" && knobs[i+1] == "forced" {
			// As if the arch selected the option: a private copy of
			// its descriptor with the capability on.
			a.Caps.OptimizeVmemmap = true
			k.HVO = true
			continue
		}
		rest = append(rest, knobs[i], knobs[i+1])
	}
	knobs = rest
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: mem, CPUs: cpus, Knobs: &k})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(knobs); i += 2 {
		if err := m.SetKnob(knobs[i], knobs[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	r := &rig{t: t, m: m, h: Of(m)}
	r.check()
	return r
}

// pool returns the pool of size bytes.
func (r *rig) pool(size uint64) *Pool {
	r.t.Helper()
	p, err := r.h.Pool(size)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

// check runs the machine's invariant checker (tables, TLB validator with
// the kernel's vmemmap entries, refcounts, frame accounting) and the
// pools' audit of the vmemmap.
func (r *rig) check() {
	r.t.Helper()
	if err := r.m.Check(); err != nil {
		r.t.Fatalf("machine check: %v", err)
	}
	if err := r.h.Check(); err != nil {
		r.t.Fatalf("hugetlb check: %v", err)
	}
}

// count returns a counter summed over every meter of the machine.
func (r *rig) count(e cost.Event) uint64 {
	c := r.m.Counts()
	return c[e]
}

// knob sets one knob.
func (r *rig) knob(k, v string) {
	r.t.Helper()
	if err := r.m.SetKnob(k, v); err != nil {
		r.t.Fatal(err)
	}
}

// alloc grows p by n folios and requires success.
func (r *rig) alloc(p *Pool, n int) {
	r.t.Helper()
	got, err := p.Alloc(n)
	if err != nil || got != n {
		r.t.Fatalf("alloc %d: %d, %v", n, got, err)
	}
}

// touch makes every CPU read the struct pages of every pool folio (as
// speculative PFN walkers and compaction do) and some of the direct map,
// so their TLBs hold kernel vmemmap entries that a missing flush would
// leave stale.
func (r *rig) touch() {
	r.t.Helper()
	ps := r.m.Arch().PageSize()
	for cpu := 0; cpu < r.m.CPUs(); cpu++ {
		for _, p := range r.h.pools {
			for _, f := range p.free {
				reuse, end := p.vmemmapRange(f)
				for va := reuse; va < end; va += ps {
					if _, err := r.m.KernelAccess(cpu, va, mmu.Read); err != nil {
						r.t.Fatalf("cpu%d reads %#x: %v", cpu, va, err)
					}
				}
			}
		}
		if _, err := r.m.KernelAccess(cpu, r.m.Arch().DirectMap, mmu.Read); err != nil {
			r.t.Fatal(err)
		}
	}
}

// hog allocates every free frame as kernel memory (accounted, so Check
// balances) and returns them for unhog.
func (r *rig) hog() []phys.PFN {
	var got []phys.PFN
	mem := r.m.Memory()
	for {
		pfn, err := mem.Alloc(0, phys.KindKernel)
		if err != nil {
			if !errors.Is(err, ENOMEM) {
				r.t.Fatal(err)
			}
			return got
		}
		r.m.AddKernelFrames(1)
		got = append(got, pfn)
	}
}

// unhog frees what hog took.
func (r *rig) unhog(pfns []phys.PFN) {
	for _, pfn := range pfns {
		r.m.Memory().Free(pfn, phys.KindKernel)
		r.m.AddKernelFrames(-1)
	}
}

// vmemmapPMDs returns how many distinct vmemmap PMDs the vmemmap of the
// folios spans: the splits a batch needs on fresh vmemmap.
func (r *rig) vmemmapPMDs(p *Pool, folios []phys.Folio) uint64 {
	const pmdShift = 21
	seen := map[uint64]bool{}
	for _, f := range folios {
		reuse, end := p.vmemmapRange(f)
		for a := reuse >> pmdShift; a <= (end-1)>>pmdShift; a++ {
			seen[a] = true
		}
	}
	return uint64(len(seen))
}

// state is what a flow leaves behind, for comparing the batched and
// unbatched flows: everything but which frames were chosen and the costs.
type state struct {
	folios, optimized              int
	freeFrames, kernelFrames       uint64
	tables                         int
	splits, pagesFreed, pagesRestd uint64
}

func (r *rig) state() state {
	s := state{
		freeFrames:   r.m.Memory().FreeFrames(),
		kernelFrames: r.m.KernelFrames(),
		tables:       r.m.Kernel().PageTable().Tables(),
		splits:       r.count(cost.VmemmapSplits),
		pagesFreed:   r.count(cost.VmemmapPagesFreed),
		pagesRestd:   r.count(cost.VmemmapPagesRestored),
	}
	for _, p := range r.h.pools {
		for _, f := range p.free {
			s.folios++
			if p.Optimized(f) {
				s.optimized++
			}
		}
	}
	return s
}
