package tlb

import (
	"fmt"
	"iter"
	"math/bits"
	"strings"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// Error numbers returned by this package; errors.Is matches them against
// the same values in other packages.
const (
	EINVAL = errno.EINVAL
	EPERM  = errno.EPERM
)

// Perm is the access a cached translation grants, captured when the entry
// was filled from the page tables.
type Perm uint8

// Permission bits of a cached translation.
const (
	// PermRead: loads may use the entry.
	PermRead Perm = 1 << iota
	// PermWrite: stores may use the entry.
	PermWrite
	// PermExec: instruction fetches may use the entry.
	PermExec
	// PermUser: user mode may use the entry.
	PermUser
	// PermGlobal: the entry matches every ASID (x86 G, arm64 !nG); it is
	// dropped only by flushes of its address or of everything.
	PermGlobal
	// PermDirty: the entry's dirty bit was set when it was cached. x86 must
	// re-walk to set D on a write through a clean entry; a CPU holding a
	// dirty entry after the tables cleaned it would lose the next write's
	// dirt, so the validator reports it.
	PermDirty
)

// String returns the permissions as "rwxugd", with '-' for absent bits.
func (p Perm) String() string {
	const letters = "rwxugd"
	var b [6]byte
	for i := range b {
		if p&(1<<i) != 0 {
			b[i] = letters[i]
		} else {
			b[i] = '-'
		}
	}
	return string(b[:])
}

// Entry is one cached translation.
type Entry struct {
	// VA is the first address the entry translates, aligned to 1<<Shift.
	VA uint64
	// Shift is log2 of the bytes the entry translates (12 for 4 KiB, 21
	// for 2 MiB, 16 for an arm64 contiguous block of 16 4 KiB pages).
	Shift uint8
	// PFN is the frame that holds VA.
	PFN phys.PFN
	// Perm is the access the entry grants.
	Perm Perm
	// Level is the level of the page-table entry it was filled from.
	Level pgtable.Level
	// Cont marks an arm64 contiguous block: one entry for CONT_PTES
	// entries of the tables.
	Cont bool
}

// Size returns the bytes the entry translates.
func (e Entry) Size() uint64 { return 1 << e.Shift }

// Frame returns the frame that holds va under e, for a base page of
// 1<<pageShift bytes.
// Precondition: va lies in [e.VA, e.VA+e.Size()).
func (e Entry) Frame(va uint64, pageShift uint) phys.PFN {
	return e.PFN + phys.PFN((va-e.VA)>>pageShift)
}

// String formats the entry as "0x7f0000000000 4K pte pfn 0x12 rw-u--".
func (e Entry) String() string {
	s := fmt.Sprintf("%#x %s %s pfn %#x %s", e.VA, sizeName(e.Shift), e.Level, e.PFN, e.Perm)
	if e.Cont {
		s += " cont"
	}
	return s
}

// sizeName returns "4K", "2M", "1G" for a shift.
func sizeName(shift uint8) string {
	units := "KMGTPE"
	s := uint(shift)
	if s < 10 {
		return fmt.Sprintf("%dB", uint64(1)<<s)
	}
	u := 0
	s -= 10
	for s >= 10 && u < len(units)-1 {
		s -= 10
		u++
	}
	return fmt.Sprintf("%d%c", uint64(1)<<s, units[u])
}

// Config describes the simulated TLBs.
type Config struct {
	// CPUs is the number of CPUs, each with its own TLB and walk cache
	// (1..MaxCPUs).
	CPUs int
	// Entries and Ways shape each CPU's unified TLB: Entries/Ways sets,
	// a power of two, of Ways entries each. 0 takes the defaults
	// (DefaultEntries, DefaultWays). Every page size shares the array, as
	// in a second-level TLB.
	Entries, Ways int
	// WalkCacheEntries is the size of each CPU's fully associative cache
	// of intermediate tables; 0 takes DefaultWalkCacheEntries.
	WalkCacheEntries int
	// Policy is the architecture's flush behaviour; nil takes
	// &GenericPolicy{}.
	Policy Policy
	// KernelMeter counts the machine-wide work: flush_tlb_all and
	// flush_tlb_kernel_range. nil gives the System a meter named "kernel".
	KernelMeter *cost.Meter
}

// Defaults and limits of Config.
const (
	// DefaultEntries and DefaultWays: a second-level TLB of 1536 entries,
	// 12 ways (Intel Skylake to Ice Lake STLB).
	DefaultEntries = 1536
	DefaultWays    = 12
	// DefaultWalkCacheEntries is the walk-cache size (Intel's PDE cache
	// holds 32 entries).
	DefaultWalkCacheEntries = 32
	// MaxCPUs bounds Config.CPUs (Linux's largest NR_CPUS).
	MaxCPUs = 8192
)

// System is the machine's TLBs: one per CPU, the address spaces (contexts)
// they cache, the policy that carries out flushes, and the audit.
type System struct {
	// cpus holds the CPUs, by id.
	cpus []*CPU
	// ways is the associativity; setMask selects a set from a page
	// number.
	ways    int
	setMask uint64
	// entries and walkEntries are the per-CPU capacities.
	entries, walkEntries int
	// policy is the arch's behaviour; the hooks below are its optional
	// interfaces, resolved once by SetPolicy so that hot paths pay only
	// a nil check.
	policy      Policy
	writeHook   WriteHook
	lazyHook    LazyHook
	accessHook  AccessHook
	releaseHook ReleaseHook
	// noWriteHook is writeHook == nil, kept where page tables can read it
	// through a pointer (Context.QuietFlag) without a call per entry.
	noWriteHook bool
	// kmeter counts flush_tlb_all and flush_tlb_kernel_range.
	kmeter *cost.Meter
	// ctxs holds the live contexts by ASID (nil when the ASID is free);
	// index 0 is never used.
	ctxs []*Context
	// kernel is the first kernel context (init_mm), flushed by
	// flush_tlb_kernel_range.
	kernel *Context
	// shiftMask has bit s set when some TLB may hold an entry of shift s;
	// lookups probe these sizes, smallest first.
	shiftMask uint64
	// pageShift is the base page shift, taken from the first context's
	// page table (12 until then); shiftKnown is set once it is.
	pageShift  uint
	shiftKnown bool
	// local is the CPU executing the kernel code that calls the flush
	// API (smp_processor_id()).
	local int
	// violations accumulates break-before-make and live-store
	// violations until Violations is called.
	violations []Violation
	// req is the scratch request the Flush* calls fill, reqBusy set
	// while one is being carried out (see request).
	req     Request
	reqBusy bool
	// noAudit turns the write-time rule checks off (SetAudit); the zero
	// value keeps them on.
	noAudit bool
}

// New returns a System of cfg.CPUs CPUs with empty TLBs. It fails with
// EINVAL for a bad configuration.
func New(cfg Config) (*System, error) {
	if cfg.CPUs < 1 || cfg.CPUs > MaxCPUs {
		return nil, fmt.Errorf("tlb: %d CPUs, want 1..%d: %w", cfg.CPUs, MaxCPUs, EINVAL)
	}
	if cfg.Entries == 0 && cfg.Ways == 0 {
		cfg.Entries, cfg.Ways = DefaultEntries, DefaultWays
	}
	if cfg.Entries <= 0 || cfg.Ways <= 0 || cfg.Ways > cfg.Entries || cfg.Entries%cfg.Ways != 0 {
		return nil, fmt.Errorf("tlb: %d entries in %d ways: %w", cfg.Entries, cfg.Ways, EINVAL)
	}
	sets := cfg.Entries / cfg.Ways
	if sets&(sets-1) != 0 {
		return nil, fmt.Errorf("tlb: %d entries / %d ways = %d sets, not a power of two: %w", cfg.Entries, cfg.Ways, sets, EINVAL)
	}
	if cfg.WalkCacheEntries == 0 {
		cfg.WalkCacheEntries = DefaultWalkCacheEntries
	}
	if cfg.WalkCacheEntries < 0 || cfg.WalkCacheEntries > 1<<16 {
		return nil, fmt.Errorf("tlb: %d walk-cache entries: %w", cfg.WalkCacheEntries, EINVAL)
	}
	s := &System{
		ways:        cfg.Ways,
		setMask:     uint64(sets - 1),
		entries:     cfg.Entries,
		walkEntries: cfg.WalkCacheEntries,
		kmeter:      cfg.KernelMeter,
		ctxs:        make([]*Context, 1, 8),
		pageShift:   12,
	}
	if s.kmeter == nil {
		s.kmeter = &cost.Meter{Name: "kernel"}
	}
	s.cpus = make([]*CPU, cfg.CPUs)
	for i := range s.cpus {
		s.cpus[i] = &CPU{sys: s, id: i, gen: 1, globalGen: 1, asids: make([]asidState, 1, 8)}
	}
	p := cfg.Policy
	if p == nil {
		p = &GenericPolicy{}
	}
	s.SetPolicy(p)
	return s, nil
}

// CPUs returns the number of CPUs.
func (s *System) CPUs() int { return len(s.cpus) }

// CPU returns CPU i, or nil when there is no such CPU.
func (s *System) CPU(i int) *CPU {
	if i < 0 || i >= len(s.cpus) {
		return nil
	}
	return s.cpus[i]
}

// SetLocalCPU names the CPU that executes the kernel code calling the
// flush API from now on (smp_processor_id() of the caller): a flush
// counts IPIs to the other CPUs. It fails with EINVAL for a CPU that does
// not exist. The default is CPU 0.
func (s *System) SetLocalCPU(i int) error {
	if i < 0 || i >= len(s.cpus) {
		return fmt.Errorf("tlb: local CPU %d of %d: %w", i, len(s.cpus), EINVAL)
	}
	s.local = i
	return nil
}

// LocalCPU returns the CPU that executes the flush API's caller.
func (s *System) LocalCPU() *CPU { return s.cpus[s.local] }

// Policy returns the installed policy.
func (s *System) Policy() Policy { return s.policy }

// SetPolicy installs p (nil installs &GenericPolicy{}). Every cached
// entry and walk-cache entry is dropped first, counting nothing, so the
// new policy starts from empty TLBs; then p.Attach runs.
func (s *System) SetPolicy(p Policy) {
	if p == nil {
		p = &GenericPolicy{}
	}
	for _, c := range s.cpus {
		c.dropAll()
	}
	s.policy = p
	s.writeHook, _ = p.(WriteHook)
	s.noWriteHook = s.writeHook == nil
	s.lazyHook, _ = p.(LazyHook)
	s.accessHook, _ = p.(AccessHook)
	s.releaseHook, _ = p.(ReleaseHook)
	p.Attach(s)
}

// KernelMeter returns the meter of machine-wide work.
func (s *System) KernelMeter() *cost.Meter { return s.kmeter }

// KernelContext returns the kernel context (init_mm), or nil if none was
// created.
func (s *System) KernelContext() *Context { return s.kernel }

// PageShift returns the base page shift (from the first context's page
// table; 12 before any).
func (s *System) PageShift() uint { return s.pageShift }

// Context returns the live context tagged asid, or nil.
func (s *System) Context(asid uint32) *Context {
	if int(asid) < len(s.ctxs) {
		return s.ctxs[asid]
	}
	return nil
}

// Contexts returns the live contexts in ASID order.
func (s *System) Contexts() []*Context {
	var out []*Context
	for _, c := range s.ctxs {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Context is an address space as the TLBs see it: Linux's mm_struct with
// its context (ASID, tlb_gen) and mm_cpumask.
type Context struct {
	// name names the context in traces and reports.
	name string
	// sys is the System the context belongs to.
	sys *System
	// asid tags the context's entries in every TLB; unique among live
	// contexts, reused after ReleaseContext.
	asid uint32
	// pt is the page table the validator audits the entries against.
	pt *pgtable.PageTable
	// meter counts the context's TLB work (lookups, fills, its flushes).
	meter *cost.Meter
	// kernel marks init_mm.
	kernel bool
	// mask is mm_cpumask: bit i set while CPU i runs the context.
	mask []uint64
	// nmask counts the bits set in mask.
	nmask int
	// tlbGen is the mm's tlb_gen: bumped by every flush of the mm, so a
	// CPU can tell whether its cached entries are behind.
	tlbGen uint64
	// released is set by ReleaseContext.
	released bool
	// span holds, per level, log2 of the bytes mapped by the table that
	// holds that level's entries: the walk-cache tag granule.
	span [pgtable.NumLevels]uint8
	// state is the policy's per-context state.
	state any
}

// NewContext creates the context of an address space whose tables are pt,
// counting its TLB work on m (nil: a new meter named name). It installs
// the context as pt's observer, so that the policy sees every entry write.
// A kernel context (init_mm) is the one flush_tlb_kernel_range flushes.
// A nil pt gives a context with no tables: the validator reports every
// entry cached for it.
func (s *System) NewContext(name string, pt *pgtable.PageTable, m *cost.Meter, kernel bool) *Context {
	if m == nil {
		m = &cost.Meter{Name: name}
	}
	ctx := &Context{name: name, sys: s, pt: pt, meter: m, kernel: kernel,
		mask: make([]uint64, (len(s.cpus)+63)/64), tlbGen: 1}
	asid := 0
	for i := 1; i < len(s.ctxs); i++ {
		if s.ctxs[i] == nil {
			asid = i
			break
		}
	}
	if asid == 0 {
		asid = len(s.ctxs)
		s.ctxs = append(s.ctxs, nil)
		for _, c := range s.cpus {
			c.asids = append(c.asids, asidState{gen: 1, walkGen: 1})
		}
	}
	ctx.asid = uint32(asid)
	s.ctxs[asid] = ctx
	if pt != nil {
		geo := pt.Geometry()
		if !s.shiftKnown {
			s.pageShift, s.shiftKnown = geo.PageShift, true
		}
		for l := pgtable.Level(0); l < pgtable.NumLevels; l++ {
			for _, tg := range geo.Tables {
				if tg.Level >= l {
					ctx.span[l] = uint8(tg.Shift) + uint8(bits.TrailingZeros(uint(tg.Entries)))
					break
				}
			}
		}
		pt.SetObserver(ctx)
	}
	if kernel && s.kernel == nil {
		s.kernel = ctx
	}
	return ctx
}

// ReleaseContext tears the context down (the mm is freed): CPUs still
// running it switch to nothing, its entries and walk-cache entries are
// dropped from every TLB (counting nothing: no flush is called), its ASID
// becomes free for reuse, and it stops observing its page table.
func (s *System) ReleaseContext(ctx *Context) {
	if ctx == nil || ctx.sys != s || ctx.released {
		return
	}
	for _, c := range s.cpus {
		if c.current == ctx {
			c.Switch(nil)
		}
	}
	if s.releaseHook != nil {
		s.releaseHook.Released(s, ctx)
	}
	for _, c := range s.cpus {
		c.forget(ctx.asid)
	}
	s.ctxs[ctx.asid] = nil
	if s.kernel == ctx {
		s.kernel = nil
	}
	ctx.released = true
	if ctx.pt != nil {
		ctx.pt.SetObserver(nil)
	}
}

// Name returns the context's name.
func (c *Context) Name() string { return c.name }

// ASID returns the tag of the context's entries (unique among live
// contexts; 0 is never used).
func (c *Context) ASID() uint32 { return c.asid }

// PageTable returns the context's page table.
func (c *Context) PageTable() *pgtable.PageTable { return c.pt }

// Meter returns the meter the context's TLB work is counted on.
func (c *Context) Meter() *cost.Meter { return c.meter }

// Kernel reports whether this is the kernel context (init_mm).
func (c *Context) Kernel() bool { return c.kernel }

// Released reports whether ReleaseContext tore the context down.
func (c *Context) Released() bool { return c.released }

// TLBGen returns the mm's tlb_gen.
func (c *Context) TLBGen() uint64 { return c.tlbGen }

// BumpTLBGen increments tlb_gen and returns the new value
// (inc_mm_tlb_gen): policies call it for every flush of the mm.
func (c *Context) BumpTLBGen() uint64 {
	c.tlbGen++
	return c.tlbGen
}

// PolicyState returns the policy's per-context state (nil until set).
func (c *Context) PolicyState() any { return c.state }

// SetPolicyState stores the policy's per-context state.
func (c *Context) SetPolicyState(v any) { c.state = v }

// SpanShift returns log2 of the bytes mapped by one table holding level
// l's entries: the granule of walk-cache entries of level l.
func (c *Context) SpanShift(l pgtable.Level) uint {
	if l >= pgtable.NumLevels {
		return 64
	}
	return uint(c.span[l])
}

// CPUMask returns the ids of the CPUs in mm_cpumask, sorted.
func (c *Context) CPUMask() []int {
	out := make([]int, 0, c.nmask)
	for i := range c.EachCPU() {
		out = append(out, i)
	}
	return out
}

// InMask reports whether CPU i is in mm_cpumask.
func (c *Context) InMask(i int) bool {
	return i >= 0 && i/64 < len(c.mask) && c.mask[i/64]&(1<<(i%64)) != 0
}

// MaskWeight returns the number of CPUs in mm_cpumask.
func (c *Context) MaskWeight() int { return c.nmask }

// EachCPU yields the ids of the CPUs in mm_cpumask in ascending order.
func (c *Context) EachCPU() iter.Seq[int] {
	return func(yield func(int) bool) {
		for w, word := range c.mask {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &= word - 1
				if !yield(w*64 + b) {
					return
				}
			}
		}
	}
}

// MaskWords returns mm_cpumask as words: bit b of word w is CPU w*64+b.
// It is the mask itself, for loops on the flush path that visit the CPUs
// without an iterator's closure (as for_each_cpu does); callers must not
// change it, nor keep it past a switch_mm.
func (c *Context) MaskWords() []uint64 { return c.mask }

// setMask adds or removes CPU i from mm_cpumask.
func (c *Context) setMask(i int, on bool) {
	w, b := i/64, uint64(1)<<(i%64)
	was := c.mask[w]&b != 0
	switch {
	case on && !was:
		c.mask[w] |= b
		c.nmask++
	case !on && was:
		c.mask[w] &^= b
		c.nmask--
	}
}

// String returns the context's name.
func (c *Context) String() string { return c.name }

// Written implements pgtable.Observer: it hands every entry write of the
// context's table to the policy (s390 purges at the exchange, sparc64
// batches the address, arm64 checks break-before-make).
func (c *Context) Written(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind) {
	if h := c.sys.writeHook; h != nil && !c.released {
		h.Written(c.sys, c, addr, p, old, new, kind)
	}
}

// LazyMMU implements pgtable.LazyObserver: it tells the policy that the
// table entered or left a lazy-MMU section (sparc64 flushes its batch
// when one ends).
func (c *Context) LazyMMU(pt *pgtable.PageTable, enter bool) {
	if h := c.sys.lazyHook; h != nil && !c.released {
		h.LazyMMU(c.sys, c, enter)
	}
}

// CPU is one simulated CPU: its TLB, its walk cache and the context it
// runs.
type CPU struct {
	// sys is the System the CPU belongs to.
	sys *System
	// id is the CPU number.
	id int
	// current is the context the CPU runs (loaded_mm), nil for none.
	current *Context
	// tlb holds the TLB entries, set by set (ways consecutive slots per
	// set); nil until the first insert, so idle CPUs cost no memory.
	tlb []slot
	// walk holds the walk-cache entries; nil until the first insert.
	walk []walkSlot
	// asids holds the per-ASID flush generations and live counts.
	asids []asidState
	// gen is the CPU-wide generation: an entry inserted under another gen
	// is dead. Bumping it flushes everything in O(1).
	gen uint64
	// globalGen is the generation of global entries: bumping it drops
	// every global entry in O(1).
	globalGen uint64
	// live counts the live TLB entries; liveGlobal those that are global.
	live, liveGlobal int
	// tick orders uses for LRU replacement: incremented on every hit and
	// fill, never read from a clock.
	tick uint64
	// state is the policy's per-CPU state.
	state any
}

// ID returns the CPU number.
func (c *CPU) ID() int { return c.id }

// Current returns the context the CPU runs, or nil.
func (c *CPU) Current() *Context { return c.current }

// PolicyState returns the policy's per-CPU state (nil until set).
func (c *CPU) PolicyState() any { return c.state }

// SetPolicyState stores the policy's per-CPU state.
func (c *CPU) SetPolicyState(v any) { c.state = v }

// Live returns the number of live TLB entries (walk cache excluded).
func (c *CPU) Live() int { return c.live }

// LiveFor returns the number of live non-global TLB entries of ctx.
func (c *CPU) LiveFor(ctx *Context) int {
	if ctx == nil || int(ctx.asid) >= len(c.asids) {
		return 0
	}
	return int(*c.asidLive(ctx.asid))
}

// Switch is switch_mm: the CPU runs ctx from now on (nil: nothing, as an
// idle CPU). The CPU leaves the old context's mm_cpumask and joins ctx's;
// then the policy does the arch's work (x86 picks a PCID slot and flushes
// it if its tlb_gen is behind). Switching to a released context switches
// to nothing.
func (c *CPU) Switch(ctx *Context) {
	if ctx != nil && (ctx.released || ctx.sys != c.sys) {
		ctx = nil
	}
	prev := c.current
	if prev != ctx {
		if prev != nil {
			prev.setMask(c.id, false)
		}
		if ctx != nil {
			ctx.setMask(c.id, true)
		}
		c.current = ctx
	}
	c.sys.policy.Switch(c.sys, c, prev, ctx)
}

// String returns "cpu3".
func (c *CPU) String() string { return fmt.Sprintf("cpu%d", c.id) }

// joinReasons joins non-empty reasons with ", ".
func joinReasons(rs []string) string { return strings.Join(rs, ", ") }
