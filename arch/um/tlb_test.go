package um_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/arch/um"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

const (
	userVA   = 0x10_0000_0000
	kernelVA = 0x70_0000_0000 // kernel addresses overlap user ones: keep apart
	page     = 4096
	rw       = pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared
)

// machine is a UML TLB system with the UML policy.
type machine struct {
	t      testing.TB
	a      *arch.Arch
	mem    *phys.Memory
	sys    *tlb.System
	policy *um.TLBPolicy
	km     *cost.Meter
}

func newMachine(t testing.TB, v um.Variant, cpus int) *machine {
	t.Helper()
	a := um.New(v)
	mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 10})
	if err != nil {
		t.Fatal(err)
	}
	pol, ok := a.NewTLBPolicy(arch.Platform{CPUs: cpus}).(*um.TLBPolicy)
	if !ok {
		t.Fatal("um does not build a UML TLB policy")
	}
	km := &cost.Meter{Name: "kernel"}
	sys, err := tlb.New(tlb.Config{CPUs: cpus, Policy: pol, KernelMeter: km})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, a: a, mem: mem, sys: sys, policy: pol, km: km}
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
	return pt, m.sys.NewContext(name, pt, meter, kernel)
}

// access does what the machine does for an access by c: a lookup (which
// syncs first) and, on a miss, a fill from the tables.
func access(t testing.TB, c *tlb.CPU, ctx *tlb.Context, va uint64) {
	t.Helper()
	if _, ok := c.Lookup(ctx, va); ok {
		return
	}
	pt := ctx.PageTable()
	tr, ok := pt.Lookup(va)
	if !ok {
		t.Fatalf("access %#x: not mapped", va)
	}
	perm := tlb.PermRead | tlb.PermUser
	if pt.Kernel() {
		perm |= tlb.PermGlobal
	}
	c.Insert(ctx, tlb.Entry{VA: va &^ (page - 1), Shift: 12, PFN: tr.PFN, Perm: perm, Level: tr.Level})
	for l := pt.RootLevel() + 1; l <= tr.Level; l++ {
		c.WalkCacheInsert(ctx, va, l, tlb.TableFor(pt, va, l))
	}
}

func mustClean(t testing.TB, sys *tlb.System) {
	t.Helper()
	if s := sys.Validate(); len(s) != 0 {
		t.Fatalf("validator reports %d stale entries, first %v", len(s), s[0])
	}
}

// needSync counts the ptes of [va, va+n pages) that carry _PAGE_NEEDSYNC.
func needSync(pt *pgtable.PageTable, va, n uint64) int {
	k := 0
	for i := uint64(0); i < n; i++ {
		if p, ok := pt.Walk(va+i*page, pgtable.PTE); ok && p.Peek()&um.NeedSync != 0 {
			k++
		}
	}
	return k
}

// TestUMSyncAtNextAccess: writing ptes and calling the flush API cost no
// host syscall; the next access by any CPU syncs the pending range, one
// host syscall per pte needing it (mmap for a mapped page, munmap for a
// cleared one), clears _PAGE_NEEDSYNC and drops the changed pages from
// every CPU; until then the changed pages' old entries are unreachable.
func TestUMSyncAtNextAccess(t *testing.T) {
	m := newMachine(t, um.UM64, 2)
	pt, ctx := m.mm("user", false)
	mt := ctx.Meter()
	if err := pt.Map(userVA, 10*page, 0x100, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	if from, to, ok := um.PendingSync(ctx); !ok || from > userVA || to < userVA+10*page {
		t.Fatalf("pending %#x-%#x %v after set_ptes", from, to, ok)
	}
	if mt.Count(cost.HostSyscalls) != 0 || needSync(pt, userVA, 10) != 10 {
		t.Fatalf("host syscalls %d before any access; %d need sync", mt.Count(cost.HostSyscalls), needSync(pt, userVA, 10))
	}
	c0, c1 := m.sys.CPU(0), m.sys.CPU(1)
	c0.Switch(ctx)
	c1.Switch(ctx)
	access(t, c0, ctx, userVA)
	if mt.Count(cost.HostSyscalls) != 10 || needSync(pt, userVA, 10) != 0 {
		t.Fatalf("first access: %d host syscalls, %d still need sync", mt.Count(cost.HostSyscalls), needSync(pt, userVA, 10))
	}
	if _, _, ok := um.PendingSync(ctx); ok {
		t.Fatal("range still pending after the sync")
	}
	if mt.Count(cost.PTESets) != 10 || mt.Count(cost.PTEClears) != 0 {
		t.Fatalf("the sync counted entry writes: sets %d clears %d", mt.Count(cost.PTESets), mt.Count(cost.PTEClears))
	}
	for i := uint64(0); i < 10; i++ {
		access(t, c0, ctx, userVA+i*page)
		access(t, c1, ctx, userVA+i*page)
	}
	if mt.Count(cost.HostSyscalls) != 10 {
		t.Fatalf("accesses to synced pages made host syscalls: %d", mt.Count(cost.HostSyscalls))
	}
	mustClean(t, m.sys)

	// Clear 3 ptes and flush them: still no syscall, and the stale
	// entries are unreachable.
	mt.Reset()
	for i := uint64(2); i < 5; i++ {
		p, _ := pt.Walk(userVA+i*page, pgtable.PTE)
		pt.PTEClear(userVA+i*page, p)
	}
	m.sys.FlushTLBRange(ctx, userVA+2*page, userVA+5*page)
	m.sys.FlushTLBPage(ctx, userVA+9*page)
	if mt.Count(cost.HostSyscalls) != 0 || mt.Count(cost.TLBInvalidated) != 0 {
		t.Fatalf("flush calls did work: %d syscalls, %d invalidated", mt.Count(cost.HostSyscalls), mt.Count(cost.TLBInvalidated))
	}
	mustClean(t, m.sys)
	if c0.LiveFor(ctx) != 10 || c1.LiveFor(ctx) != 10 {
		t.Fatal("entries dropped before the sync")
	}
	// CPU 1's next access syncs: 3 munmaps; the 3 pages go from both
	// CPUs (one host address space); page 9 needs no sync.
	access(t, c1, ctx, userVA+7*page)
	if mt.Count(cost.HostSyscalls) != 3 || mt.Count(cost.TLBInvalidated) != 6 {
		t.Fatalf("sync: %d host syscalls, %d invalidated, want 3 and 6", mt.Count(cost.HostSyscalls), mt.Count(cost.TLBInvalidated))
	}
	if c0.LiveFor(ctx) != 7 || c1.LiveFor(ctx) != 7 {
		t.Fatalf("entries left %d %d", c0.LiveFor(ctx), c1.LiveFor(ctx))
	}
	mustClean(t, m.sys)
}

// TestUMFlushMMAndTables: flush_tlb_mm marks every mapping; a sync of a
// freed page table's span costs one munmap for the cleared pmd; no walk
// cache is kept.
func TestUMFlushMMAndTables(t *testing.T) {
	m := newMachine(t, um.UM64, 1)
	pt, ctx := m.mm("user", false)
	mt := ctx.Meter()
	c := m.sys.CPU(0)
	c.Switch(ctx)
	if err := pt.Map(userVA, 4*page, 0x100, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	if err := pt.Map(userVA+1<<30, 2*page, 0x200, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
	m.policy.Sync(m.sys, ctx)
	if mt.Count(cost.HostSyscalls) != 6 {
		t.Fatalf("%d host syscalls for 6 ptes", mt.Count(cost.HostSyscalls))
	}
	access(t, c, ctx, userVA)
	if c.WalkCached(ctx) != 0 {
		t.Fatal("a UML CPU caches page tables")
	}
	// flush_tlb_mm alone: nothing needs a sync, so the sync is free.
	mt.Reset()
	m.sys.FlushTLBMM(ctx)
	if from, to, ok := um.PendingSync(ctx); !ok || from != 0 || to != um.TaskSize64 {
		t.Fatalf("flush_tlb_mm marked %#x-%#x %v", from, to, ok)
	}
	access(t, c, ctx, userVA)
	if mt.Count(cost.HostSyscalls) != 0 {
		t.Fatalf("%d host syscalls with nothing to sync", mt.Count(cost.HostSyscalls))
	}
	// Unmap the first 4 pages and free their table: 4 munmaps for the
	// ptes... and the cleared pmd is one munmap of its span instead,
	// since the sync no longer finds the table.
	mt.Reset()
	if err := pt.Unmap(userVA, 4*page); err != nil {
		t.Fatal(err)
	}
	if p, ok := pt.Walk(userVA, pgtable.PMD); ok || p.Peek() != um.NeedSync {
		t.Fatalf("pmd %#x after freeing its table", p.Peek())
	}
	m.sys.FlushTLBMM(ctx)
	m.policy.Sync(m.sys, ctx)
	if mt.Count(cost.HostSyscalls) != 1 || mt.Count(cost.TLBInvalidated) != 1 {
		t.Fatalf("%d host syscalls, %d invalidated, want 1 and 1", mt.Count(cost.HostSyscalls), mt.Count(cost.TLBInvalidated))
	}
	if p, _ := pt.Walk(userVA, pgtable.PMD); p.Peek() != 0 {
		t.Fatalf("pmd %#x after the sync", p.Peek())
	}
	mustClean(t, m.sys)
}

// TestUMKernelRangeSyncedAtOnce: flush_tlb_kernel_range syncs init_mm at
// once, one host syscall per entry, on the kernel meter.
func TestUMKernelRangeSyncedAtOnce(t *testing.T) {
	for _, v := range []um.Variant{um.UM64, um.UM32} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			m := newMachine(t, v, 2)
			kpt, kctx := m.mm("kernel", true)
			va := uint64(kernelVA)
			if v == um.UM32 {
				va = 0x9000_0000
			}
			if err := kpt.Map(va, 5*page, 0x300, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
				t.Fatal(err)
			}
			for cpu := 0; cpu < 2; cpu++ {
				access(t, m.sys.CPU(cpu), kctx, va)
			}
			if m.km.Count(cost.HostSyscalls) != 0 {
				t.Fatal("kernel ptes synced before the flush")
			}
			m.sys.FlushTLBKernelRange(va, va+5*page)
			if m.km.Count(cost.HostSyscalls) != 5 || m.km.Count(cost.TLBInvalidated) != 2 || needSync(kpt, va, 5) != 0 {
				t.Fatalf("kernel flush: %d host syscalls, %d invalidated, %d need sync", m.km.Count(cost.HostSyscalls),
					m.km.Count(cost.TLBInvalidated), needSync(kpt, va, 5))
			}
			mustClean(t, m.sys)
		})
	}
}

// TestUMYoungDirtyEmulation: on the machine, the host maps an old page
// with no access and a clean one without write, so the first read of an
// old page and the first write of a clean one fault, the handler marks
// the pte young or dirty, and the sync at the retry maps it anew (one
// host syscall); the next accesses neither fault nor sync.
func TestUMYoungDirtyEmulation(t *testing.T) {
	a, err := archs.ByName("um")
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
	if err := mm.Mmap(userVA, 4*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Shared: true, File: "f"}); err != nil {
		t.Fatal(err)
	}
	mt := mm.Meter()
	step := func(name string, kind mmu.AccessKind, faults, syscalls uint64) {
		t.Helper()
		mt.Reset()
		if _, err := mm.Access(0, userVA, kind); err != nil {
			t.Fatal(err)
		}
		if mt.Count(cost.Faults) != faults || mt.Count(cost.HostSyscalls) != syscalls {
			t.Fatalf("%s: %d faults, %d host syscalls, want %d and %d", name, mt.Count(cost.Faults), mt.Count(cost.HostSyscalls), faults, syscalls)
		}
		if err := m.Check(); err != nil {
			t.Fatal(err)
		}
	}
	step("first read maps the page", mmu.Read, 1, 1)
	step("read again", mmu.Read, 0, 0)
	step("first write of a clean page", mmu.Write, 1, 1)
	step("write again", mmu.Write, 0, 0)
	// Make the page old and clean, as reclaim's rmap walk would, and
	// flush it.
	pt := mm.PageTable()
	p, _ := pt.Walk(userVA, pgtable.PTE)
	pt.PtepTestAndClearYoung(userVA, p)
	e := pt.PtepGet(userVA, p)
	pt.PtepGetAndClear(userVA, p)
	pt.SetPTEAt(userVA, p, pt.Format().MkClean(e, pgtable.PTE))
	m.TLB().FlushTLBPage(mm.TLBContext(), userVA)
	step("read of the old page: sync to no access, fault, sync", mmu.Read, 1, 2)
	step("write of the clean page", mmu.Write, 1, 1)
	step("write again", mmu.Write, 0, 0)
}

// TestUMMachineMunmap: munmap of 16 written pages costs 16 host munmaps
// at the next access, and the model stays consistent.
func TestUMMachineMunmap(t *testing.T) {
	for _, name := range []string{"um", "um32"} {
		t.Run(name, func(t *testing.T) {
			a, err := archs.ByName(name)
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
			va := uint64(0x4000_0000)
			if err := mm.Mmap(va, 17*page, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
				t.Fatal(err)
			}
			for i := uint64(0); i < 17; i++ {
				if err := mm.Write(int(i%2), va+i*page, i); err != nil {
					t.Fatal(err)
				}
			}
			if got := mm.Meter().Count(cost.HostSyscalls); got != 17 {
				t.Fatalf("%d host syscalls to fault in 17 pages", got)
			}
			mm.Meter().Reset()
			if err := mm.Munmap(va, 16*page); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			if got := mm.Meter().Count(cost.HostSyscalls); got != 0 {
				t.Fatalf("munmap synced at once: %d", got)
			}
			if _, err := mm.Read(0, va+16*page); err != nil {
				t.Fatal(err)
			}
			if got := mm.Meter().Count(cost.HostSyscalls); got != 16 {
				t.Fatalf("%d host syscalls at the next access, want 16", got)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// scenario runs a fixed sequence of writes, flushes and accesses on 2
// CPUs with tracing on and returns the trace.
func scenario(t *testing.T) string {
	var buf bytes.Buffer
	tr := cost.TextTracer{W: &buf}
	m := newMachine(t, um.UM64, 2)
	m.km.SetTracer(tr)
	var pts []*pgtable.PageTable
	var ctxs []*tlb.Context
	for i := 0; i < 2; i++ {
		pt, ctx := m.mm(fmt.Sprintf("mm%d", i), false)
		ctx.Meter().SetTracer(tr)
		if err := pt.Map(userVA, 64*page, phys.PFN(0x1000*(i+1)), pgtable.MapOpts{Prot: rw}); err != nil {
			t.Fatal(err)
		}
		pts, ctxs = append(pts, pt), append(ctxs, ctx)
	}
	for step := 0; step < 30; step++ {
		k := step % 2
		c := m.sys.CPU((step / 2) % 2)
		c.Switch(ctxs[k])
		va := userVA + uint64(step*13%64)*page
		access(t, c, ctxs[k], va)
		p, _ := pts[k].Walk(va, pgtable.PTE)
		switch step % 3 {
		case 0:
			pts[k].PtepSetWrprotect(va, p)
			m.sys.FlushTLBPage(ctxs[k], va)
		case 1:
			m.sys.FlushTLBMM(ctxs[k])
		case 2:
			pts[k].PtepTestAndClearYoung(va, p)
			m.sys.FlushTLBRange(ctxs[k], va, va+page)
		}
		for _, s := range m.sys.Validate() {
			fmt.Fprintln(&buf, "stale:", s)
		}
	}
	return buf.String()
}

// TestUMTraceDeterministic: the same operations give a byte-identical
// trace under GOMAXPROCS=1 and 2.
func TestUMTraceDeterministic(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	one := scenario(t)
	runtime.GOMAXPROCS(2)
	two := scenario(t)
	if one != two {
		t.Fatal("traces differ between GOMAXPROCS=1 and 2")
	}
	for _, want := range []string{"host_syscalls", "tlb_invalidated", "tlb_flush_mm"} {
		if !strings.Contains(one, want) {
			t.Errorf("trace lacks %s", want)
		}
	}
	if strings.Contains(one, "stale:") {
		t.Errorf("the scenario left stale entries:\n%s", one)
	}
}
