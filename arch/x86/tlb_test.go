package x86_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

const (
	userVA   = 0x7f00_0000_0000
	hugeVA   = 0x7f00_4000_0000
	kernelVA = 0xffff_8880_0000_0000
	page     = 4096
	pmdSize  = 2 << 20
	rw       = pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared
)

// machine is an x86-64 TLB system with the x86 policy.
type machine struct {
	t      testing.TB
	a      *arch.Arch
	mem    *phys.Memory
	sys    *tlb.System
	policy *x86.TLBPolicy
	km     *cost.Meter
}

func newMachine(t testing.TB, cpus int, plat arch.Platform) *machine {
	t.Helper()
	a := x86.New(x86.FourLevel)
	mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 18})
	if err != nil {
		t.Fatal(err)
	}
	plat.CPUs = cpus
	pol, ok := a.NewTLBPolicy(plat).(*x86.TLBPolicy)
	if !ok {
		t.Fatal("x86 does not build an x86 TLB policy")
	}
	km := &cost.Meter{Name: "kernel"}
	sys, err := tlb.New(tlb.Config{CPUs: cpus, Policy: pol, KernelMeter: km})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, a: a, mem: mem, sys: sys, policy: pol, km: km}
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

// fill caches the translation of va on c, as the MMU does after a walk,
// with the walk's tables in the walk cache.
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
	shift := uint8(12)
	if tr.Level == pgtable.PMD {
		shift = 21
	}
	base := va &^ (tr.Size - 1)
	c.Insert(ctx, tlb.Entry{VA: base, Shift: shift, PFN: tr.PFN - phys.PFN((va-base)>>12), Perm: perm, Level: tr.Level})
	for l := pgtable.PUD; l <= tr.Level; l++ {
		c.WalkCacheInsert(ctx, va, l, tlb.TableFor(pt, va, l))
	}
}

func mustClean(t testing.TB, sys *tlb.System) {
	t.Helper()
	if s := sys.Validate(); len(s) != 0 {
		t.Fatalf("validator reports stale entries: %v", s)
	}
}

// world is the common setup: 2 CPUs running mm "user" (CPU 0 local);
// 40 user pages and 2 huge 2M pages cached on both, and 40 global kernel
// pages; meters reset.
type world struct {
	*machine
	pt, kpt   *pgtable.PageTable
	ctx, kctx *tlb.Context
}

func newWorld(t *testing.T) *world {
	m := newMachine(t, 2, arch.Platform{})
	w := &world{machine: m}
	w.kpt, w.kctx = m.mm("kernel", true)
	w.pt, w.ctx = m.mm("user", false)
	if err := w.pt.Map(userVA, 40*page, 0x1000, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	if err := w.pt.Map(hugeVA, 2*pmdSize, 0x2000, pgtable.MapOpts{Prot: rw, Huge: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.kpt.Map(kernelVA, 40*page, 0x3000, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < 2; cpu++ {
		c := m.sys.CPU(cpu)
		c.Switch(w.ctx)
		for i := uint64(0); i < 40; i++ {
			fill(t, c, w.ctx, userVA+i*page)
			fill(t, c, w.kctx, kernelVA+i*page)
		}
		fill(t, c, w.ctx, hugeVA)
		fill(t, c, w.ctx, hugeVA+pmdSize)
	}
	w.ctx.Meter().Reset()
	m.km.Reset()
	mustClean(t, m.sys)
	return w
}

// TestX86FlushKinds: each flush call invalidates exactly what Linux's
// x86 code does, with the 33-page ceiling, and costs the INVLPGs, full
// flushes and IPIs it would.
func TestX86FlushKinds(t *testing.T) {
	// invlpg and full are the initiator's (CPU 0's) INVLPGs and full
	// flushes for kernel flushes, every CPU's for mm flushes; remote and
	// remoteFull are the other CPUs' for kernel flushes, which run in
	// parallel with the initiator and so are counted apart.
	type want struct {
		call                           cost.Event
		invlpg, full, ipis, dropped    uint64
		remote, remoteFull             uint64
		userLeft, kernelLeft, walkLeft int // per CPU
		kernelMeter                    bool
	}
	const user, kernel = 42, 40 // cached entries per CPU
	cases := []struct {
		name  string
		tune  uint64 // ceiling, if not 0
		flush func(w *world)
		want  want
	}{
		{"flush_tlb_page: one INVLPG per CPU in the mask", 0,
			func(w *world) { w.sys.FlushTLBPage(w.ctx, userVA+5*page) },
			want{call: cost.TLBFlushPage, invlpg: 2, ipis: 1, dropped: 2, userLeft: user - 1, kernelLeft: kernel}},
		{"33 pages: 33 INVLPG", 0,
			func(w *world) { w.sys.FlushTLBRange(w.ctx, userVA, userVA+33*page) },
			want{call: cost.TLBFlushRange, invlpg: 66, ipis: 1, dropped: 66, userLeft: user - 33, kernelLeft: kernel}},
		{"34 pages: full flush of the mm", 0,
			func(w *world) { w.sys.FlushTLBRange(w.ctx, userVA, userVA+34*page) },
			want{call: cost.TLBFlushRange, full: 2, ipis: 1, dropped: 2 * user, kernelLeft: kernel}},
		{"PMD stride: one INVLPG drops a whole 2M entry", 0,
			func(w *world) { w.sys.FlushTLBMMRange(w.ctx, hugeVA, hugeVA+2*pmdSize, 21, false) },
			want{call: cost.TLBFlushRange, invlpg: 4, ipis: 1, dropped: 4, userLeft: user - 2, kernelLeft: kernel}},
		{"flush_tlb_mm", 0,
			func(w *world) { w.sys.FlushTLBMM(w.ctx) },
			want{call: cost.TLBFlushMM, full: 2, ipis: 1, dropped: 2 * user, kernelLeft: kernel}},
		{"ceiling 0: even one page is a full flush", 0,
			func(w *world) {
				if err := w.policy.Tune(x86.CeilingTunable, 0); err != nil {
					w.t.Fatal(err)
				}
				w.sys.FlushTLBPage(w.ctx, userVA)
			},
			want{call: cost.TLBFlushPage, full: 2, ipis: 1, dropped: 2 * user, kernelLeft: kernel}},
		{"ceiling 40: 40 pages flushed one by one", 0,
			func(w *world) {
				if err := w.policy.Tune(x86.CeilingTunable, 40); err != nil {
					w.t.Fatal(err)
				}
				w.sys.FlushTLBRange(w.ctx, userVA, userVA+40*page)
			},
			want{call: cost.TLBFlushRange, invlpg: 80, ipis: 1, dropped: 80, userLeft: user - 40, kernelLeft: kernel}},
		{"kernel range of 33 pages: INVLPG on every CPU", 0,
			func(w *world) { w.sys.FlushTLBKernelRange(kernelVA, kernelVA+33*page) },
			want{call: cost.TLBFlushKernel, invlpg: 33, remote: 33, ipis: 1, dropped: 66, userLeft: user, kernelLeft: kernel - 33, walkLeft: -1, kernelMeter: true}},
		{"kernel range of 34 pages: flush_tlb_all on every CPU", 0,
			func(w *world) { w.sys.FlushTLBKernelRange(kernelVA, kernelVA+34*page) },
			want{call: cost.TLBFlushKernel, full: 1, remoteFull: 1, ipis: 1, dropped: 2 * (user + kernel), kernelMeter: true}},
		{"flush_tlb_all", 0,
			func(w *world) { w.sys.FlushTLBAll() },
			want{call: cost.TLBFlushAll, full: 1, remoteFull: 1, ipis: 1, dropped: 2 * (user + kernel), kernelMeter: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			c.flush(w)
			m := w.ctx.Meter()
			if c.want.kernelMeter {
				m = w.km
			}
			got := want{call: c.want.call, invlpg: m.Count(cost.Invlpg), full: m.Count(cost.LocalFullFlushes),
				ipis: m.Count(cost.TLBIPIs), dropped: m.Count(cost.TLBInvalidated), kernelMeter: c.want.kernelMeter,
				remote: m.Count(cost.RemoteInvlpg), remoteFull: m.Count(cost.RemoteFullFlushes)}
			if m.Count(c.want.call) != 1 {
				t.Errorf("%s counted %d times", c.want.call, m.Count(c.want.call))
			}
			for cpu := 0; cpu < 2; cpu++ {
				cp := w.sys.CPU(cpu)
				got.userLeft = cp.LiveFor(w.ctx)
				got.kernelLeft = cp.Live() - cp.LiveFor(w.ctx)
				got.walkLeft = cp.WalkCached(w.ctx)
				wantWalk := c.want.walkLeft
				if wantWalk < 0 {
					wantWalk = got.walkLeft // kernel INVLPG leaves user walk caches alone
				}
				exp := c.want
				exp.walkLeft = wantWalk
				if got != exp {
					t.Errorf("cpu%d:\n got %+v\nwant %+v", cpu, got, exp)
				}
			}
			mustClean(t, w.sys)
		})
	}
}

// TestX86IPIsPerCPUMask: a flush of an mm sends one IPI per other CPU in
// its mm_cpumask, none to CPUs running other mms, whose entries stay; a
// kernel flush sends one to every other CPU; in a VM every IPI traps.
func TestX86IPIsPerCPUMask(t *testing.T) {
	for _, c := range []struct {
		name    string
		local   int
		virt    bool
		ipis    uint64
		flushed []int
	}{
		{"local CPU in the mask", 0, false, 3, []int{0, 2, 5, 7}},
		{"local CPU outside the mask", 3, false, 4, []int{0, 2, 5, 7}},
		{"in a VM", 7, true, 3, []int{0, 2, 5, 7}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t, 8, arch.Platform{Virtualized: c.virt})
			ptA, a := m.mm("a", false)
			ptB, b := m.mm("b", false)
			for _, pt := range []*pgtable.PageTable{ptA, ptB} {
				if err := pt.Map(userVA, 4*page, 0x100, pgtable.MapOpts{Prot: rw}); err != nil {
					t.Fatal(err)
				}
			}
			for cpu := 0; cpu < 8; cpu++ {
				ctx := b
				if slices.Contains(c.flushed, cpu) {
					ctx = a
				}
				m.sys.CPU(cpu).Switch(ctx)
				fill(t, m.sys.CPU(cpu), ctx, userVA)
			}
			if err := m.sys.SetLocalCPU(c.local); err != nil {
				t.Fatal(err)
			}
			a.Meter().Reset()
			m.sys.FlushTLBRange(a, userVA, userVA+4*page)
			if got := a.Meter().Count(cost.TLBIPIs); got != c.ipis {
				t.Errorf("tlb_ipis %d, want %d", got, c.ipis)
			}
			wantExits := uint64(0)
			if c.virt {
				wantExits = c.ipis
			}
			if got := a.Meter().Count(cost.IPIVMExits); got != wantExits {
				t.Errorf("ipi_vm_exits %d, want %d", got, wantExits)
			}
			if got := a.Meter().Count(cost.Invlpg); got != uint64(4*len(c.flushed)) {
				t.Errorf("invlpg %d, want %d", got, 4*len(c.flushed))
			}
			for cpu := 0; cpu < 8; cpu++ {
				left := m.sys.CPU(cpu).Live()
				if slices.Contains(c.flushed, cpu) == (left != 0) {
					t.Errorf("cpu%d: %d entries left", cpu, left)
				}
			}
			m.km.Reset()
			m.sys.FlushTLBKernelRange(kernelVA, kernelVA+page)
			if got := m.km.Count(cost.TLBIPIs); got != 7 {
				t.Errorf("kernel flush: %d IPIs, want 7", got)
			}
		})
	}
}

// TestX86KernelShootdownElapsed: a kernel flush runs on every CPU at
// once, so the initiator's elapsed work is its own invalidations and one
// IPI per target, however many CPUs flush: the targets' INVLPGs and full
// flushes are counted apart (remote_invlpg, remote_full_flushes), one
// per target CPU, and grow with the CPUs while invlpg and
// local_full_flushes do not.
func TestX86KernelShootdownElapsed(t *testing.T) {
	for _, cpus := range []int{1, 2, 8, 64} {
		m := newMachine(t, cpus, arch.Platform{})
		m.mm("kernel", true)
		m.sys.FlushTLBKernelRange(kernelVA, kernelVA+8*page)
		m.sys.FlushTLBAll()
		targets := uint64(cpus - 1)
		got := [5]uint64{m.km.Count(cost.Invlpg), m.km.Count(cost.RemoteInvlpg), m.km.Count(cost.LocalFullFlushes),
			m.km.Count(cost.RemoteFullFlushes), m.km.Count(cost.TLBIPIs)}
		want := [5]uint64{8, 8 * targets, 1, targets, 2 * targets}
		if got != want {
			t.Errorf("%d CPUs: invlpg, remote_invlpg, local_full, remote_full, ipis = %v, want %v", cpus, got, want)
		}
	}
}

// TestX86TLBGenCatchUp: a CPU that switched away keeps its entries of the
// old mm; flushes of that mm skip it (no IPI), and its entries, now
// behind the mm's tlb_gen, are unreachable: not stale. Switching back, it
// finds its PCID slot behind and flushes. Without any flush its slot
// stays current, so an unflushed change is still caught.
func TestX86TLBGenCatchUp(t *testing.T) {
	m := newMachine(t, 2, arch.Platform{})
	pt, a := m.mm("a", false)
	_, b := m.mm("b", false)
	if err := pt.Map(userVA, 2*page, 0x100, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	c0, c1 := m.sys.CPU(0), m.sys.CPU(1)
	c0.Switch(a)
	c1.Switch(a)
	fill(t, c1, a, userVA)
	fill(t, c1, a, userVA+page)
	c1.Switch(b)
	if a.InMask(1) {
		t.Fatal("CPU 1 still in a's mask")
	}
	// An unflushed change while CPU 1 is away: its slot is current, so
	// the entry is reachable and stale.
	p, _ := pt.Walk(userVA+page, pgtable.PTE)
	pt.PtepSetWrprotect(userVA+page, p)
	if s := m.sys.Validate(); len(s) != 1 || s[0].CPU != 1 || s[0].VA != userVA+page {
		t.Fatalf("unflushed change on an away CPU: %v", s)
	}
	// Now the proper flush: no IPI to CPU 1, which keeps its entries,
	// unreachable.
	a.Meter().Reset()
	m.sys.FlushTLBPage(a, userVA+page)
	if n := a.Meter().Count(cost.TLBIPIs); n != 0 {
		t.Fatalf("%d IPIs to a CPU outside the mask", n)
	}
	if c1.LiveFor(a) != 2 {
		t.Fatalf("CPU 1 holds %d of a's entries, want 2 (untouched)", c1.LiveFor(a))
	}
	mustClean(t, m.sys)
	// Back to a: the slot is behind, so the switch flushes.
	c1.Switch(a)
	if n := a.Meter().Count(cost.LocalFullFlushes); n != 1 {
		t.Fatalf("%d full flushes on switch, want 1", n)
	}
	if c1.LiveFor(a) != 0 {
		t.Fatal("catch-up flush left entries")
	}
	mustClean(t, m.sys)
	// And back to b, whose slot is up to date: no flush.
	b.Meter().Reset()
	c1.Switch(b)
	if n := b.Meter().Count(cost.LocalFullFlushes); n != 0 {
		t.Fatalf("switch to an up-to-date slot flushed %d times", n)
	}
}

// TestX86PCIDSlots: each CPU keeps 6 mms in its PCID slots; switching
// among them needs no flush and keeps their entries; a seventh takes a
// slot round robin, dropping the entries of the mm that held it.
func TestX86PCIDSlots(t *testing.T) {
	m := newMachine(t, 1, arch.Platform{})
	c := m.sys.CPU(0)
	var ctxs []*tlb.Context
	for i := 0; i < 7; i++ {
		pt, ctx := m.mm(fmt.Sprintf("mm%d", i), false)
		if err := pt.Map(userVA, page, phys.PFN(0x100+i), pgtable.MapOpts{Prot: rw}); err != nil {
			t.Fatal(err)
		}
		ctxs = append(ctxs, ctx)
	}
	fulls := func() uint64 {
		n := uint64(0)
		for _, ctx := range ctxs {
			n += ctx.Meter().Count(cost.LocalFullFlushes)
		}
		return n
	}
	for _, ctx := range ctxs[:6] {
		c.Switch(ctx)
		fill(t, c, ctx, userVA)
	}
	if n := fulls(); n != 6 {
		t.Fatalf("%d flushes for 6 first switches, want 6", n)
	}
	for _, ctx := range ctxs[:6] {
		c.Switch(ctx)
		if _, ok := c.Lookup(ctx, userVA); !ok {
			t.Fatalf("%s lost its entry", ctx)
		}
	}
	if n := fulls(); n != 6 {
		t.Fatalf("switching among 6 slotted mms flushed %d times", n-6)
	}
	c.Switch(ctxs[6]) // takes slot 0 from mm0
	slots, loaded := m.policy.Slots(0)
	if slots[0] != ctxs[6] || loaded != 0 || c.LiveFor(ctxs[0]) != 0 {
		t.Fatalf("slots %v loaded %d, mm0 entries %d", slots, loaded, c.LiveFor(ctxs[0]))
	}
	c.Switch(ctxs[1])
	if _, ok := c.Lookup(ctxs[1], userVA); !ok || fulls() != 7 {
		t.Fatalf("mm1 lost its slot (flushes %d)", fulls())
	}
	c.Switch(ctxs[0]) // takes slot 1 from mm1
	if fulls() != 8 || c.LiveFor(ctxs[1]) != 0 {
		t.Fatalf("mm0's return: flushes %d, mm1 entries %d", fulls(), c.LiveFor(ctxs[1]))
	}
	mustClean(t, m.sys)
}

// TestX86TableMove: after a PTE table is moved to another PMD entry, the
// walk cache still points the old range at it. INVLPG of any address
// drops every paging-structure cache entry of the PCID, but not the
// other TLB entries of the old range; flush_tlb_range of the old 2M range
// (512 pages, above the ceiling) is a full flush and clears everything.
func TestX86TableMove(t *testing.T) {
	m := newMachine(t, 1, arch.Platform{})
	pt, ctx := m.mm("mm", false)
	const oldVA, newVA = userVA, userVA + 1<<30
	if err := pt.Map(oldVA, 8*page, 0x80, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	if err := pt.Map(newVA+pmdSize, page, 0x90, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	c := m.sys.CPU(0)
	c.Switch(ctx)
	for i := uint64(0); i < 8; i++ {
		fill(t, c, ctx, oldVA+i*page)
	}
	src, _ := pt.Walk(oldVA, pgtable.PMD)
	dst, _ := pt.Walk(newVA, pgtable.PMD)
	pt.Populate(newVA, dst, pt.ClearTable(oldVA, src))
	walkStale := func() (walk, leaf int) {
		for _, s := range m.sys.Validate() {
			if s.WalkCache {
				walk++
			} else {
				leaf++
			}
		}
		return
	}
	if w, l := walkStale(); w != 1 || l != 8 {
		t.Fatalf("after the move: %d walk-cache and %d TLB reports, want 1 and 8", w, l)
	}
	m.sys.FlushTLBPage(ctx, newVA+pmdSize) // unrelated page
	if w, l := walkStale(); w != 0 || l != 8 {
		t.Fatalf("after an INVLPG elsewhere: %d walk-cache and %d TLB reports, want 0 and 8", w, l)
	}
	ctx.Meter().Reset()
	m.sys.FlushTLBRange(ctx, oldVA, oldVA+pmdSize)
	if ctx.Meter().Count(cost.LocalFullFlushes) != 1 || ctx.Meter().Count(cost.Invlpg) != 0 {
		t.Fatal("a 2M flush_tlb_range was not a full flush")
	}
	mustClean(t, m.sys)
}

// TestX86Gather: an unmap through the gather costs one flush_tlb_range;
// its stride and freed_tables follow what was gathered; tables are freed
// after it.
func TestX86Gather(t *testing.T) {
	m := newMachine(t, 2, arch.Platform{})
	pt, ctx := m.mm("mm", false)
	if err := pt.Map(userVA, 8*page, 0x80, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	for cpu := 0; cpu < 2; cpu++ {
		m.sys.CPU(cpu).Switch(ctx)
		for i := uint64(0); i < 8; i++ {
			fill(t, m.sys.CPU(cpu), ctx, userVA+i*page)
		}
	}
	mc := ctx.Meter()
	// Three PTEs: three INVLPG on each CPU of the mask, one IPI.
	mc.Reset()
	g := m.sys.NewGather(ctx, false)
	for i := uint64(0); i < 3; i++ {
		p, _ := pt.Walk(userVA+i*page, pgtable.PTE)
		pt.PTEClear(userVA+i*page, p)
		g.AddRange(userVA+i*page, userVA+(i+1)*page, 12)
	}
	g.Finish()
	if mc.Count(cost.TLBFlushRange) != 1 || mc.Count(cost.Invlpg) != 6 || mc.Count(cost.TLBIPIs) != 1 || mc.Count(cost.TLBInvalidated) != 6 {
		t.Fatalf("flush_range %d invlpg %d ipis %d invalidated %d", mc.Count(cost.TLBFlushRange), mc.Count(cost.Invlpg), mc.Count(cost.TLBIPIs), mc.Count(cost.TLBInvalidated))
	}
	mustClean(t, m.sys)
	// The rest, with its tables.
	mc.Reset()
	g = m.sys.NewGather(ctx, false)
	for i := uint64(3); i < 8; i++ {
		p, _ := pt.Walk(userVA+i*page, pgtable.PTE)
		pt.PTEClear(userVA+i*page, p)
		g.AddRange(userVA+i*page, userVA+(i+1)*page, 12)
	}
	pte := tlb.TableFor(pt, userVA, pgtable.PTE)
	pt.FreePgtables(userVA, userVA+pmdSize, 0, 0, g)
	if pte.Freed() || g.PendingTables() != 3 {
		t.Fatalf("freed %v, %d tables pending, want 3", pte.Freed(), g.PendingTables())
	}
	g.Finish()
	if !pte.Freed() || mc.Count(cost.TLBFlushRange) != 1 || mc.Count(cost.PTFrees) != 3 {
		t.Fatalf("after Finish: freed %v, flushes %d, pt_frees %d", pte.Freed(), mc.Count(cost.TLBFlushRange), mc.Count(cost.PTFrees))
	}
	mustClean(t, m.sys)
	// A full-mm gather is flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL) on x86.
	mc.Reset()
	g = m.sys.NewGather(ctx, true)
	g.AddRange(userVA, userVA+page, 12)
	g.Finish()
	if mc.Count(cost.TLBFlushRange) != 1 || mc.Count(cost.TLBFlushMM) != 0 || mc.Count(cost.LocalFullFlushes) != 2 {
		t.Fatalf("full-mm gather: range %d mm %d full %d", mc.Count(cost.TLBFlushRange), mc.Count(cost.TLBFlushMM), mc.Count(cost.LocalFullFlushes))
	}
}

// TestX86KernelWalkCache: kernel tables are reachable from every CPU
// whatever mm it runs, so a freed kernel table left in a walk cache is
// caught, and flush_tlb_kernel_range over it clears it.
func TestX86KernelWalkCache(t *testing.T) {
	m := newMachine(t, 2, arch.Platform{})
	kpt, kctx := m.mm("kernel", true)
	_, u := m.mm("user", false)
	if err := kpt.Map(kernelVA, 2*page, 0x300, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	m.sys.CPU(1).Switch(u)
	fill(t, m.sys.CPU(1), kctx, kernelVA)
	pte := tlb.TableFor(kpt, kernelVA, pgtable.PTE)
	if err := kpt.Unmap(kernelVA, 2*page); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range m.sys.Validate() {
		if s.WalkCache && s.CPU == 1 && s.Cached.PFN == pte.PFN() && strings.HasSuffix(s.Reason, "freed") {
			found = true
		}
	}
	if !found {
		t.Fatalf("freed kernel table not caught: %v", m.sys.Validate())
	}
	m.sys.FlushTLBKernelRange(kernelVA, kernelVA+2*page)
	mustClean(t, m.sys)
}

func TestX86Tune(t *testing.T) {
	p := x86.NewTLBPolicy(arch.Platform{})
	var tn tlb.Tunable = p
	if !slices.Equal(tn.Tunables(), []string{x86.CeilingTunable}) || p.Ceiling != 33 || p.DynASIDs != 6 {
		t.Fatalf("defaults: %+v", p)
	}
	if err := tn.Tune("nope", 1); !errors.Is(err, pgtable.EINVAL) {
		t.Fatalf("unknown tunable: %v", err)
	}
}

// scenario runs a fixed sequence of operations on 4 CPUs with tracing on
// and returns the trace.
func scenario(t *testing.T) string {
	var buf bytes.Buffer
	tr := cost.TextTracer{W: &buf}
	m := newMachine(t, 4, arch.Platform{Virtualized: true})
	m.km.SetTracer(tr)
	kpt, kctx := m.mm("kernel", true)
	kctx.Meter().SetTracer(tr)
	if err := kpt.Map(kernelVA, 8*page, 0x300, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	var pts []*pgtable.PageTable
	var ctxs []*tlb.Context
	for i := 0; i < 3; i++ {
		pt, ctx := m.mm(fmt.Sprintf("mm%d", i), false)
		ctx.Meter().SetTracer(tr)
		if err := pt.Map(userVA, 48*page, phys.PFN(0x1000*(i+1)), pgtable.MapOpts{Prot: rw}); err != nil {
			t.Fatal(err)
		}
		pts, ctxs = append(pts, pt), append(ctxs, ctx)
	}
	for step := 0; step < 40; step++ {
		cpu := step % 4
		ctx := ctxs[(step*7)%3]
		c := m.sys.CPU(cpu)
		c.Switch(ctx)
		va := userVA + uint64(step*5%48)*page
		if _, ok := c.Lookup(ctx, va); !ok {
			fill(t, c, ctx, va)
			if _, ok := c.Lookup(ctx, va); !ok {
				t.Fatalf("step %d: no hit after the fill", step)
			}
		}
		if _, ok := c.Lookup(kctx, kernelVA+uint64(step%8)*page); !ok {
			fill(t, c, kctx, kernelVA+uint64(step%8)*page)
		}
		if err := m.sys.SetLocalCPU(cpu); err != nil {
			t.Fatal(err)
		}
		switch step % 5 {
		case 0:
			m.sys.FlushTLBPage(ctx, va)
		case 1:
			m.sys.FlushTLBRange(ctx, userVA, userVA+uint64(step)*page)
		case 2:
			g := m.sys.NewGather(ctx, false)
			g.AddRange(va, va+page, 12)
			g.AddRange(userVA+40*page, userVA+42*page, 12)
			g.Finish()
		case 3:
			m.sys.FlushTLBKernelRange(kernelVA, kernelVA+uint64(step)*page)
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

// TestX86TraceDeterministic: the same operations give a byte-identical
// trace under GOMAXPROCS=1 and 2.
func TestX86TraceDeterministic(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	one := scenario(t)
	runtime.GOMAXPROCS(2)
	two := scenario(t)
	if one != two {
		t.Fatal("traces differ between GOMAXPROCS=1 and 2")
	}
	for _, want := range []string{"tlb_ipis", "ipi_vm_exits", "invlpg", "local_full_flushes", "tlb_invalidated", "tlb_flush_kernel", "tlb_hits", "tlb_fills"} {
		if !strings.Contains(one, want) {
			t.Errorf("trace lacks %s", want)
		}
	}
	if strings.Contains(one, "stale:") {
		t.Errorf("the scenario left stale entries:\n%s", one)
	}
}
