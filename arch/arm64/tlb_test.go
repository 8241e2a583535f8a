package arm64_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

const (
	userVA   = 0x7f00_0000_0000
	hugeVA   = 0x7f00_4000_0000 // the next 1 GiB: another PMD table
	kernelVA = arm64.PageOffset + 0x1_0000_0000
	rw       = pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared
)

// machine is an arm64 TLB system with the arm64 policy, as the
// descriptor builds it.
type machine struct {
	t      testing.TB
	a      *arch.Arch
	mem    *phys.Memory
	sys    *tlb.System
	policy *arm64.TLBPolicy
	km     *cost.Meter
	page   uint64
}

func newMachine(t testing.TB, gr arm64.Granule, cpus int, plat arch.Platform) *machine {
	t.Helper()
	a := arm64.New(gr)
	mem, err := phys.New(phys.Config{Size: 4 << 30, PageShift: a.Geometry.PageShift, MaxOrder: 18})
	if err != nil {
		t.Fatal(err)
	}
	plat.CPUs = cpus
	pol, ok := a.NewTLBPolicy(plat).(*arm64.TLBPolicy)
	if !ok {
		t.Fatal("arm64 does not build an arm64 TLB policy")
	}
	km := &cost.Meter{Name: "kernel"}
	sys, err := tlb.New(tlb.Config{CPUs: cpus, Policy: pol, KernelMeter: km})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, a: a, mem: mem, sys: sys, policy: pol, km: km, page: a.PageSize()}
}

// mm creates an address space.
func (m *machine) mm(name string, kernel bool) (*pgtable.PageTable, *tlb.Context) {
	m.t.Helper()
	space := m.a.User
	if kernel {
		space = m.a.Kernel
	}
	meter := &cost.Meter{Name: name}
	pt, err := pgtable.New(pgtable.Config{Geometry: &m.a.Geometry, Format: &m.a.Format, Memory: m.mem,
		Meter: meter, Space: space, Kernel: kernel})
	if err != nil {
		m.t.Fatal(err)
	}
	return pt, m.sys.NewContext(name, pt, meter, kernel)
}

// fill caches the translation of va on c as the MMU does after a walk,
// with the tables below the root in the walk cache. Kernel entries are
// global (!nG).
func fill(t testing.TB, c *tlb.CPU, ctx *tlb.Context, va uint64) {
	t.Helper()
	pt := ctx.PageTable()
	tr, ok := pt.Lookup(va)
	if !ok {
		t.Fatalf("fill %#x: not mapped", va)
	}
	f := pt.Format()
	perm := tlb.PermRead | tlb.PermUser
	if f.Write(tr.Entry, tr.Level) {
		perm |= tlb.PermWrite
	}
	if pt.Kernel() {
		perm = tlb.PermRead | tlb.PermWrite | tlb.PermGlobal
	}
	shift := uint8(0)
	for s := tr.Size; s > 1; s >>= 1 {
		shift++
	}
	ps := pt.Geometry().PageShift
	base := va &^ (tr.Size - 1)
	c.Insert(ctx, tlb.Entry{VA: base, Shift: shift, PFN: tr.PFN - phys.PFN((va-base)>>ps), Perm: perm, Level: tr.Level,
		Cont: f.Cont(tr.Entry, tr.Level)})
	for l := pt.RootLevel() + 1; l <= tr.Level; l++ {
		c.WalkCacheInsert(ctx, va, l, tlb.TableFor(pt, va, l))
	}
}

func mustClean(t testing.TB, sys *tlb.System) {
	t.Helper()
	if s := sys.Validate(); len(s) != 0 {
		t.Fatalf("validator reports stale entries: %v", s)
	}
	if v := sys.Violations(); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
}

// world: 2 CPUs running mm "user"; 40 user pages and 2 huge 2M pages
// cached on both (4 walk-cache entries each: the PUD table, the two PMD
// tables and the PTE table), and 40 global kernel pages; meters reset.
type world struct {
	*machine
	pt, kpt   *pgtable.PageTable
	ctx, kctx *tlb.Context
}

const (
	userCached   = 42 // 40 pages + 2 blocks
	kernelCached = 40
	walkCached   = 4
	pmdSize      = 2 << 20
)

func newWorld(t *testing.T, plat arch.Platform) *world {
	m := newMachine(t, arm64.Granule4K, 2, plat)
	w := &world{machine: m}
	w.kpt, w.kctx = m.mm("kernel", true)
	w.pt, w.ctx = m.mm("user", false)
	if err := w.pt.Map(userVA, 40*m.page, 0x1000, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	if err := w.pt.Map(hugeVA, 2*pmdSize, 0x2000, pgtable.MapOpts{Prot: rw, Huge: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.kpt.Map(kernelVA, 40*m.page, 0x3000, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < 2; cpu++ {
		c := m.sys.CPU(cpu)
		c.Switch(w.ctx)
		for i := uint64(0); i < 40; i++ {
			fill(t, c, w.ctx, userVA+i*m.page)
			fill(t, c, w.kctx, kernelVA+i*m.page)
		}
		fill(t, c, w.ctx, hugeVA)
		fill(t, c, w.ctx, hugeVA+pmdSize)
		if c.WalkCached(w.ctx) != walkCached || c.LiveFor(w.ctx) != userCached {
			t.Fatalf("cpu%d: setup cached %d entries, %d walk", cpu, c.LiveFor(w.ctx), c.WalkCached(w.ctx))
		}
	}
	w.ctx.Meter().Reset()
	m.km.Reset()
	mustClean(t, m.sys)
	return w
}

// flushWant is what a flush must have cost and left, per CPU.
type flushWant struct {
	call                           cost.Event
	tlbi, syncs, dropped           uint64
	userLeft, kernelLeft, walkLeft int
	kernelMeter                    bool
}

// checkFlush compares the meters and TLBs after a flush with want.
func checkFlush(t *testing.T, w *world, want flushWant) {
	t.Helper()
	m := w.ctx.Meter()
	if want.kernelMeter {
		m = w.km
	}
	if n := m.Count(want.call); n != 1 {
		t.Errorf("%s counted %d times", want.call, n)
	}
	got := flushWant{call: want.call, kernelMeter: want.kernelMeter,
		tlbi: m.Count(cost.TLBIOps), syncs: m.Count(cost.TLBSyncs), dropped: m.Count(cost.TLBInvalidated)}
	for _, mt := range []*cost.Meter{w.ctx.Meter(), w.km} {
		if n := mt.Count(cost.TLBIPIs) + mt.Count(cost.Invlpg) + mt.Count(cost.LocalFullFlushes); n != 0 {
			t.Errorf("%s: %d IPIs, INVLPGs or local flushes on a TLBI broadcast machine", mt.Name, n)
		}
	}
	for cpu := 0; cpu < 2; cpu++ {
		c := w.sys.CPU(cpu)
		got.userLeft = c.LiveFor(w.ctx)
		got.kernelLeft = c.Live() - c.LiveFor(w.ctx)
		got.walkLeft = c.WalkCached(w.ctx)
		if got != want {
			t.Errorf("cpu%d:\n got %+v\nwant %+v", cpu, got, want)
		}
	}
	mustClean(t, w.sys)
}

// TestArm64FlushKinds: each flush call invalidates exactly what Linux's
// arm64 code does, on every CPU, with the TLBIs and DSBs it issues; the
// 512-stride limit (MAX_DVM_OPS at 4K) turns a range into flush_tlb_mm.
func TestArm64FlushKinds(t *testing.T) {
	const u, k, wc = userCached, kernelCached, walkCached
	cases := []struct {
		name  string
		flush func(w *world)
		want  flushWant
	}{
		{"flush_tlb_page: TLBI VALE1IS keeps the walk caches",
			func(w *world) { w.sys.FlushTLBPage(w.ctx, userVA+5*w.page) },
			flushWant{call: cost.TLBFlushPage, tlbi: 1, syncs: 1, dropped: 2, userLeft: u - 1, kernelLeft: k, walkLeft: wc}},
		{"flush_tlb_range of 33 pages: 33 TLBI VAE1IS, walk caches of the range dropped",
			func(w *world) { w.sys.FlushTLBRange(w.ctx, userVA, userVA+33*w.page) },
			flushWant{call: cost.TLBFlushRange, tlbi: 33, syncs: 1, dropped: 66, userLeft: u - 33, kernelLeft: k, walkLeft: 1}},
		{"511 strides: 511 TLBIs",
			func(w *world) { w.sys.FlushTLBRange(w.ctx, userVA, userVA+511*w.page) },
			flushWant{call: cost.TLBFlushRange, tlbi: 511, syncs: 1, dropped: 80, userLeft: u - 40, kernelLeft: k, walkLeft: 1}},
		{"512 strides: MAX_DVM_OPS, flush_tlb_mm and two DSBs",
			func(w *world) { w.sys.FlushTLBRange(w.ctx, userVA, userVA+512*w.page) },
			flushWant{call: cost.TLBFlushRange, tlbi: 1, syncs: 2, dropped: 2 * u, kernelLeft: k}},
		{"513 strides: flush_tlb_mm",
			func(w *world) { w.sys.FlushTLBRange(w.ctx, userVA, userVA+513*w.page) },
			flushWant{call: cost.TLBFlushRange, tlbi: 1, syncs: 2, dropped: 2 * u, kernelLeft: k}},
		{"unaligned range rounds out to the stride",
			func(w *world) { w.sys.FlushTLBRange(w.ctx, userVA+100, userVA+2*w.page+1) },
			flushWant{call: cost.TLBFlushRange, tlbi: 3, syncs: 1, dropped: 6, userLeft: u - 3, kernelLeft: k, walkLeft: 1}},
		{"PMD stride: one TLBI per 2M block",
			func(w *world) { w.sys.FlushTLBMMRange(w.ctx, hugeVA, hugeVA+2*pmdSize, 21, false) },
			flushWant{call: cost.TLBFlushRange, tlbi: 2, syncs: 1, dropped: 4, userLeft: u - 2, kernelLeft: k, walkLeft: 2}},
		{"flush_tlb_mm: TLBI ASIDE1IS",
			func(w *world) { w.sys.FlushTLBMM(w.ctx) },
			flushWant{call: cost.TLBFlushMM, tlbi: 1, syncs: 1, dropped: 2 * u, kernelLeft: k}},
		{"kernel range of 33 pages: 33 TLBI VAAE1IS",
			func(w *world) { w.sys.FlushTLBKernelRange(kernelVA, kernelVA+33*w.page) },
			flushWant{call: cost.TLBFlushKernel, tlbi: 33, syncs: 1, dropped: 66, userLeft: u, kernelLeft: k - 33, walkLeft: wc, kernelMeter: true}},
		{"kernel range of 512 pages: flush_tlb_all",
			func(w *world) { w.sys.FlushTLBKernelRange(kernelVA, kernelVA+512*w.page) },
			flushWant{call: cost.TLBFlushKernel, tlbi: 1, syncs: 1, dropped: 2 * (u + k), kernelMeter: true}},
		{"flush_tlb_all: TLBI VMALLE1IS",
			func(w *world) { w.sys.FlushTLBAll() },
			flushWant{call: cost.TLBFlushAll, tlbi: 1, syncs: 1, dropped: 2 * (u + k), kernelMeter: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, arch.Platform{})
			c.flush(w)
			checkFlush(t, w, c.want)
		})
	}
}

// TestArm64RangeTLBI: with FEAT_TLBIRANGE, __flush_tlb_range_op issues
// range ops from scale 3 down to 0 and a last op for an odd page; the
// 512-stride limit no longer applies, MAX_TLBI_RANGE_PAGES does.
func TestArm64RangeTLBI(t *testing.T) {
	cases := []struct {
		pages      uint64
		tlbi, sync uint64
	}{
		{1, 1, 1},          // non-range op
		{2, 1, 1},          // scale 0, NUM 0
		{3, 2, 1},          // 2 + odd page
		{33, 2, 1},         // scale 0 NUM 15 (32 pages) + odd page
		{64, 1, 1},         // scale 0 NUM 31
		{100, 2, 1},        // scale 1 NUM 0 (64) + scale 0 NUM 17 (36)
		{511, 3, 1},        // scale 1 NUM 6 (448) + scale 0 NUM 30 (62) + odd page
		{512, 1, 1},        // scale 1 NUM 7: no fallback with range ops
		{513, 2, 1},        // 512 + odd page
		{2048, 1, 1},       // scale 1 NUM 31
		{2049, 2, 1},       // + odd page
		{65536, 1, 1},      // scale 2 NUM 31
		{32 << 16, 1, 1},   // MAX_TLBI_RANGE_PAGES: scale 3 NUM 31
		{32<<16 + 1, 1, 2}, // above it: flush_tlb_mm
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d pages", c.pages), func(t *testing.T) {
			w := newWorld(t, arch.Platform{RangeTLBI: true})
			w.sys.FlushTLBRange(w.ctx, userVA, userVA+c.pages*w.page)
			m := w.ctx.Meter()
			if got := m.Count(cost.TLBIOps); got != c.tlbi {
				t.Errorf("tlbi_ops %d, want %d", got, c.tlbi)
			}
			if got := m.Count(cost.TLBSyncs); got != c.sync {
				t.Errorf("tlb_syncs %d, want %d", got, c.sync)
			}
			if got := w.policy.RangeOps(c.pages, 12); c.sync == 1 && got != c.tlbi {
				t.Errorf("RangeOps %d, want %d", got, c.tlbi)
			}
			// Every cached page lies in the range (the huge blocks from
			// 256 Ki pages on).
			wantLeft := userCached - min(int(c.pages), 40)
			if c.pages*w.page > hugeVA-userVA {
				wantLeft = userCached - 40 - int(min((c.pages*w.page-(hugeVA-userVA)+pmdSize-1)/pmdSize, 2))
			}
			if c.sync == 2 {
				wantLeft = 0
			}
			for cpu := 0; cpu < 2; cpu++ {
				if got := w.sys.CPU(cpu).LiveFor(w.ctx); got != wantLeft {
					t.Errorf("cpu%d: %d user entries left, want %d", cpu, got, wantLeft)
				}
			}
			mustClean(t, w.sys)
		})
	}
}

// TestArm64RangeOpsMatchLinuxLoop compares RangeOps with a literal
// transcription of __flush_tlb_range_op's loop for every page count up
// to 5000 and for page and PMD strides.
func TestArm64RangeOpsMatchLinuxLoop(t *testing.T) {
	linux := func(pages uint64, stridePages uint64) uint64 {
		ops, scale := uint64(0), 3
		for pages > 0 {
			if pages == 1 {
				ops++
				pages -= stridePages
				continue
			}
			p := min(pages, uint64(31+1)<<(5*scale+1))
			num := int64(p>>(5*scale+1)) - 1
			if num >= 0 {
				ops++
				pages -= uint64(num+1) << (5*scale + 1)
			}
			scale--
		}
		return ops
	}
	p := arm64.NewTLBPolicy(arch.Platform{RangeTLBI: true}, 12)
	for pages := uint64(1); pages <= 5000; pages++ {
		if got, want := p.RangeOps(pages, 12), linux(pages, 1); got != want {
			t.Fatalf("%d pages: %d ops, Linux's loop gives %d", pages, got, want)
		}
	}
	for blocks := uint64(1); blocks <= 300; blocks++ {
		if got, want := p.RangeOps(blocks*512, 21), linux(blocks*512, 512); got != want {
			t.Fatalf("%d PMD blocks: %d ops, Linux's loop gives %d", blocks, got, want)
		}
	}
	plain := arm64.NewTLBPolicy(arch.Platform{}, 12)
	if got := plain.RangeOps(4*512, 21); got != 4 {
		t.Fatalf("without range TLBI, 4 PMD strides: %d ops", got)
	}
}

// TestArm64Granules: MAX_DVM_OPS is PTRS_PER_PTE of the granule: 2048
// strides at 16K and 8192 at 64K; one stride less is flushed by VA.
func TestArm64Granules(t *testing.T) {
	for _, c := range []struct {
		gr     arm64.Granule
		maxOps uint64
	}{
		{arm64.Granule4K, 512},
		{arm64.Granule16K, 2048},
		{arm64.Granule64K, 8192},
	} {
		for _, strides := range []uint64{c.maxOps - 1, c.maxOps} {
			t.Run(fmt.Sprintf("%d/%d strides", strides, c.maxOps), func(t *testing.T) {
				m := newMachine(t, c.gr, 1, arch.Platform{})
				if got := m.policy.MaxDVMOps(); got != c.maxOps {
					t.Fatalf("MAX_DVM_OPS %d, want %d", got, c.maxOps)
				}
				pt, ctx := m.mm("user", false)
				if err := pt.Map(userVA, 4*m.page, 0x100, pgtable.MapOpts{Prot: rw}); err != nil {
					t.Fatal(err)
				}
				cpu := m.sys.CPU(0)
				cpu.Switch(ctx)
				for i := uint64(0); i < 4; i++ {
					fill(t, cpu, ctx, userVA+i*m.page)
				}
				ctx.Meter().Reset()
				m.sys.FlushTLBRange(ctx, userVA, userVA+strides*m.page)
				wantTLBI, wantSync := strides, uint64(1)
				if strides >= c.maxOps {
					wantTLBI, wantSync = 1, 2
				}
				mt := ctx.Meter()
				if mt.Count(cost.TLBIOps) != wantTLBI || mt.Count(cost.TLBSyncs) != wantSync || mt.Count(cost.TLBInvalidated) != 4 {
					t.Fatalf("tlbi %d syncs %d invalidated %d, want %d %d 4",
						mt.Count(cost.TLBIOps), mt.Count(cost.TLBSyncs), mt.Count(cost.TLBInvalidated), wantTLBI, wantSync)
				}
				mustClean(t, m.sys)
			})
		}
	}
}

// TestArm64NoIPIs: TLBI is broadcast by the hardware: a flush of an mm
// drops its entries on every CPU, those outside mm_cpumask included, and
// sends no IPI, whichever CPU issues it.
func TestArm64NoIPIs(t *testing.T) {
	m := newMachine(t, arm64.Granule4K, 16, arch.Platform{Virtualized: true})
	ptA, a := m.mm("a", false)
	_, b := m.mm("b", false)
	if err := ptA.Map(userVA, 4*m.page, 0x100, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < 16; cpu++ {
		c := m.sys.CPU(cpu)
		c.Switch(a)
		fill(t, c, a, userVA)
		fill(t, c, a, userVA+m.page)
		if cpu%4 != 0 {
			c.Switch(b) // keeps a's entries, leaves a's mm_cpumask
		}
	}
	if a.MaskWeight() != 4 {
		t.Fatalf("mask weight %d", a.MaskWeight())
	}
	if err := m.sys.SetLocalCPU(7); err != nil {
		t.Fatal(err)
	}
	a.Meter().Reset()
	m.sys.FlushTLBRange(a, userVA, userVA+4*m.page)
	mt := a.Meter()
	if mt.Count(cost.TLBIPIs) != 0 || mt.Count(cost.IPIVMExits) != 0 {
		t.Fatalf("%d IPIs, %d VM exits", mt.Count(cost.TLBIPIs), mt.Count(cost.IPIVMExits))
	}
	if mt.Count(cost.TLBIOps) != 4 || mt.Count(cost.TLBSyncs) != 1 || mt.Count(cost.TLBInvalidated) != 32 {
		t.Fatalf("tlbi %d syncs %d invalidated %d, want 4 1 32", mt.Count(cost.TLBIOps), mt.Count(cost.TLBSyncs), mt.Count(cost.TLBInvalidated))
	}
	for cpu := 0; cpu < 16; cpu++ {
		if n := m.sys.CPU(cpu).LiveFor(a); n != 0 {
			t.Fatalf("cpu%d keeps %d entries", cpu, n)
		}
	}
	mustClean(t, m.sys)
}

// TestArm64BreakBeforeMake: the validator flags a live PTE whose output
// address changes by a plain store, and a contiguous-bit change without
// BBML2; the Linux sequence (invalid entry, TLBI, new entry) is clean,
// and BBML2 allows the contiguous-bit change.
func TestArm64BreakBeforeMake(t *testing.T) {
	for _, c := range []struct {
		name   string
		bbml2  bool
		change func(m *machine, pt *pgtable.PageTable, ctx *tlb.Context, p pgtable.Ptr)
		want   string // violation reason fragment; "" for none
	}{
		{"plain store of a new pfn over a live PTE", false,
			func(m *machine, pt *pgtable.PageTable, ctx *tlb.Context, p pgtable.Ptr) {
				pt.RawSet(userVA, p, pt.Format().SetPFN(p.Peek(), pgtable.PTE, 0x999))
			}, "output address changed from pfn 0x100 to 0x999"},
		{"invalid step without a TLBI", false,
			func(m *machine, pt *pgtable.PageTable, ctx *tlb.Context, p pgtable.Ptr) {
				old := p.Peek()
				pt.RawClear(userVA, p)
				pt.RawSet(userVA, p, pt.Format().SetPFN(old, pgtable.PTE, 0x999))
			}, "cpu0 still caches pfn 0x100"},
		{"invalid, flush_tlb_page, new entry", false,
			func(m *machine, pt *pgtable.PageTable, ctx *tlb.Context, p pgtable.Ptr) {
				old := p.Peek()
				pt.RawClear(userVA, p)
				m.sys.FlushTLBPage(ctx, userVA)
				pt.RawSet(userVA, p, pt.Format().SetPFN(old, pgtable.PTE, 0x999))
			}, ""},
		{"write-protect a live entry", false,
			func(m *machine, pt *pgtable.PageTable, ctx *tlb.Context, p pgtable.Ptr) {
				pt.RawSet(userVA, p, pt.Format().Wrprotect(p.Peek(), pgtable.PTE))
			}, ""},
		{"contiguous bit set on a live entry", false,
			func(m *machine, pt *pgtable.PageTable, ctx *tlb.Context, p pgtable.Ptr) {
				pt.RawSet(userVA, p, pt.Format().MkCont(p.Peek()))
			}, "contiguous bit changed"},
		{"contiguous bit set on a live entry with BBML2", true,
			func(m *machine, pt *pgtable.PageTable, ctx *tlb.Context, p pgtable.Ptr) {
				pt.RawSet(userVA, p, pt.Format().MkCont(p.Peek()))
			}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t, arm64.Granule4K, 2, arch.Platform{BBML2: c.bbml2})
			pt, ctx := m.mm("user", false)
			if err := pt.Map(userVA, 16*m.page, 0x100, pgtable.MapOpts{Prot: rw}); err != nil {
				t.Fatal(err)
			}
			for cpu := 0; cpu < 2; cpu++ {
				m.sys.CPU(cpu).Switch(ctx)
				fill(t, m.sys.CPU(cpu), ctx, userVA)
			}
			p, _ := pt.Walk(userVA, pgtable.PTE)
			c.change(m, pt, ctx, p)
			v := m.sys.Violations()
			switch {
			case c.want == "" && len(v) != 0:
				t.Fatalf("flagged: %v", v)
			case c.want != "" && (len(v) != 1 || !strings.Contains(v[0].Reason, c.want)):
				t.Fatalf("violations %v, want one with %q", v, c.want)
			}
		})
	}
}

// TestArm64Gather: tlb_flush passes last_level = !freed_tables: PTEs
// cleared alone keep the walk caches (TLBI VALE1IS); freed tables drop
// them (VAE1IS); a full-mm gather flushes only when it freed tables.
func TestArm64Gather(t *testing.T) {
	w := newWorld(t, arch.Platform{})
	mc := w.ctx.Meter()
	g := w.sys.NewGather(w.ctx, false)
	for i := uint64(0); i < 3; i++ {
		p, _ := w.pt.Walk(userVA+i*w.page, pgtable.PTE)
		w.pt.PTEClear(userVA+i*w.page, p)
		g.AddRange(userVA+i*w.page, userVA+(i+1)*w.page, 12)
	}
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	if mc.Count(cost.TLBFlushRange) != 1 || mc.Count(cost.TLBIOps) != 3 || mc.Count(cost.TLBInvalidated) != 6 {
		t.Fatalf("leaf gather: range %d tlbi %d invalidated %d", mc.Count(cost.TLBFlushRange), mc.Count(cost.TLBIOps), mc.Count(cost.TLBInvalidated))
	}
	for cpu := 0; cpu < 2; cpu++ {
		if n := w.sys.CPU(cpu).WalkCached(w.ctx); n != walkCached {
			t.Fatalf("cpu%d: last-level flush dropped walk caches (%d left)", cpu, n)
		}
	}
	mustClean(t, w.sys)

	// Clear the rest of the PTE table and free it: VAE1IS.
	mc.Reset()
	g = w.sys.NewGather(w.ctx, false)
	for i := uint64(3); i < 40; i++ {
		p, _ := w.pt.Walk(userVA+i*w.page, pgtable.PTE)
		w.pt.PTEClear(userVA+i*w.page, p)
		g.AddRange(userVA+i*w.page, userVA+(i+1)*w.page, 12)
	}
	w.pt.FreePgtables(userVA, userVA+pmdSize, 0, hugeVA, g)
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	if n := w.sys.CPU(0).WalkCached(w.ctx); n == walkCached {
		t.Fatal("freed tables left the walk caches alone")
	}
	mustClean(t, w.sys)

	// A full-mm gather that freed nothing flushes nothing.
	mc.Reset()
	g = w.sys.NewGather(w.ctx, true)
	g.AddRange(hugeVA, hugeVA+pmdSize, 21)
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	if n := mc.Count(cost.TLBFlushMM) + mc.Count(cost.TLBFlushRange) + mc.Count(cost.TLBIOps); n != 0 {
		t.Fatalf("full-mm gather without freed tables flushed (%d)", n)
	}
	// With a freed table it is flush_tlb_mm.
	g = w.sys.NewGather(w.ctx, true)
	for _, va := range []uint64{hugeVA, hugeVA + pmdSize} {
		p, _ := w.pt.Walk(va, pgtable.PMD)
		w.pt.RawClear(va, p)
	}
	w.pt.FreePgtables(0, 1<<47, 0, 0, g)
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	if mc.Count(cost.TLBFlushMM) != 1 || mc.Count(cost.TLBIOps) != 1 {
		t.Fatalf("full-mm gather with freed tables: mm %d tlbi %d", mc.Count(cost.TLBFlushMM), mc.Count(cost.TLBIOps))
	}
	mustClean(t, w.sys)
}

// scenario runs a fixed sequence of flushes on 4 CPUs with tracing on
// and returns the trace.
func scenario(t *testing.T, plat arch.Platform) string {
	var buf bytes.Buffer
	tr := cost.TextTracer{W: &buf}
	m := newMachine(t, arm64.Granule4K, 4, plat)
	m.km.SetTracer(tr)
	kpt, kctx := m.mm("kernel", true)
	if err := kpt.Map(kernelVA, 8*m.page, 0x300, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	var ctxs []*tlb.Context
	for i := 0; i < 3; i++ {
		pt, ctx := m.mm(fmt.Sprintf("mm%d", i), false)
		ctx.Meter().SetTracer(tr)
		if err := pt.Map(userVA, 48*m.page, phys.PFN(0x1000*(i+1)), pgtable.MapOpts{Prot: rw}); err != nil {
			t.Fatal(err)
		}
		ctxs = append(ctxs, ctx)
	}
	for step := 0; step < 40; step++ {
		cpu := step % 4
		ctx := ctxs[(step*7)%3]
		c := m.sys.CPU(cpu)
		c.Switch(ctx)
		va := userVA + uint64(step*5%48)*m.page
		if _, ok := c.Lookup(ctx, va); !ok {
			fill(t, c, ctx, va)
		}
		if _, ok := c.Lookup(kctx, kernelVA+uint64(step%8)*m.page); !ok {
			fill(t, c, kctx, kernelVA+uint64(step%8)*m.page)
		}
		if err := m.sys.SetLocalCPU(cpu); err != nil {
			t.Fatal(err)
		}
		switch step % 5 {
		case 0:
			m.sys.FlushTLBPage(ctx, va)
		case 1:
			m.sys.FlushTLBRange(ctx, userVA, userVA+uint64(step*20)*m.page)
		case 2:
			g := m.sys.NewGather(ctx, false)
			g.AddRange(va, va+m.page, 12)
			g.AddRange(userVA+40*m.page, userVA+42*m.page, 12)
			if err := g.Finish(); err != nil {
				t.Fatal(err)
			}
		case 3:
			m.sys.FlushTLBKernelRange(kernelVA, kernelVA+uint64(step)*m.page)
		case 4:
			m.sys.FlushTLBMM(ctx)
		}
		for _, s := range m.sys.Validate() {
			fmt.Fprintln(&buf, "stale:", s)
		}
	}
	m.sys.FlushTLBAll()
	return buf.String()
}

// TestArm64TraceDeterministic: the same operations give a byte-identical
// trace under GOMAXPROCS=1 and 2, with and without range TLBI.
func TestArm64TraceDeterministic(t *testing.T) {
	for _, plat := range []arch.Platform{{}, {RangeTLBI: true}} {
		prev := runtime.GOMAXPROCS(1)
		one := scenario(t, plat)
		runtime.GOMAXPROCS(2)
		two := scenario(t, plat)
		runtime.GOMAXPROCS(prev)
		if one != two {
			t.Fatal("traces differ between GOMAXPROCS=1 and 2")
		}
		for _, want := range []string{"tlbi_ops", "tlb_syncs", "tlb_invalidated", "tlb_flush_kernel", "tlb_flush_range"} {
			if !strings.Contains(one, want) {
				t.Errorf("trace lacks %s", want)
			}
		}
		if strings.Contains(one, "stale:") || strings.Contains(one, "tlb_ipis") {
			t.Errorf("the scenario left stale entries or sent IPIs:\n%s", one)
		}
	}
}
