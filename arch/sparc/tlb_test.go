package sparc_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/arch/sparc"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

const (
	userVA   = 0x10_0000_0000
	hugeVA   = 0x20_0000_0000 // 8 MiB aligned
	kernelVA = sparc.VmallocStart + 0x1000_0000
	page     = 1 << sparc.PageShift
	hpage    = 1 << sparc.HPageShift
	rw       = pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared
)

// machine is a sparc64 TLB system with the sparc64 policy, user page
// tables with the sparc64 PTE operations.
type machine struct {
	t   testing.TB
	a   *arch.Arch
	mem *phys.Memory
	sys *tlb.System
	km  *cost.Meter
}

func newMachine(t testing.TB, cpus int) *machine {
	t.Helper()
	a := sparc.New()
	mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: sparc.PageShift, MaxOrder: 10})
	if err != nil {
		t.Fatal(err)
	}
	pol, ok := a.NewTLBPolicy(arch.Platform{CPUs: cpus}).(*sparc.TLBPolicy)
	if !ok {
		t.Fatal("sparc64 does not build a sparc64 TLB policy")
	}
	km := &cost.Meter{Name: "kernel"}
	sys, err := tlb.New(tlb.Config{CPUs: cpus, Policy: pol, KernelMeter: km})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, a: a, mem: mem, sys: sys, km: km}
}

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
	ctx := m.sys.NewContext(name, pt, meter, kernel)
	if !kernel {
		pt.SetOps(m.a.NewPTEOps(arch.Env{TLB: m.sys, Context: ctx, Memory: m.mem, Meter: meter}))
	}
	return pt, ctx
}

// fill caches the translation of va on c and tries to cache the walk.
func fill(t testing.TB, c *tlb.CPU, ctx *tlb.Context, va uint64) {
	t.Helper()
	pt := ctx.PageTable()
	tr, ok := pt.Lookup(va)
	if !ok {
		t.Fatalf("fill %#x: not mapped", va)
	}
	f := pt.Format()
	perm := tlb.PermRead | tlb.PermUser
	if f.HWWritable(tr.Entry, tr.Level) {
		perm |= tlb.PermWrite
	}
	if pt.Kernel() {
		perm = tlb.PermRead | tlb.PermWrite | tlb.PermGlobal
	}
	shift := uint8(0)
	for s := tr.Size; s > 1; s >>= 1 {
		shift++
	}
	base := va &^ (tr.Size - 1)
	c.Insert(ctx, tlb.Entry{VA: base, Shift: shift, PFN: tr.PFN - phys.PFN((va-base)>>sparc.PageShift), Perm: perm, Level: tr.Level})
	for l := pt.RootLevel() + 1; l <= tr.Level; l++ {
		c.WalkCacheInsert(ctx, va, l, tlb.TableFor(pt, va, l))
	}
}

func stale(sys *tlb.System) []tlb.Stale { return sys.Validate() }

func mustClean(t testing.TB, sys *tlb.System) {
	t.Helper()
	if s := sys.Validate(); len(s) != 0 {
		t.Fatalf("validator reports %d stale entries, first %v", len(s), s[0])
	}
}

// world: cpus CPUs; mm "user" with n pages at userVA and one 8 MiB
// huge PMD at hugeVA, run on the CPUs of run (local CPU 0 unless said)
// and cached on every CPU of cached; an idle mm "idle" for the others.
type world struct {
	*machine
	pt       *pgtable.PageTable
	ctx, idl *tlb.Context
	n        uint64
}

func newWorld(t *testing.T, cpus int, n uint64, run, cached []int) *world {
	m := newMachine(t, cpus)
	w := &world{machine: m, n: n}
	w.pt, w.ctx = m.mm("user", false)
	_, w.idl = m.mm("idle", false)
	if err := w.pt.Map(userVA, n*page, 0x100, pgtable.MapOpts{Prot: rw, Dirty: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.pt.Map(hugeVA, hpage, 0x4000, pgtable.MapOpts{Prot: rw, Huge: true}); err != nil {
		t.Fatal(err)
	}
	for _, cpu := range cached {
		c := m.sys.CPU(cpu)
		c.Switch(w.ctx)
		for i := uint64(0); i < n; i++ {
			fill(t, c, w.ctx, userVA+i*page)
		}
		fill(t, c, w.ctx, hugeVA)
		c.Switch(w.idl)
	}
	for _, cpu := range run {
		m.sys.CPU(cpu).Switch(w.ctx)
	}
	w.ctx.Meter().Reset()
	m.km.Reset()
	mustClean(t, m.sys)
	return w
}

func (w *world) ptep(i uint64) pgtable.Ptr {
	p, ok := w.pt.Walk(userVA+i*page, pgtable.PTE)
	if !ok {
		w.t.Fatalf("no pte for page %d", i)
	}
	return p
}

// clear clears pages [from, to) with ptep_get_and_clear.
func (w *world) clear(from, to uint64) {
	for i := from; i < to; i++ {
		w.pt.PtepGetAndClear(userVA+i*page, w.ptep(i))
	}
}

// TestSparcBatchOf192: in lazy-MMU mode the addresses of valid ptes
// written over queue up: 191 flush nothing and stay stale in the TLB
// (Linux's contract: the flush comes before the lock is dropped), the
// 192nd flushes the whole batch; leaving lazy mode flushes the rest.
func TestSparcBatchOf192(t *testing.T) {
	w := newWorld(t, 1, 200, []int{0}, []int{0})
	mt := w.ctx.Meter()
	w.pt.EnterLazyMMU()
	w.clear(0, 191)
	if sparc.Pending(w.sys, 0) != 191 || mt.Count(cost.TLBDemaps) != 0 || mt.Count(cost.TLBInvalidated) != 0 {
		t.Fatalf("191: pending %d demaps %d", sparc.Pending(w.sys, 0), mt.Count(cost.TLBDemaps))
	}
	if n := len(stale(w.sys)); n != 191 {
		t.Fatalf("%d stale entries before the batch flush, want 191", n)
	}
	w.clear(191, 192)
	if sparc.Pending(w.sys, 0) != 0 || mt.Count(cost.TLBDemaps) != 192 || mt.Count(cost.TLBInvalidated) != 192 {
		t.Fatalf("192: pending %d demaps %d invalidated %d", sparc.Pending(w.sys, 0), mt.Count(cost.TLBDemaps), mt.Count(cost.TLBInvalidated))
	}
	mustClean(t, w.sys)
	w.clear(192, 195)
	if sparc.Pending(w.sys, 0) != 3 || len(stale(w.sys)) != 3 {
		t.Fatalf("pending %d, stale %d", sparc.Pending(w.sys, 0), len(stale(w.sys)))
	}
	w.pt.LeaveLazyMMU()
	if sparc.Pending(w.sys, 0) != 0 || mt.Count(cost.TLBDemaps) != 195 || mt.Count(cost.TLBIPIs) != 0 {
		t.Fatalf("leave: pending %d demaps %d ipis %d", sparc.Pending(w.sys, 0), mt.Count(cost.TLBDemaps), mt.Count(cost.TLBIPIs))
	}
	mustClean(t, w.sys)
	// Nested sections flush when the outermost one ends.
	w.pt.EnterLazyMMU()
	w.pt.EnterLazyMMU()
	w.clear(195, 197)
	w.pt.LeaveLazyMMU()
	if sparc.Pending(w.sys, 0) != 2 {
		t.Fatalf("inner leave flushed: pending %d", sparc.Pending(w.sys, 0))
	}
	w.pt.LeaveLazyMMU()
	if sparc.Pending(w.sys, 0) != 0 || mt.Count(cost.TLBDemaps) != 197 {
		t.Fatalf("outer leave: pending %d demaps %d", sparc.Pending(w.sys, 0), mt.Count(cost.TLBDemaps))
	}
	mustClean(t, w.sys)
}

// TestSparcImmediateOutsideLazy: outside lazy-MMU mode every store over
// a valid pte flushes its address at once; stores over empty or invalid
// ptes flush nothing; flush_tlb_page, flush_tlb_range and flush_tlb_mm
// are empty.
func TestSparcImmediateOutsideLazy(t *testing.T) {
	w := newWorld(t, 1, 8, []int{0}, []int{0})
	mt := w.ctx.Meter()
	w.pt.PtepSetWrprotect(userVA, w.ptep(0))
	if mt.Count(cost.TLBDemaps) != 1 || mt.Count(cost.TLBInvalidated) != 1 || sparc.Pending(w.sys, 0) != 0 {
		t.Fatalf("wrprotect: demaps %d invalidated %d", mt.Count(cost.TLBDemaps), mt.Count(cost.TLBInvalidated))
	}
	mustClean(t, w.sys)
	w.clear(1, 2)
	w.pt.SetPTEAt(userVA+page, w.ptep(1), w.pt.Format().MkPTE(0x999, rw)) // over an empty pte
	if mt.Count(cost.TLBDemaps) != 2 {
		t.Fatalf("demaps %d, want 2", mt.Count(cost.TLBDemaps))
	}
	w.pt.PtepTestAndClearYoung(userVA+2*page, w.ptep(2)) // pte_mkold clears _PAGE_VALID
	w.pt.PtepTestAndClearYoung(userVA+2*page, w.ptep(2)) // no longer valid: nothing
	if mt.Count(cost.TLBDemaps) != 3 {
		t.Fatalf("demaps %d, want 3", mt.Count(cost.TLBDemaps))
	}
	mt.Reset()
	w.sys.FlushTLBPage(w.ctx, userVA)
	w.sys.FlushTLBRange(w.ctx, userVA, userVA+8*page)
	w.sys.FlushTLBMM(w.ctx)
	if mt.Count(cost.TLBFlushPage) != 1 || mt.Count(cost.TLBFlushRange) != 1 || mt.Count(cost.TLBFlushMM) != 1 ||
		mt.Count(cost.TLBDemaps)+mt.Count(cost.TLBInvalidated)+mt.Count(cost.TLBIPIs) != 0 {
		t.Fatalf("empty flushes did work: %v", mt.Counts())
	}
	mustClean(t, w.sys)
}

// TestSparcCrossCalls: a flush cross-calls every other CPU of the mm's
// cpumask, one IPI per CPU per flush (smp_flush_tlb_pending), and
// demaps every address there; CPUs outside the cpumask are left alone;
// an mm with one user on the issuing CPU gets no cross-call, and its
// cpumask shrinks to that CPU.
func TestSparcCrossCalls(t *testing.T) {
	cases := []struct {
		name        string
		run, cached []int
		local       int
		ipis        uint64
		demaps      uint64
		mask        []int
		left        []int
	}{
		{"three CPUs run the mm", []int{0, 1, 2}, []int{0, 1, 2}, 0, 2, 30, []int{0, 1, 2}, []int{1, 1, 1, 0}},
		{"CPU 3 ran the mm before: still in the cpumask", []int{0, 1, 2}, []int{0, 1, 2, 3}, 0, 3, 40, []int{0, 1, 2, 3}, []int{1, 1, 1, 1}},
		{"the mm is not the issuing CPU's", []int{0, 1}, []int{0, 1}, 3, 2, 30, []int{0, 1}, []int{1, 1, 0, 0}},
		{"one user on the issuing CPU: no cross-call", []int{0}, []int{0, 1, 2}, 0, 0, 10, []int{0}, []int{1, 11, 11, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 4, 10, c.run, c.cached)
			if err := w.sys.SetLocalCPU(c.local); err != nil {
				t.Fatal(err)
			}
			if c.local == 3 {
				w.sys.CPU(3).Switch(w.idl)
			}
			mt := w.ctx.Meter()
			w.pt.EnterLazyMMU()
			w.clear(0, 10)
			w.pt.LeaveLazyMMU()
			if mt.Count(cost.TLBIPIs) != c.ipis || mt.Count(cost.TLBDemaps) != c.demaps {
				t.Errorf("ipis %d demaps %d, want %d %d", mt.Count(cost.TLBIPIs), mt.Count(cost.TLBDemaps), c.ipis, c.demaps)
			}
			if got := sparc.CPUMask(w.sys, w.ctx); fmt.Sprint(got) != fmt.Sprint(c.mask) {
				t.Errorf("cpumask %v, want %v", got, c.mask)
			}
			var left []int
			for i := 0; i < 4; i++ {
				left = append(left, w.sys.CPU(i).LiveFor(w.ctx))
			}
			if fmt.Sprint(left) != fmt.Sprint(c.left) {
				t.Errorf("entries left %v, want %v", left, c.left)
			}
			mustClean(t, w.sys)
		})
	}
}

// TestSparcRejoinFlushesContext: a CPU whose entries became unreachable
// when the cpumask shrank flushes the mm's context when it switches back
// (switch_mm), so it never uses them.
func TestSparcRejoinFlushesContext(t *testing.T) {
	w := newWorld(t, 2, 4, []int{0}, []int{0, 1})
	mt := w.ctx.Meter()
	w.clear(0, 1)
	if got := sparc.CPUMask(w.sys, w.ctx); fmt.Sprint(got) != "[0]" {
		t.Fatalf("cpumask %v", got)
	}
	mustClean(t, w.sys) // CPU 1's stale entry is unreachable
	w.sys.CPU(1).Switch(w.ctx)
	if mt.Count(cost.LocalFullFlushes) != 1 || w.sys.CPU(1).LiveFor(w.ctx) != 0 {
		t.Fatalf("rejoin: local flushes %d, entries %d", mt.Count(cost.LocalFullFlushes), w.sys.CPU(1).LiveFor(w.ctx))
	}
	mustClean(t, w.sys)
}

// TestSparcBatchFlushTriggers: the batch is flushed when an address of
// another mm or another page size comes, at a task switch, and at the
// mmu_gather's flush (tlb_flush, no flush API call).
func TestSparcBatchFlushTriggers(t *testing.T) {
	t.Run("another mm", func(t *testing.T) {
		w := newWorld(t, 1, 4, []int{0}, []int{0})
		pt2, ctx2 := w.mm("other", false)
		if err := pt2.Map(userVA, page, 0x900, pgtable.MapOpts{Prot: rw}); err != nil {
			t.Fatal(err)
		}
		w.pt.EnterLazyMMU()
		w.clear(0, 3)
		p2, _ := pt2.Walk(userVA, pgtable.PTE)
		pt2.PtepGetAndClear(userVA, p2)
		if w.ctx.Meter().Count(cost.TLBDemaps) != 3 || sparc.Pending(w.sys, 0) != 1 {
			t.Fatalf("demaps %d pending %d", w.ctx.Meter().Count(cost.TLBDemaps), sparc.Pending(w.sys, 0))
		}
		w.pt.LeaveLazyMMU()
		if ctx2.Meter().Count(cost.TLBDemaps) != 1 {
			t.Fatal("the other mm's address was not flushed")
		}
	})
	t.Run("huge page size", func(t *testing.T) {
		w := newWorld(t, 1, 4, []int{0}, []int{0})
		w.pt.EnterLazyMMU()
		w.clear(0, 3)
		p, _ := w.pt.Walk(hugeVA, pgtable.PMD)
		w.pt.ExchangeLeaf(hugeVA, p, 0) // pmdp_huge_get_and_clear: two 4 MiB TTEs
		mt := w.ctx.Meter()
		if mt.Count(cost.TLBDemaps) != 3 || sparc.Pending(w.sys, 0) != 2 {
			t.Fatalf("demaps %d pending %d", mt.Count(cost.TLBDemaps), sparc.Pending(w.sys, 0))
		}
		w.pt.LeaveLazyMMU()
		if mt.Count(cost.TLBDemaps) != 5 || mt.Count(cost.TLBInvalidated) != 4 {
			t.Fatalf("demaps %d invalidated %d", mt.Count(cost.TLBDemaps), mt.Count(cost.TLBInvalidated))
		}
		mustClean(t, w.sys)
	})
	t.Run("task switch", func(t *testing.T) {
		w := newWorld(t, 1, 4, []int{0}, []int{0})
		w.pt.EnterLazyMMU()
		w.clear(0, 3)
		w.sys.CPU(0).Switch(w.idl) // prepare_arch_switch
		if w.ctx.Meter().Count(cost.TLBDemaps) != 3 || sparc.Pending(w.sys, 0) != 0 {
			t.Fatalf("demaps %d", w.ctx.Meter().Count(cost.TLBDemaps))
		}
		w.pt.LeaveLazyMMU()
		mustClean(t, w.sys)
	})
	t.Run("mmu_gather", func(t *testing.T) {
		w := newWorld(t, 1, 4, []int{0}, []int{0})
		g := w.sys.NewGather(w.ctx, false)
		w.pt.EnterLazyMMU()
		w.clear(0, 4)
		g.AddRange(userVA, userVA+4*page, sparc.PageShift)
		if err := g.Finish(); err != nil {
			t.Fatal(err)
		}
		mt := w.ctx.Meter()
		if mt.Count(cost.TLBDemaps) != 4 || sparc.Pending(w.sys, 0) != 0 {
			t.Fatalf("demaps %d pending %d", mt.Count(cost.TLBDemaps), sparc.Pending(w.sys, 0))
		}
		if n := mt.Count(cost.TLBFlushRange) + mt.Count(cost.TLBFlushMM) + mt.Count(cost.TLBFlushPage); n != 0 {
			t.Fatalf("tlb_flush called the flush API %d times", n)
		}
		w.pt.LeaveLazyMMU()
		mustClean(t, w.sys)
	})
}

// TestSparcDcacheAlias: tlb_batch_add flushes a dirty page-cache page
// from the D-cache when its kernel alias (PAGE_OFFSET + pa) has another
// colour (bit 13) than the user address; not a clean one, an anonymous
// one, or one of the same colour.
func TestSparcDcacheAlias(t *testing.T) {
	for _, c := range []struct {
		name      string
		file      bool
		dirty     bool
		sameColor bool
		flushes   uint64
	}{
		{"dirty file page, other colour", true, true, false, 1},
		{"dirty file page, same colour", true, true, true, 0},
		{"clean file page", true, false, false, 0},
		{"dirty anonymous page", false, true, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t, 1)
			pt, ctx := m.mm("user", false)
			pfn, err := m.mem.Alloc(0, phys.KindFolio)
			if err != nil {
				t.Fatal(err)
			}
			f := phys.Folio{PFN: pfn}
			if c.file {
				m.mem.SetFlags(f, phys.FlagPageCache)
			} else {
				m.mem.SetFlags(f, phys.FlagAnon)
			}
			// Kernel colour: bit 13 of PAGE_OFFSET + pfn<<13, which is
			// bit 0 of the pfn.
			va := uint64(userVA)
			if (uint64(pfn)&1 == 1) == c.sameColor {
				va += page
			}
			if err := pt.Map(va, page, pfn, pgtable.MapOpts{Prot: rw, Dirty: c.dirty}); err != nil {
				t.Fatal(err)
			}
			p, _ := pt.Walk(va, pgtable.PTE)
			pt.PtepGetAndClear(va, p)
			if got := ctx.Meter().Count(cost.DcacheFlushes); got != c.flushes {
				t.Fatalf("dcache_flushes %d, want %d", got, c.flushes)
			}
			if ctx.Meter().Count(cost.TLBDemaps) != 1 {
				t.Fatal("the TLB flush did not happen")
			}
		})
	}
}

// TestSparcKernelRange: flush_tlb_kernel_range cross-calls every other
// CPU and demaps page by page below 256 KiB, everything unlocked from
// there on, and skips the firmware range.
func TestSparcKernelRange(t *testing.T) {
	for _, c := range []struct {
		name               string
		start, end         uint64
		ipis, demaps, full uint64
		kernelLeft         int
	}{
		{"1 page", kernelVA, kernelVA + page, 3, 4, 0, 12},
		{"31 pages", kernelVA, kernelVA + 31*page, 3, 4 * 31, 0, 0},
		{"256 KiB: demap all", kernelVA, kernelVA + 32*page, 3, 0, 4, 0},
		{"across the firmware range", sparc.LowOBPAddress - 2*page, sparc.HiOBPAddress + 2*page, 6, 16, 0, 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t, 4)
			kpt, kctx := m.mm("kernel", true)
			if err := kpt.Map(kernelVA, 16*page, 0x300, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
				t.Fatal(err)
			}
			for cpu := 0; cpu < 4; cpu++ {
				for i := uint64(0); i < 4; i++ {
					fill(t, m.sys.CPU(cpu), kctx, kernelVA+i*page)
				}
			}
			m.sys.FlushTLBKernelRange(c.start, c.end)
			if m.km.Count(cost.TLBIPIs) != c.ipis || m.km.Count(cost.TLBDemaps) != c.demaps || m.km.Count(cost.LocalFullFlushes) != c.full {
				t.Fatalf("ipis %d demaps %d full %d, want %d %d %d", m.km.Count(cost.TLBIPIs), m.km.Count(cost.TLBDemaps),
					m.km.Count(cost.LocalFullFlushes), c.ipis, c.demaps, c.full)
			}
			left := 0
			for cpu := 0; cpu < 4; cpu++ {
				left += m.sys.CPU(cpu).Live()
			}
			if left != c.kernelLeft {
				t.Fatalf("%d kernel entries left, want %d", left, c.kernelLeft)
			}
			mustClean(t, m.sys)
		})
	}
}

// TestSparcNoWalkCache: the UltraSPARC MMU refills its TLB in software,
// so no intermediate table is ever cached.
func TestSparcNoWalkCache(t *testing.T) {
	w := newWorld(t, 2, 4, []int{0, 1}, []int{0, 1})
	for cpu := 0; cpu < 2; cpu++ {
		if n := w.sys.CPU(cpu).WalkCached(w.ctx); n != 0 {
			t.Fatalf("cpu%d caches %d tables", cpu, n)
		}
	}
}

// TestSparcMachine: the machine runs with the sparc64 policy: munmap of
// 16 pages written by CPU 0 flushes them in one batch at the end of the
// lazy section (16 demaps, no flush API call), and writes after a
// fault-in cost nothing more; the invariants hold throughout.
func TestSparcMachine(t *testing.T) {
	a, err := archs.ByName("sparc64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	mm, err := m.NewMM("p")
	if err != nil {
		t.Fatal(err)
	}
	if err := mm.Mmap(userVA, 16*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 16; i++ {
		if err := mm.Write(0, userVA+i*page, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	mt := mm.Meter()
	mt.Reset()
	if err := mm.Munmap(userVA, 16*page); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatal(err)
	}
	if mt.Count(cost.TLBDemaps) != 16 || mt.Count(cost.TLBIPIs) != 0 || mt.Count(cost.TLBFlushRange)+mt.Count(cost.TLBFlushMM) != 0 {
		t.Fatalf("demaps %d ipis %d flush calls %d", mt.Count(cost.TLBDemaps), mt.Count(cost.TLBIPIs),
			mt.Count(cost.TLBFlushRange)+mt.Count(cost.TLBFlushMM))
	}
}

// TestSparcMachineDcacheAlias: one dirty page-cache page mapped shared
// at two addresses of different colours; unmapping both flushes the
// D-cache once, for the mapping whose colour differs from the page's
// kernel alias, and never for anonymous memory.
func TestSparcMachineDcacheAlias(t *testing.T) {
	a, err := archs.ByName("sparc64")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	mm, err := m.NewMM("p")
	if err != nil {
		t.Fatal(err)
	}
	const vaA, vaB, anon = userVA, userVA + 0x10_0000 + page, userVA + 0x20_0000
	for _, va := range []uint64{vaA, vaB} {
		if err := mm.Mmap(va, page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{File: "f", Shared: true}); err != nil {
			t.Fatal(err)
		}
		if err := mm.Write(0, va, 7); err != nil {
			t.Fatal(err)
		}
	}
	if err := mm.Mmap(anon, 2*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 2; i++ {
		if err := mm.Write(0, anon+i*page, 7); err != nil {
			t.Fatal(err)
		}
	}
	trA, _ := mm.Translate(vaA)
	trB, _ := mm.Translate(vaB)
	if trA.PFN != trB.PFN || (vaA^vaB)&sparc.ColourBit == 0 {
		t.Fatalf("setup: pfns %#x %#x", trA.PFN, trB.PFN)
	}
	mm.Meter().Reset()
	for _, va := range []uint64{vaA, vaB, anon} {
		if err := mm.Munmap(va, 2*page); err != nil {
			t.Fatal(err)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if got := mm.Meter().Count(cost.DcacheFlushes); got != 1 {
		t.Fatalf("dcache_flushes %d, want 1", got)
	}
}

// scenario runs a fixed sequence of writes, lazy sections and switches
// on 3 CPUs with tracing on and returns the trace.
func scenario(t *testing.T) string {
	var buf bytes.Buffer
	tr := cost.TextTracer{W: &buf}
	m := newMachine(t, 3)
	m.km.SetTracer(tr)
	var pts []*pgtable.PageTable
	var ctxs []*tlb.Context
	for i := 0; i < 2; i++ {
		pt, ctx := m.mm(fmt.Sprintf("mm%d", i), false)
		ctx.Meter().SetTracer(tr)
		if err := pt.Map(userVA, 300*page, phys.PFN(0x1000*(i+1)), pgtable.MapOpts{Prot: rw, Dirty: true}); err != nil {
			t.Fatal(err)
		}
		pts, ctxs = append(pts, pt), append(ctxs, ctx)
	}
	for step := 0; step < 30; step++ {
		cpu := step % 3
		k := (step / 3) % 2
		c := m.sys.CPU(cpu)
		c.Switch(ctxs[k])
		if err := m.sys.SetLocalCPU(cpu); err != nil {
			t.Fatal(err)
		}
		lazy := step%2 == 0
		if lazy {
			pts[k].EnterLazyMMU()
		}
		for j := 0; j < 25; j++ {
			va := userVA + uint64((step*37+j*11)%300)*page
			if _, ok := c.Lookup(ctxs[k], va); !ok {
				fill(t, c, ctxs[k], va)
			}
			p, _ := pts[k].Walk(va, pgtable.PTE)
			pts[k].PtepSetWrprotect(va, p)
			pts[k].SetPTEAt(va, p, pts[k].Format().MkWrite(pts[k].PtepGet(va, p), pgtable.PTE))
		}
		if lazy {
			pts[k].LeaveLazyMMU()
		}
		for _, s := range m.sys.Validate() {
			fmt.Fprintln(&buf, "stale:", s)
		}
	}
	m.sys.FlushTLBKernelRange(kernelVA, kernelVA+page)
	return buf.String()
}

// TestSparcTraceDeterministic: the same operations give a byte-identical
// trace under GOMAXPROCS=1 and 2.
func TestSparcTraceDeterministic(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	one := scenario(t)
	runtime.GOMAXPROCS(2)
	two := scenario(t)
	if one != two {
		t.Fatal("traces differ between GOMAXPROCS=1 and 2")
	}
	for _, want := range []string{"tlb_demaps", "tlb_ipis", "tlb_invalidated"} {
		if !strings.Contains(one, want) {
			t.Errorf("trace lacks %s", want)
		}
	}
	if strings.Contains(one, "stale:") {
		t.Errorf("the scenario left stale entries:\n%s", one)
	}
}
