package tlb_test

import (
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// Addresses used by the tests.
const (
	userVA   = 0x7f00_0000_0000
	kernelVA = 0xffff_8880_0000_0000
	page     = 4096
	pmdSize  = 2 << 20
	rw       = pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared
)

// env is a machine for the tests: x86-64 tables in simulated memory and a
// TLB system.
type env struct {
	t   testing.TB
	a   *arch.Arch
	mem *phys.Memory
	sys *tlb.System
	km  *cost.Meter
}

// newEnv builds an env; cfg.CPUs defaults to 1 and cfg.KernelMeter to a
// meter of the env.
func newEnv(t testing.TB, cfg tlb.Config) *env {
	t.Helper()
	a := x86.New(x86.FourLevel)
	mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 18})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	km := &cost.Meter{Name: "kernel"}
	if cfg.KernelMeter == nil {
		cfg.KernelMeter = km
	}
	sys, err := tlb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, a: a, mem: mem, sys: sys, km: cfg.KernelMeter}
}

// mm creates an address space: a page table and its context.
func (e *env) mm(name string, kernel bool) (*pgtable.PageTable, *tlb.Context) {
	e.t.Helper()
	space := e.a.User
	if kernel {
		space = e.a.Kernel
	}
	m := &cost.Meter{Name: name}
	pt, err := pgtable.New(pgtable.Config{Geometry: &e.a.Geometry, Format: &e.a.Format, Memory: e.mem,
		Meter: m, Space: space, Kernel: kernel})
	if err != nil {
		e.t.Fatal(err)
	}
	return pt, e.sys.NewContext(name, pt, m, kernel)
}

// mapRW maps n pages at va to frames from pfn, writable.
func mapRW(t testing.TB, pt *pgtable.PageTable, va uint64, n uint64, pfn phys.PFN) {
	t.Helper()
	if err := pt.Map(va, n*page, pfn, pgtable.MapOpts{Prot: rw}); err != nil {
		t.Fatal(err)
	}
}

// fill does what the MMU does after a walk: it caches the translation of
// va (and, if walk, the tables the walk went through). It reports false
// when nothing maps va.
func fill(t testing.TB, c *tlb.CPU, ctx *tlb.Context, va uint64, walk bool) tlb.Entry {
	t.Helper()
	pt := ctx.PageTable()
	tr, ok := pt.Lookup(va)
	if !ok {
		t.Fatalf("fill %#x: not mapped", va)
	}
	f := pt.Format()
	var perm tlb.Perm
	if f.Readable(tr.Entry, tr.Level) {
		perm |= tlb.PermRead
	}
	if f.Write(tr.Entry, tr.Level) {
		perm |= tlb.PermWrite
	}
	if f.Exec(tr.Entry, tr.Level) {
		perm |= tlb.PermExec
	}
	if f.User(tr.Entry, tr.Level) {
		perm |= tlb.PermUser
	}
	if f.Dirty(tr.Entry, tr.Level) {
		perm |= tlb.PermDirty
	}
	if tr.Entry&x86.Global != 0 && pt.Kernel() {
		perm |= tlb.PermGlobal
	}
	shift := uint8(0)
	for s := tr.Size; s > 1; s >>= 1 {
		shift++
	}
	base := va &^ (tr.Size - 1)
	en := tlb.Entry{VA: base, Shift: shift, PFN: tr.PFN - phys.PFN((va-base)>>12), Perm: perm, Level: tr.Level}
	c.Insert(ctx, en)
	if walk {
		for l := pgtable.PUD; l <= tr.Level; l++ {
			if tb := tlb.TableFor(pt, va, l); tb != nil {
				c.WalkCacheInsert(ctx, va, l, tb)
			}
		}
	}
	return en
}

// stale returns the validator's reports as strings.
func stale(sys *tlb.System) []string {
	var out []string
	for _, s := range sys.Validate() {
		out = append(out, s.String())
	}
	return out
}

// mustClean fails when the validator reports anything.
func mustClean(t testing.TB, sys *tlb.System) {
	t.Helper()
	if s := stale(sys); len(s) != 0 {
		t.Fatalf("validator reports stale entries:\n%v", s)
	}
}
