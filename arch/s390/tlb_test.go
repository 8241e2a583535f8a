package s390_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/arch/s390"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

const (
	userVA   = 0x10_0000_0000     // 64 GiB, inside the 3-level 4 TiB space
	hugeVA   = 0x10_4000_0000     // a 1 MiB segment leaf, 1 GiB further
	kernelVA = s390.KernelVmemmap // kernel addresses overlap user ones: keep apart
	page     = 4096
	segSize  = 1 << 20
	rw       = pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared
)

// machine is an s390 TLB system with the s390 policy, and user page
// tables with the s390 PTE operations, as the descriptor builds them.
type machine struct {
	t   testing.TB
	a   *arch.Arch
	mem *phys.Memory
	sys *tlb.System
	km  *cost.Meter
}

func newMachine(t testing.TB, cpus int) *machine {
	t.Helper()
	a := s390.New()
	mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 18})
	if err != nil {
		t.Fatal(err)
	}
	pol, ok := a.NewTLBPolicy(arch.Platform{CPUs: cpus}).(*s390.TLBPolicy)
	if !ok {
		t.Fatal("s390 does not build an s390 TLB policy")
	}
	km := &cost.Meter{Name: "kernel"}
	sys, err := tlb.New(tlb.Config{CPUs: cpus, Policy: pol, KernelMeter: km})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, a: a, mem: mem, sys: sys, km: km}
}

// mm creates an address space; a user one gets the s390 PTE operations.
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

// fill caches the translation of va on c, with the tables below the
// root in the walk cache.
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
		perm |= tlb.PermGlobal
	}
	shift := uint8(0)
	for s := tr.Size; s > 1; s >>= 1 {
		shift++
	}
	base := va &^ (tr.Size - 1)
	c.Insert(ctx, tlb.Entry{VA: base, Shift: shift, PFN: tr.PFN - phys.PFN((va-base)>>12), Perm: perm, Level: tr.Level})
	for l := pt.RootLevel() + 1; l <= tr.Level; l++ {
		c.WalkCacheInsert(ctx, va, l, tlb.TableFor(pt, va, l))
	}
}

func stale(sys *tlb.System) []string {
	var out []string
	for _, s := range sys.Validate() {
		out = append(out, s.String())
	}
	return out
}

func mustClean(t testing.TB, sys *tlb.System) {
	t.Helper()
	if s := stale(sys); len(s) != 0 {
		t.Fatalf("validator reports stale entries: %v", s)
	}
	if v := sys.Violations(); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
}

// world: cpus CPUs; mm "user" with 8 dirty, writable pages at userVA and a 1 MiB
// segment leaf at hugeVA, run on the CPUs in run (CPU 0 local) and
// cached on every CPU in cached (a CPU in cached but not in run ran the
// mm before and switched away); meters reset.
type world struct {
	*machine
	pt  *pgtable.PageTable
	ctx *tlb.Context
	idl *tlb.Context // an idle mm the others switch to
}

func newWorld(t *testing.T, cpus int, run, cached []int) *world {
	m := newMachine(t, cpus)
	w := &world{machine: m}
	w.pt, w.ctx = m.mm("user", false)
	_, w.idl = m.mm("idle", false)
	if err := w.pt.Map(userVA, 8*page, 0x100, pgtable.MapOpts{Prot: rw, Dirty: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.pt.Map(hugeVA, segSize, 0x200, pgtable.MapOpts{Prot: rw, Huge: true}); err != nil {
		t.Fatal(err)
	}
	for _, cpu := range cached {
		c := m.sys.CPU(cpu)
		c.Switch(w.ctx)
		for i := uint64(0); i < 8; i++ {
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

// ptep returns the PTE pointer of page i.
func (w *world) ptep(i uint64) pgtable.Ptr {
	p, ok := w.pt.Walk(userVA+i*page, pgtable.PTE)
	if !ok {
		w.t.Fatalf("no pte for page %d", i)
	}
	return p
}

// left returns the user entries each CPU still caches.
func (w *world) left() []int {
	var out []int
	for i := 0; i < w.sys.CPUs(); i++ {
		out = append(out, w.sys.CPU(i).LiveFor(w.ctx))
	}
	return out
}

func eq(a, b []int) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestS390InvalidateOnExchange: an exchange of a live entry purges it
// at once, IPTE for a pte and IDTE for a segment entry: only on the
// issuing CPU when the mm's cpumask holds no other CPU, else on every
// CPU (a CPU that ran the mm and switched away stays in the cpumask, its
// TLB still tagged with the mm's ASCE). No IPI is ever sent.
func TestS390InvalidateOnExchange(t *testing.T) {
	cases := []struct {
		name        string
		cpus        int
		run, cached []int
		op          func(w *world)
		ipte, idte  uint64
		invalidated uint64
		left        []int
	}{
		{"1 CPU: ptep_test_and_clear_young, local IPTE", 1, []int{0}, []int{0},
			func(w *world) { w.pt.PtepTestAndClearYoung(userVA+3*page, w.ptep(3)) },
			1, 0, 1, []int{8}}, // 8 pages and a segment were cached; one went
		{"4 CPUs attached: global IPTE", 4, []int{0, 1, 2, 3}, []int{0, 1, 2, 3},
			func(w *world) { w.pt.PtepTestAndClearYoung(userVA+3*page, w.ptep(3)) },
			1, 0, 4, []int{8, 8, 8, 8}},
		{"CPU 1 ran the mm before: still in the cpumask, global IPTE", 2, []int{0}, []int{0, 1},
			func(w *world) { w.pt.PtepTestAndClearYoung(userVA+3*page, w.ptep(3)) },
			1, 0, 2, []int{8, 8}},
		{"an old pte is invalid already: no IPTE", 2, []int{0, 1}, []int{0, 1},
			func(w *world) {
				w.pt.PtepTestAndClearYoung(userVA+3*page, w.ptep(3))
				w.ctx.Meter().Reset()
				w.pt.PtepTestAndClearYoung(userVA+3*page, w.ptep(3))
			},
			0, 0, 0, []int{8, 8}},
		{"ptep_get_and_clear with two CPUs attached: global IPTE", 2, []int{0, 1}, []int{0, 1},
			func(w *world) { w.pt.PtepGetAndClear(userVA, w.ptep(0)) },
			1, 0, 2, []int{8, 8}},
		{"ptep_set_wrprotect with two CPUs attached: global IPTE", 2, []int{0, 1}, []int{0, 1},
			func(w *world) { w.pt.PtepSetWrprotect(userVA, w.ptep(0)) },
			1, 0, 2, []int{8, 8}},
		{"ptep_set_wrprotect of a read-only pte: nothing", 2, []int{0, 1}, []int{0, 1},
			func(w *world) {
				w.pt.PtepSetWrprotect(userVA, w.ptep(0))
				w.ctx.Meter().Reset()
				w.pt.PtepSetWrprotect(userVA, w.ptep(0))
			},
			0, 0, 0, []int{8, 8}},
		{"ptep_set_access_flags RO to RW: RDP, no purge", 2, []int{0, 1}, []int{0, 1},
			func(w *world) {
				p := w.ptep(5)
				e := p.Peek()
				w.pt.RawExchange(userVA+5*page, p, e|s390.Protect) // make it read-only in hardware
				w.ctx.Meter().Reset()
				if !w.pt.PtepSetAccessFlags(userVA+5*page, p, e, true) {
					w.t.Fatal("no change reported")
				}
			},
			0, 0, 0, []int{8, 8}}, // the RawExchange purged page 5
		{"ptep_set_access_flags with a software change: direct IPTE", 2, []int{0, 1}, []int{0, 1},
			func(w *world) {
				p := w.ptep(5)
				e := w.pt.Format().MkClean(p.Peek(), pgtable.PTE)
				w.pt.PtepSetAccessFlags(userVA+5*page, p, e, false)
			},
			1, 0, 2, []int{8, 8}},
		{"segment leaf exchange: IDTE", 2, []int{0, 1}, []int{0, 1},
			func(w *world) {
				p, _ := w.pt.Walk(hugeVA, pgtable.PMD)
				w.pt.ExchangeLeaf(hugeVA, p, s390.SegmentEmpty)
			},
			0, 1, 2, []int{8, 8}},
		{"segment leaf exchange, local: IDTE on CPU 0 only", 1, []int{0}, []int{0},
			func(w *world) {
				p, _ := w.pt.Walk(hugeVA, pgtable.PMD)
				w.pt.ExchangeLeaf(hugeVA, p, s390.SegmentEmpty)
			},
			0, 1, 1, []int{8}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, c.cpus, c.run, c.cached)
			c.op(w)
			mt := w.ctx.Meter()
			if mt.Count(cost.IPTEOps) != c.ipte || mt.Count(cost.IDTEOps) != c.idte || mt.Count(cost.TLBInvalidated) != c.invalidated {
				t.Errorf("ipte %d idte %d invalidated %d, want %d %d %d", mt.Count(cost.IPTEOps), mt.Count(cost.IDTEOps),
					mt.Count(cost.TLBInvalidated), c.ipte, c.idte, c.invalidated)
			}
			if mt.Count(cost.TLBIPIs) != 0 {
				t.Errorf("%d IPIs", mt.Count(cost.TLBIPIs))
			}
			if got := w.left(); !eq(got, c.left) {
				t.Errorf("entries left %v, want %v", got, c.left)
			}
			if s390.FlushPending(w.sys, w.ctx) {
				t.Error("a direct exchange left a deferred flush")
			}
			mustClean(t, w.sys)
		})
	}
}

// TestS390LazyFlush: ptep_get_and_clear with the mm attached to the
// issuing CPU alone sets the invalid bit in place and flush_mm: no IPTE,
// the TLB keeps the old translation (stale until the flush, as Linux's
// contract allows before flush_tlb_range), flush_tlb_page is a no-op,
// and flush_tlb_range purges the whole mm with one IDTE. A CPU that ran
// the mm before keeps its entries, unreachable until it switches back,
// which runs the deferred flush first.
func TestS390LazyFlush(t *testing.T) {
	w := newWorld(t, 2, []int{0}, []int{0, 1})
	mt := w.ctx.Meter()
	old := w.pt.PtepGetAndClear(userVA+2*page, w.ptep(2))
	if old&s390.Present == 0 || w.ptep(2).Peek() != s390.PTENone {
		t.Fatalf("get_and_clear returned %#x, left %#x", old, w.ptep(2).Peek())
	}
	if mt.Count(cost.IPTEOps) != 0 || !s390.FlushPending(w.sys, w.ctx) || mt.Count(cost.PTESets) != 1 || mt.Count(cost.PTEClears) != 1 {
		t.Fatalf("lazy: ipte %d pending %v sets %d clears %d", mt.Count(cost.IPTEOps), s390.FlushPending(w.sys, w.ctx),
			mt.Count(cost.PTESets), mt.Count(cost.PTEClears))
	}
	if v := w.sys.Violations(); len(v) != 0 {
		t.Fatalf("the in-place invalid bit was flagged: %v", v)
	}
	if s := stale(w.sys); len(s) != 1 || !strings.HasPrefix(s[0], "cpu0 user va 0x1000002000") {
		t.Fatalf("stale before the flush: %v", s)
	}
	w.sys.FlushTLBPage(w.ctx, userVA+2*page)
	if mt.Count(cost.TLBFlushPage) != 1 || mt.Count(cost.TLBInvalidated) != 0 || len(stale(w.sys)) != 1 {
		t.Fatalf("flush_tlb_page did something: invalidated %d, stale %v", mt.Count(cost.TLBInvalidated), stale(w.sys))
	}
	w.sys.FlushTLBRange(w.ctx, userVA+2*page, userVA+3*page)
	if mt.Count(cost.IDTEOps) != 1 || mt.Count(cost.TLBInvalidated) != 18 || s390.FlushPending(w.sys, w.ctx) {
		t.Fatalf("flush_tlb_range: idte %d invalidated %d pending %v", mt.Count(cost.IDTEOps), mt.Count(cost.TLBInvalidated),
			s390.FlushPending(w.sys, w.ctx))
	}
	if got := s390.CPUMask(w.sys, w.ctx); !eq(got, []int{0}) {
		t.Fatalf("cpumask after the flush %v, want [0]", got)
	}
	mustClean(t, w.sys)
	// Nothing pending: flush_tlb_mm does nothing.
	mt.Reset()
	w.sys.FlushTLBMM(w.ctx)
	if mt.Count(cost.IDTEOps) != 0 || mt.Count(cost.TLBFlushMM) != 1 {
		t.Fatalf("flush_tlb_mm without flush_mm: idte %d", mt.Count(cost.IDTEOps))
	}
	// ptep_set_wrprotect is lazy too (fork's copy); flush_tlb_mm follows.
	fill(t, w.sys.CPU(0), w.ctx, userVA+4*page)
	mt.Reset()
	w.pt.PtepSetWrprotect(userVA+4*page, w.ptep(4))
	if mt.Count(cost.IPTEOps) != 0 || !s390.FlushPending(w.sys, w.ctx) {
		t.Fatalf("lazy wrprotect: ipte %d pending %v", mt.Count(cost.IPTEOps), s390.FlushPending(w.sys, w.ctx))
	}
	if s := stale(w.sys); len(s) != 1 || !strings.Contains(s[0], "write permission revoked") {
		t.Fatalf("stale before flush_tlb_mm: %v", s)
	}
	w.sys.FlushTLBMM(w.ctx)
	if mt.Count(cost.IDTEOps) != 1 || mt.Count(cost.TLBInvalidated) != 1 || s390.FlushPending(w.sys, w.ctx) {
		t.Fatalf("flush_tlb_mm: idte %d invalidated %d", mt.Count(cost.IDTEOps), mt.Count(cost.TLBInvalidated))
	}
	mustClean(t, w.sys)
}

// TestS390SwitchRunsDeferredFlush: a CPU that switches to an mm with a
// deferred flush pending runs it first (finish_arch_post_lock_switch);
// until then its old entries are unreachable, so not stale.
func TestS390SwitchRunsDeferredFlush(t *testing.T) {
	w := newWorld(t, 2, []int{0}, []int{0, 1})
	mt := w.ctx.Meter()
	w.pt.PtepGetAndClear(userVA, w.ptep(0))
	if w.sys.CPU(1).LiveFor(w.ctx) != 9 {
		t.Fatal("CPU 1 lost its entries")
	}
	// CPU 0 is stale (its own TLB), CPU 1 is not reachable.
	if s := stale(w.sys); len(s) != 1 || !strings.HasPrefix(s[0], "cpu0") {
		t.Fatalf("stale %v", s)
	}
	w.sys.CPU(1).Switch(w.ctx)
	if mt.Count(cost.IDTEOps) != 1 || s390.FlushPending(w.sys, w.ctx) || mt.Count(cost.TLBInvalidated) != 18 {
		t.Fatalf("switch: idte %d pending %v invalidated %d", mt.Count(cost.IDTEOps), s390.FlushPending(w.sys, w.ctx),
			mt.Count(cost.TLBInvalidated))
	}
	mustClean(t, w.sys)
}

// TestS390NoOpFlushes: flush_tlb_page and flush_tlb_all are no-ops;
// flush_tlb_range and flush_tlb_mm without a deferred flush too.
func TestS390NoOpFlushes(t *testing.T) {
	w := newWorld(t, 2, []int{0, 1}, []int{0, 1})
	w.sys.FlushTLBPage(w.ctx, userVA)
	w.sys.FlushTLBRange(w.ctx, userVA, userVA+8*page)
	w.sys.FlushTLBMM(w.ctx)
	w.sys.FlushTLBAll()
	mt := w.ctx.Meter()
	if mt.Count(cost.TLBFlushPage) != 1 || mt.Count(cost.TLBFlushRange) != 1 || mt.Count(cost.TLBFlushMM) != 1 || w.km.Count(cost.TLBFlushAll) != 1 {
		t.Fatal("flush calls not counted")
	}
	for _, m := range []*cost.Meter{mt, w.km} {
		if n := m.Count(cost.TLBInvalidated) + m.Count(cost.IPTEOps) + m.Count(cost.IDTEOps); n != 0 {
			t.Fatalf("%s: a no-op flush did work (%d)", m.Name, n)
		}
	}
	if got := w.left(); !eq(got, []int{9, 9}) {
		t.Fatalf("entries left %v", got)
	}
}

// TestS390LiveStore: a plain store over a live leaf is a violation (a
// plain pmd_clear of a live 1 MiB segment leaf, a plain pte clear); the
// exchanges are not; a table entry pointing at an empty table may be
// cleared plainly.
func TestS390LiveStore(t *testing.T) {
	w := newWorld(t, 2, []int{0, 1}, []int{0, 1})
	pmdp, _ := w.pt.Walk(hugeVA, pgtable.PMD)
	w.pt.RawClear(hugeVA, pmdp) // pmd_clear of a live leaf: needs IDTE
	v := w.sys.Violations()
	if len(v) != 1 || !strings.Contains(v[0].String(), "user pmd 0x1040000000: plain store over a live pmd entry (needs IDTE)") {
		t.Fatalf("violations %v", v)
	}
	w.pt.RawClear(userVA, w.ptep(0)) // __pte_clear of a live pte: needs IPTE
	if v := w.sys.Violations(); len(v) != 1 || !strings.Contains(v[0].Reason, "needs IPTE") {
		t.Fatalf("violations %v", v)
	}
	// The public functions exchange: no violation.
	w.pt.PTEClear(userVA+page, w.ptep(1))
	w.pt.ClearFullPTEs(userVA+2*page, w.ptep(2), 6, false)
	if v := w.sys.Violations(); len(v) != 0 {
		t.Fatalf("exchanges flagged: %v", v)
	}
	// The segment entry of the now empty page table: a plain clear.
	tbl, _ := w.pt.Walk(userVA, pgtable.PMD)
	if tbl.Child() == nil || tbl.Child().Used() != 0 {
		t.Fatalf("page table not empty")
	}
	g := w.sys.NewGather(w.ctx, false)
	w.pt.FreePgtables(userVA, userVA+segSize, 0, hugeVA, g)
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	if v := w.sys.Violations(); len(v) != 0 {
		t.Fatalf("clearing a table entry flagged: %v", v)
	}
}

// TestS390Gather: the mmu_gather's flush is __tlb_flush_mm_lazy; freeing
// a table sets flush_mm, so an unmap that frees its page table purges
// the whole mm once, on every CPU, before the table is freed.
func TestS390Gather(t *testing.T) {
	w := newWorld(t, 2, []int{0, 1}, []int{0, 1})
	mt := w.ctx.Meter()
	g := w.sys.NewGather(w.ctx, false)
	w.pt.ClearFullPTEs(userVA, w.ptep(0), 8, false)
	g.AddRange(userVA, userVA+8*page, 12)
	if mt.Count(cost.IPTEOps) != 8 {
		t.Fatalf("two attached CPUs: %d IPTEs, want 8", mt.Count(cost.IPTEOps))
	}
	pte := tlb.TableFor(w.pt, userVA, pgtable.PTE)
	w.pt.FreePgtables(userVA, userVA+segSize, 0, hugeVA, g)
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	if !pte.Freed() || mt.Count(cost.TLBFlushMM) != 1 || mt.Count(cost.IDTEOps) != 1 {
		t.Fatalf("freed %v, flush_mm calls %d, idte %d", pte.Freed(), mt.Count(cost.TLBFlushMM), mt.Count(cost.IDTEOps))
	}
	for cpu := 0; cpu < 2; cpu++ {
		if n := w.sys.CPU(cpu).WalkCached(w.ctx); n != 0 {
			t.Fatalf("cpu%d keeps %d walk-cache entries", cpu, n)
		}
	}
	mustClean(t, w.sys)
}

// TestS390KernelFlush: flush_tlb_kernel_range is an IDTE of the kernel
// ASCE: every kernel translation goes on every CPU, user ones stay.
func TestS390KernelFlush(t *testing.T) {
	w := newWorld(t, 2, []int{0, 1}, []int{0, 1})
	kpt, kctx := w.mm("kernel", true)
	if err := kpt.Map(kernelVA, 4*page, 0x300, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < 2; cpu++ {
		for i := uint64(0); i < 4; i++ {
			fill(t, w.sys.CPU(cpu), kctx, kernelVA+i*page)
		}
	}
	w.sys.FlushTLBKernelRange(kernelVA, kernelVA+page)
	if w.km.Count(cost.IDTEOps) != 1 || w.km.Count(cost.TLBInvalidated) != 8 {
		t.Fatalf("idte %d invalidated %d", w.km.Count(cost.IDTEOps), w.km.Count(cost.TLBInvalidated))
	}
	if got := w.left(); !eq(got, []int{9, 9}) {
		t.Fatalf("user entries left %v", got)
	}
	mustClean(t, w.sys)
}

// TestS390Machine: the machine runs with the s390 policy and PTE
// operations: munmap by an mm attached to one CPU clears lazily and
// purges once at the gather's flush; attached to two CPUs it issues one
// IPTE per present pte and the flush has nothing left to purge but the
// freed table.
func TestS390Machine(t *testing.T) {
	for _, c := range []struct {
		name       string
		cpus       []int
		ipte, idte uint64
	}{
		{"one CPU: lazy, one IDTE", []int{0}, 0, 1},
		{"two CPUs: 16 IPTEs, one IDTE for the freed table", []int{0, 1}, 16, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := archs.ByName("s390x")
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
				for _, cpu := range c.cpus {
					if err := mm.Write(cpu, userVA+i*page, i); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			mm.Meter().Reset()
			if err := mm.Munmap(userVA, 16*page); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			mt := mm.Meter()
			if mt.Count(cost.IPTEOps) != c.ipte || mt.Count(cost.IDTEOps) != c.idte || mt.Count(cost.TLBIPIs) != 0 {
				t.Fatalf("ipte %d idte %d ipis %d, want %d %d 0", mt.Count(cost.IPTEOps), mt.Count(cost.IDTEOps), mt.Count(cost.TLBIPIs), c.ipte, c.idte)
			}
		})
	}
}

// scenario runs a fixed sequence of exchanges and flushes on 3 CPUs
// with tracing on and returns the trace.
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
		if err := pt.Map(userVA, 32*page, phys.PFN(0x1000*(i+1)), pgtable.MapOpts{Prot: rw}); err != nil {
			t.Fatal(err)
		}
		pts, ctxs = append(pts, pt), append(ctxs, ctx)
	}
	for step := 0; step < 30; step++ {
		cpu := step % 3
		k := (step * 5) % 2
		c := m.sys.CPU(cpu)
		c.Switch(ctxs[k])
		va := userVA + uint64(step*7%32)*page
		if _, ok := ctxs[k].PageTable().Lookup(va); !ok {
			if err := pts[k].Map(va, page, phys.PFN(0x3000+step), pgtable.MapOpts{Prot: rw}); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := c.Lookup(ctxs[k], va); !ok {
			fill(t, c, ctxs[k], va)
		}
		if err := m.sys.SetLocalCPU(cpu); err != nil {
			t.Fatal(err)
		}
		p, _ := pts[k].Walk(va, pgtable.PTE)
		switch step % 4 {
		case 0:
			pts[k].PtepGetAndClear(va, p)
			m.sys.FlushTLBRange(ctxs[k], va, va+page)
		case 1:
			pts[k].PtepTestAndClearYoung(va, p)
		case 2:
			pts[k].PtepSetWrprotect(va, p)
			m.sys.FlushTLBMM(ctxs[k])
		case 3:
			m.sys.FlushTLBPage(ctxs[k], va)
		}
		for _, s := range m.sys.Validate() {
			fmt.Fprintln(&buf, "stale:", s)
		}
	}
	return buf.String()
}

// TestS390TraceDeterministic: the same operations give a byte-identical
// trace under GOMAXPROCS=1 and 2.
func TestS390TraceDeterministic(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	one := scenario(t)
	runtime.GOMAXPROCS(2)
	two := scenario(t)
	if one != two {
		t.Fatal("traces differ between GOMAXPROCS=1 and 2")
	}
	for _, want := range []string{"ipte_ops", "idte_ops", "tlb_invalidated"} {
		if !strings.Contains(one, want) {
			t.Errorf("trace lacks %s", want)
		}
	}
	if strings.Contains(one, "stale:") {
		t.Errorf("the scenario left stale entries:\n%s", one)
	}
}
