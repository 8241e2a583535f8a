package mmu

import (
	"fmt"
	"math/rand/v2"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// Error numbers, re-exported so callers can write errors.Is(err, mmu.ENOMEM).
const (
	EPERM  = errno.EPERM
	EAGAIN = errno.EAGAIN
	ENOMEM = errno.ENOMEM
	EFAULT = errno.EFAULT
	EBUSY  = errno.EBUSY
	EEXIST = errno.EEXIST
	EINVAL = errno.EINVAL
	ENOENT = errno.ENOENT
)

// Errno is a Linux error number; errors.As finds it in a wrapped error.
type Errno = errno.Errno

// Config describes a machine.
type Config struct {
	// Arch is the architecture; required.
	Arch *arch.Arch
	// MemorySize is the simulated physical memory in bytes (default 64 GiB).
	MemorySize uint64
	// CPUs is the number of CPUs (default 1).
	CPUs int
	// Seed seeds every random choice (default 1).
	Seed uint64
	// TLBEntries and TLBWays size each CPU's TLB (0: the tlb defaults).
	TLBEntries, TLBWays int
	// Knobs are the kernel switches; nil means DefaultKnobs(Arch).
	Knobs *Knobs
	// NoAudit turns off the TLB system's write-time rule checks
	// (break-before-make on arm64, live stores on s390; see
	// tlb.System.SetAudit), for benchmarks: they time the simulator, not
	// its checker. Entries, flushes, counters and simulated time are the
	// same either way. In a test binary New fails with EPERM when it is
	// set outside a benchmark: tests always audit.
	NoAudit bool
}

// Machine is the simulated computer: memory, CPUs with TLBs, the kernel
// address space and the user address spaces.
type Machine struct {
	// arch describes the architecture.
	arch *arch.Arch
	// mem is physical memory.
	mem *phys.Memory
	// tlb holds the CPUs' TLBs and carries out flushes.
	tlb *tlb.System
	// meter counts the kernel's own work (init_mm, flush_tlb_all...).
	meter cost.Meter
	// knobs are the kernel switches.
	knobs Knobs
	// cpus is the number of CPUs.
	cpus int
	// seed and rng give every random choice.
	seed uint64
	rng  *rand.Rand
	// kernel is init_mm.
	kernel *MM
	// mms are the user address spaces in creation order; byName finds them.
	mms    []*MM
	byName map[string]*MM
	// files are the page-cache files in creation order; fileByName finds them.
	files      []*File
	fileByName map[string]*File
	// zero is the shared zero page.
	zero phys.PFN
	// retired holds the counts of address spaces that were torn down, so
	// simulated time never goes backwards.
	retired cost.Counts
	// hugetlb is the hugetlb pool state, owned by the vmemmap package.
	hugetlb any
	// tracer, when set, is installed on every meter, new ones included.
	tracer cost.Tracer
	// kernelFrames counts frames the kernel holds outside folios and
	// tables: the zero page, vmemmap backing, optimisation leftovers.
	kernelFrames uint64
	// holders account for folio references held outside page tables and
	// page caches (the hugetlb pool), for Check.
	holders []Holder
	// pinned counts the FOLL_PIN pins taken through Pin, per folio head;
	// a pinned folio stays allocated after its mappings go.
	pinned map[phys.PFN]int
	// noAudit is Config.NoAudit, applied to every TLB system built.
	noAudit bool
}

// New builds a machine: memory, TLBs, init_mm with its direct map and
// vmemmap, and the zero page.
func New(cfg Config) (*Machine, error) {
	a := cfg.Arch
	if a == nil {
		return nil, fmt.Errorf("mmu: no arch: %w", EINVAL)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("mmu: %v: %w", err, EINVAL)
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.CPUs < 0 || cfg.CPUs > MaxCPUs {
		return nil, fmt.Errorf("mmu: %d CPUs (1..%d): %w", cfg.CPUs, MaxCPUs, EINVAL)
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	mem, err := phys.New(phys.Config{Size: cfg.MemorySize, PageShift: a.Geometry.PageShift, MaxOrder: a.MaxOrder()})
	if err != nil {
		return nil, fmt.Errorf("mmu: %w", err)
	}
	m := &Machine{
		arch:       a,
		mem:        mem,
		cpus:       cfg.CPUs,
		seed:       cfg.Seed,
		rng:        rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		byName:     map[string]*MM{},
		pinned:     map[phys.PFN]int{},
		fileByName: map[string]*File{},
		noAudit:    cfg.NoAudit,
	}
	m.meter.Name = "kernel"
	if cfg.Knobs != nil {
		m.knobs = *cfg.Knobs
	} else {
		m.knobs = DefaultKnobs(a)
	}
	if err := m.buildTLB(cfg.TLBEntries, cfg.TLBWays); err != nil {
		return nil, err
	}
	if err := m.buildKernel(); err != nil {
		return nil, err
	}
	return m, nil
}

// MaxCPUs is the largest number of CPUs a machine may have.
const MaxCPUs = 1024

func (m *Machine) platform() arch.Platform {
	return arch.Platform{CPUs: m.cpus, Virtualized: m.knobs.Virt, RangeTLBI: m.knobs.RangeTLBI, BBML2: m.knobs.BBML2}
}

func (m *Machine) buildTLB(entries, ways int) error {
	var pol tlb.Policy
	if m.arch.NewTLBPolicy != nil {
		pol = m.arch.NewTLBPolicy(m.platform())
	}
	sys, err := tlb.New(tlb.Config{CPUs: m.cpus, Entries: entries, Ways: ways, Policy: pol, KernelMeter: &m.meter})
	if err != nil {
		return fmt.Errorf("mmu: %w", err)
	}
	if m.noAudit {
		if err := sys.SetAudit(false); err != nil {
			return fmt.Errorf("mmu: %w", err)
		}
	}
	m.tlb = sys
	return nil
}

// Arch returns the machine's architecture.
func (m *Machine) Arch() *arch.Arch { return m.arch }

// Memory returns physical memory.
func (m *Machine) Memory() *phys.Memory { return m.mem }

// TLB returns the TLB system.
func (m *Machine) TLB() *tlb.System { return m.tlb }

// Meter returns the machine's own meter (kernel work).
func (m *Machine) Meter() *cost.Meter { return &m.meter }

// Knobs returns the kernel switches.
func (m *Machine) Knobs() Knobs { return m.knobs }

// SetKnob sets one switch from its script spelling; see Knobs.Set. Knobs
// that change the TLB platform (virt, bbml2, range_tlbi) reinstall the
// arch's TLB policy.
func (m *Machine) SetKnob(key, value string) error {
	if err := m.knobs.Set(m.arch, key, value); err != nil {
		return err
	}
	switch key {
	case "virt", "bbml2", "range_tlbi":
		if m.arch.NewTLBPolicy != nil {
			m.tlb.SetPolicy(m.arch.NewTLBPolicy(m.platform()))
		}
	}
	return nil
}

// CPUs returns the number of CPUs.
func (m *Machine) CPUs() int { return m.cpus }

// Seed returns the seed of random choices.
func (m *Machine) Seed() uint64 { return m.seed }

// SetSeed reseeds every later random choice.
func (m *Machine) SetSeed(seed uint64) {
	m.seed = seed
	m.rng = rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// Rand returns the machine's seeded random source.
func (m *Machine) Rand() *rand.Rand { return m.rng }

// Kernel returns init_mm.
func (m *Machine) Kernel() *MM { return m.kernel }

// ZeroPage returns the frame of the shared zero page.
func (m *Machine) ZeroPage() phys.PFN { return m.zero }

// MMs returns the live user address spaces in creation order.
func (m *Machine) MMs() []*MM { return append([]*MM(nil), m.mms...) }

// MM returns the address space called name.
func (m *Machine) MM(name string) (*MM, bool) {
	mm, ok := m.byName[name]
	return mm, ok
}

// NewMM creates an empty address space called name. It fails with EEXIST
// for a name in use, EINVAL for an empty one and ENOMEM when the root
// table cannot be allocated.
func (m *Machine) NewMM(name string) (*MM, error) {
	if name == "" || name == "kernel" {
		return nil, fmt.Errorf("mm %q: reserved or empty name: %w", name, EINVAL)
	}
	if _, ok := m.byName[name]; ok {
		return nil, fmt.Errorf("mm %q: %w", name, EEXIST)
	}
	mm, err := m.newMM(name, false)
	if err != nil {
		return nil, err
	}
	m.mms = append(m.mms, mm)
	m.byName[name] = mm
	return mm, nil
}

func (m *Machine) newMM(name string, kernel bool) (*MM, error) {
	mm := &MM{m: m, name: name, kernel: kernel}
	mm.meter.Name = name
	mm.meter.SetTracer(m.tracer)
	space := m.arch.User
	if kernel {
		space = m.arch.Kernel
	}
	pt, err := pgtable.New(pgtable.Config{
		Geometry: &m.arch.Geometry, Format: &m.arch.Format, Memory: m.mem,
		Meter: &mm.meter, Kernel: kernel, Space: space,
	})
	if err != nil {
		return nil, fmt.Errorf("mm %s: %w", name, err)
	}
	mm.pt = pt
	if err := mm.limitUser(); err != nil {
		_ = pt.FreeTable(pt.Root()) // the empty root is all it has
		return nil, fmt.Errorf("mm %s: %w", name, err)
	}
	mm.tlb = m.tlb.NewContext(name, pt, &mm.meter, kernel)
	if !kernel && m.arch.NewPTEOps != nil {
		pt.SetOps(m.arch.NewPTEOps(m.archEnv(mm)))
	}
	return mm, nil
}

// archEnv gives an arch's PTE operations what they need of an address
// space.
func (m *Machine) archEnv(mm *MM) arch.Env {
	return arch.Env{
		TLB:     m.tlb,
		Context: mm.tlb,
		Memory:  m.mem,
		Meter:   &mm.meter,
		Knobs:   func() arch.KnobView { k := m.knobs; return arch.KnobView{ContPTE: k.ContPTE, BBML2: k.BBML2} },
	}
}

// DestroyMM tears an address space down (exit_mmap): every mapping is
// unmapped, its tables freed, its TLB context released. Its counts stay in
// the machine's simulated time.
func (m *Machine) DestroyMM(mm *MM) error {
	if mm == nil || mm.m != m {
		return fmt.Errorf("destroy mm: not an address space of this machine: %w", EINVAL)
	}
	if mm.kernel || mm.dead {
		return fmt.Errorf("destroy mm %s: %w", mm.name, EINVAL)
	}
	if err := mm.unmapAll(); err != nil {
		return err
	}
	// Tables no VMA covered (the old top that s390's crst_table_upgrade
	// put under entry 0 of the new one) go with the mm too: free_pgtables
	// only visits the VMAs' ranges, and the root can only be freed empty.
	mm.pt.FreeEmpty(0, 0)
	// __mmdrop: any table still deposited, then the root (pgd_free).
	for len(mm.deposits) > 0 {
		mm.withdrawDeposit(true)
	}
	if err := mm.pt.FreeTable(mm.pt.Root()); err != nil {
		return fmt.Errorf("destroy mm %s: %w", mm.name, err)
	}
	m.tlb.ReleaseContext(mm.tlb)
	c := mm.meter.Counts()
	m.retired.Add(&c)
	mm.dead = true
	delete(m.byName, mm.name)
	for i, x := range m.mms {
		if x == mm {
			m.mms = append(m.mms[:i], m.mms[i+1:]...)
			break
		}
	}
	return nil
}

// Counts returns the sum of every meter's counts: all address spaces, the
// kernel, and the address spaces already torn down.
func (m *Machine) Counts() cost.Counts {
	c := m.retired
	k := m.meter.Counts()
	c.Add(&k)
	kc := m.kernel.meter.Counts()
	c.Add(&kc)
	for _, mm := range m.mms {
		x := mm.meter.Counts()
		c.Add(&x)
	}
	return c
}

// SimNS returns the simulated time of all work since the last reset, from
// the arch's cost table.
func (m *Machine) SimNS() uint64 {
	c := m.Counts()
	return m.arch.Costs.NS(&c)
}

// Reset zeroes every event counter of every address space and of the
// machine. State is kept.
func (m *Machine) Reset() {
	m.retired = cost.Counts{}
	m.meter.Reset()
	m.kernel.meter.Reset()
	for _, mm := range m.mms {
		mm.meter.Reset()
	}
}

// SetTracer makes every meter of the machine report each primitive to t;
// nil turns tracing off.
func (m *Machine) SetTracer(t cost.Tracer) {
	m.meter.SetTracer(t)
	m.kernel.meter.SetTracer(t)
	for _, mm := range m.mms {
		mm.meter.SetTracer(t)
	}
	m.tracer = t
}
