package spf

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/spf/sched"
	"github.com/ptsim/ptsim/tlb"
)

// Options configure a Sim.
type Options struct {
	// Mode is the fault path; the machine's spf knob when FromKnobs.
	Mode mmu.SPFMode
	// PTL is the PTE-lock lifetime model; the machine's spf_ptl knob
	// when FromKnobs.
	PTL mmu.SPFPTLModel
	// FromKnobs takes Mode and PTL from the machine's knobs.
	FromKnobs bool
	// Seed seeds the scheduler; 0 takes the machine's seed.
	Seed uint64
	// Window is the scheduler's clock window (sched.Config.Window): 0
	// runs threads in simulated-time order, sched.Unordered explores any
	// interleaving.
	Window uint64
	// MaxSteps bounds the hand-offs (0: 10 million).
	MaxSteps int
	// Trace keeps the scheduler's trace.
	Trace bool
	// CheckEachStep runs the machine's invariant checker and the Sim's
	// own (no lost or torn write, no mapping into an unmapped VMA) after
	// every hand-off; the first failure stops the run.
	CheckEachStep bool
}

// Sim is one run of simulated threads on one address space.
type Sim struct {
	// m and mm are the machine and the address space the threads share.
	m  *mmu.Machine
	mm *mmu.MM
	// costs is the arch's cost table; pricedPS is the price of every
	// count at the last hand-off, so each thread is charged the delta.
	costs    *cost.Table
	pricedPS uint64
	// opt are the options in force.
	opt Options
	// s is the scheduler.
	s *sched.Scheduler
	// mmapLock is mm->mmap_lock; its count word is a contended line.
	mmapLock rwsem
	// mmLine is the mm_struct line holding mmap_seq and mm_lock_seq:
	// written by writers, read by speculative and per-VMA-lock faults.
	mmLine line
	// vmaLocks are the per-VMA locks (struct vma_lock), by VMA.
	vmaLocks map[*mmu.VMA]*vmaLock
	// ptl are the PTE tables' lock lines, by table.
	ptl map[*pgtable.Table]*line
	// shared are the fault path's other shared resources (page
	// allocator, memcg, LRU, statistics); see shared.go.
	shared *faultShared
	// sections maps a thread to its open speculative walk section (RCU
	// or IRQ-off), 0 when none; nextSection numbers sections.
	sections    map[int]uint64
	nextSection uint64
	// sectionEnd is when each thread last left a walk section.
	sectionEnd map[int]uint64
	// pending are detached tables waiting for walkers (RCU mode).
	pending []pendingFree
	// held are pages prepared by speculative faults not yet committed;
	// the Sim reports them to the checker as a Holder.
	held []phys.Folio
	// written maps each page a faulting thread wrote to the value, while
	// its mapping lives (the lost-update oracle).
	written map[uint64]uint64
	// firstFault and lastFault bound the faults in simulated time (ps).
	firstFault, lastFault uint64
	faulted               bool
	// faults counts completed page faults (every path).
	faults uint64
	// users is mm_users: the Sim's threads not yet exited.
	users int
	// violations are the Sim's own invariant failures.
	violations []string
	// err is the first error that stops the run.
	err error
}

// pendingFree is a batch of detached tables and the walk sections that
// must end before they are freed.
type pendingFree struct {
	tables []*pgtable.Table
	wait   map[int]uint64
}

// New returns a Sim on mm. The machine's CPUs bound the threads: thread
// CPUs must be below m.CPUs().
func New(mm *mmu.MM, opt Options) (*Sim, error) {
	if mm == nil || mm.Dead() || mm.IsKernel() {
		return nil, fmt.Errorf("spf: need a live user address space: %w", mmu.EINVAL)
	}
	m := mm.Machine()
	if opt.FromKnobs {
		opt.Mode, opt.PTL = m.Knobs().SPF, m.Knobs().SPFPTL
	}
	if opt.Mode > mmu.SPFVMA || opt.PTL > mmu.PTLFreeEarly {
		return nil, fmt.Errorf("spf: mode %d / ptl model %d: %w", opt.Mode, opt.PTL, mmu.EINVAL)
	}
	if opt.Seed == 0 {
		opt.Seed = m.Seed()
	}
	if opt.MaxSteps == 0 {
		opt.MaxSteps = 10_000_000
	}
	cpus := m.CPUs()
	sim := &Sim{
		m: m, mm: mm, costs: m.Arch().Costs, opt: opt,
		s:          sched.New(sched.Config{Seed: opt.Seed, Window: opt.Window, MaxSteps: opt.MaxSteps, Trace: opt.Trace}),
		vmaLocks:   map[*mmu.VMA]*vmaLock{},
		ptl:        map[*pgtable.Table]*line{},
		sections:   map[int]uint64{},
		sectionEnd: map[int]uint64{},
		written:    map[uint64]uint64{},
	}
	sim.mmapLock.line = newLine(cpus)
	sim.mmLine = newLine(cpus)
	sim.shared = newFaultShared(cpus, m.Memory().Frames(), m.Arch().Geometry.PageShift)
	m.AddHolder(sim)
	return sim, nil
}

// Scheduler returns the Sim's scheduler (its trace, hash and seed).
func (s *Sim) Scheduler() *sched.Scheduler { return s.s }

// Options returns the options in force.
func (s *Sim) Options() Options { return s.opt }

// Holdings reports the prepared pages of speculative faults in flight,
// one reference each (mmu.Holder).
func (s *Sim) Holdings(fn func(f phys.Folio, refs int)) {
	for _, f := range s.held {
		fn(f, 1)
	}
}

// Go adds a simulated thread on cpu running body, which receives a
// handle for the thread's operations.
func (s *Sim) Go(name string, cpu int, body func(t *Thread)) error {
	if cpu < 0 || cpu >= s.m.CPUs() {
		return fmt.Errorf("spf: thread %s on cpu %d of %d: %w", name, cpu, s.m.CPUs(), mmu.EINVAL)
	}
	if body == nil {
		return fmt.Errorf("spf: thread %s has no body: %w", name, mmu.EINVAL)
	}
	// clone(CLONE_VM) takes a reference on the mm (mm_users); the
	// thread's exit_mm drops it.
	s.users++
	s.s.Go(name, cpu, func(st *sched.Thread) {
		t := &Thread{sim: s, st: st}
		s.resume(t)
		body(t)
		s.charge(t)
		s.users--
	})
	return nil
}

// Run runs the threads to the end. It returns the first error: a
// deadlock or step limit of the scheduler, an invariant failure (with
// CheckEachStep), a Hildenbrand hazard recorded by the validator, or an
// error a thread reported with Fail. Errors name the seed.
func (s *Sim) Run() error {
	err := s.s.Run()
	if s.err != nil {
		return s.err
	}
	if err != nil {
		return err
	}
	if len(s.held) != 0 {
		return fmt.Errorf("spf: %d prepared pages never committed or released (seed %d)", len(s.held), s.opt.Seed)
	}
	s.reap(true)
	if len(s.pending) != 0 {
		return fmt.Errorf("spf: %d batches of tables never freed (seed %d)", len(s.pending), s.opt.Seed)
	}
	if len(s.violations) > 0 {
		return fmt.Errorf("spf (seed %d): %s", s.opt.Seed, s.violations[0])
	}
	return nil
}

// Faults returns the page faults the threads completed.
func (s *Sim) Faults() uint64 { return s.faults }

// ElapsedPS returns the simulated time from the first fault's start to
// the last fault's end, in picoseconds (the pft makespan).
func (s *Sim) ElapsedPS() uint64 {
	if !s.faulted {
		return 0
	}
	return s.lastFault - s.firstFault
}

// Thread is a simulated thread's handle on the Sim.
type Thread struct {
	// sim is the simulation; st the scheduler's thread.
	sim *Sim
	st  *sched.Thread
}

// ID returns the thread's number (from 1).
func (t *Thread) ID() int { return t.st.ID }

// CPU returns the thread's CPU.
func (t *Thread) CPU() int { return t.st.CPU }

// Clock returns the thread's simulated time in picoseconds.
func (t *Thread) Clock() uint64 { return t.st.Clock }

// Fail stops the run with err (wrapped with the seed), as a thread that
// found a broken invariant does.
func (t *Thread) Fail(err error) {
	s := t.sim
	if s.err == nil {
		s.err = fmt.Errorf("spf (seed %d, %s): %w", s.opt.Seed, t.st, err)
	}
	t.st.Block(func() bool { return false })
}

// Yield ends a step: the scheduler may run another thread.
func (t *Thread) Yield() { t.sim.yield(t, sched.Step) }

// charge prices the counts added since the last hand-off and charges
// them to t.
func (s *Sim) charge(t *Thread) {
	c := s.m.Counts()
	ps := s.costs.PS(&c)
	if ps > s.pricedPS {
		t.st.Advance(ps - s.pricedPS)
	}
	s.pricedPS = ps
}

// resume makes t's CPU the local one, for the flushes it issues.
func (s *Sim) resume(t *Thread) {
	_ = s.m.TLB().SetLocalCPU(t.st.CPU)
	c := s.m.Counts()
	s.pricedPS = s.costs.PS(&c)
}

// yield charges t, checks the invariants when asked, and hands off.
func (s *Sim) yield(t *Thread, p sched.Point) {
	s.charge(t)
	if s.opt.CheckEachStep {
		s.checkStep(t)
	}
	if s.err != nil {
		t.st.Block(func() bool { return false })
	}
	t.st.Yield(p)
	s.resume(t)
}

// block charges t and waits until cond holds; the time the thread waits
// is not work, so nothing is charged for it.
func (s *Sim) block(t *Thread, cond func() bool) bool {
	if cond() {
		return false
	}
	s.charge(t)
	if s.opt.CheckEachStep {
		s.checkStep(t)
	}
	t.st.Block(cond)
	s.resume(t)
	return true
}

// checkStep runs the machine's checker and the Sim's own invariants.
func (s *Sim) checkStep(t *Thread) {
	if s.err != nil {
		return
	}
	if err := s.m.Check(); err != nil {
		s.err = fmt.Errorf("spf (seed %d, step %d, after %s): invariants: %w", s.opt.Seed, s.s.Steps(), t.st, err)
		return
	}
	if err := s.checkWritten(); err != nil {
		s.err = fmt.Errorf("spf (seed %d, step %d, after %s): %w", s.opt.Seed, s.s.Steps(), t.st, err)
		return
	}
	if len(s.violations) > 0 {
		s.err = fmt.Errorf("spf (seed %d, step %d, after %s): %s", s.opt.Seed, s.s.Steps(), t.st, s.violations[0])
	}
}

// checkWritten verifies that every page a thread wrote still holds its
// value (no lost or torn update).
func (s *Sim) checkWritten() error {
	addrs := make([]uint64, 0, len(s.written))
	for a := range s.written {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	for _, a := range addrs {
		want := s.written[a]
		got, ok := s.mm.Content(a)
		if !ok {
			return fmt.Errorf("page %#x written with %#x is outside every VMA but was not unmapped by a writer", a, want)
		}
		if got != want {
			return fmt.Errorf("lost update: page %#x holds %#x, last written %#x", a, got, want)
		}
	}
	return nil
}

// Forget drops the written-value records of [start, end): a writer
// unmapped it.
func (s *Sim) forget(start, end uint64) {
	for a := range s.written {
		if a >= start && a < end {
			delete(s.written, a)
		}
	}
}

// violate records a broken invariant; with tlb set it also goes to the
// TLB system's validator so that Machine.Check reports it.
func (s *Sim) violate(addr uint64, toValidator bool, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	s.violations = append(s.violations, msg)
	if toValidator {
		s.m.TLB().AddViolation(tlb.Violation{Context: s.mm.Name(), VA: addr, Level: pgtable.PTE, Reason: msg})
	}
}

// Violations returns the Sim's own invariant failures so far.
func (s *Sim) Violations() []string { return append([]string(nil), s.violations...) }

// IsSegv reports whether err is an access that no mapping allows.
func IsSegv(err error) bool { return errors.Is(err, mmu.EFAULT) }

// waitFaults makes t wait until the threads have completed n faults (or
// finished), its clock moving to the time of the last fault.
func (s *Sim) waitFaults(t *Thread, n uint64) {
	if s.block(t, func() bool { return s.faults >= n || s.faultersDone() }) {
		t.st.WaitUntil(s.lastFault)
	}
}

// faultersDone reports whether every thread but the running one is done.
func (s *Sim) faultersDone() bool {
	for _, x := range s.s.Threads() {
		if !x.Done() && x != s.s.Current() && x.Name != "writer" {
			return false
		}
	}
	return true
}
