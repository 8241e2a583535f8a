package contpte_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/contpte"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// granules are the three arm64 translation granules, with the CONT_PTES
// Linux gives each (CONFIG_ARM64_CONT_PTE_SHIFT 4, 7, 5).
var granules = []struct {
	name     string
	g        arm64.Granule
	contPTEs int
}{
	{"4K", arm64.Granule4K, 16},
	{"16K", arm64.Granule16K, 128},
	{"64K", arm64.Granule64K, 32},
}

// env is one arm64 machine with one user address space.
type env struct {
	t  *testing.T
	m  *mmu.Machine
	mm *mmu.MM
	pt *pgtable.PageTable
	f  *pgtable.Format
	// n is CONT_PTES, ps the page size, block CONT_PTE_SIZE.
	n         int
	ps, block uint64
	// saved holds raw entries by address, as snap saw them.
	saved map[uint64]pgtable.Entry
}

// snap saves the raw entries of the two blocks at base.
func (e *env) snap() {
	e.saved = map[uint64]pgtable.Entry{}
	for i := 0; i < 2*e.n; i++ {
		a := e.page(base, i)
		e.saved[a] = e.raw(a)
	}
}

// base is where tests map: 1 GiB, aligned to every granule's PMD.
const base = uint64(1) << 30

// newEnv builds an arm64 machine of granule g with 4 CPUs and the knobs
// set ("contpte", "off", ...).
func newEnv(t *testing.T, g arm64.Granule, knobs ...string) *env {
	t.Helper()
	m, err := mmu.New(mmu.Config{Arch: arm64.New(g), CPUs: 4, MemorySize: 4 << 30, Seed: 7})
	noErr(t, err)
	zero(t, len(knobs)%2, "knobs come in key, value pairs")
	for i := 0; i < len(knobs); i += 2 {
		noErr(t, m.SetKnob(knobs[i], knobs[i+1]))
	}
	mm, err := m.NewMM("p")
	noErr(t, err)
	e := &env{t: t, m: m, mm: mm, pt: mm.PageTable(), f: &m.Arch().Format}
	e.ps = m.Arch().PageSize()
	e.n = m.Arch().Caps.ContPTEs
	e.block = uint64(e.n) * e.ps
	return e
}

// ops returns the address space's contpte Ops.
func (e *env) ops() *contpte.Ops {
	o, ok := e.pt.Ops().(*contpte.Ops)
	isTrue(e.t, ok, "arm64 user mm must run contpte Ops, has %T", e.pt.Ops())
	return o
}

// ptr returns the PTE pointer of addr without counting anything.
func (e *env) ptr(addr uint64) pgtable.Ptr {
	t := tlb.TableFor(e.pt, addr, pgtable.PTE)
	notNil(e.t, t, "no PTE table for %#x", addr)
	return pgtable.Ptr{T: t, I: e.pt.IndexOf(t, addr)}
}

// page returns the address of page i from a.
func (e *env) page(a uint64, i int) uint64 { return a + uint64(i)*e.ps }

// raw returns the raw entry of addr, uncounted.
func (e *env) raw(addr uint64) pgtable.Entry { return e.ptr(addr).Peek() }

// check runs the machine's invariant checker.
func (e *env) check(what string) {
	e.t.Helper()
	noErr(e.t, e.m.Check(), "after %s", what)
}

// delta runs fn and returns what it counted on the address space.
func (e *env) delta(fn func()) cost.Counts {
	before := e.mm.Meter().Counts()
	fn()
	after := e.mm.Meter().Counts()
	return after.Sub(&before)
}

// anonBlocks maps nr blocks of anonymous rw memory at base with
// block-sized folios and write-faults each block once from CPU 0: every
// block is mapped by set_ptes(CONT_PTES) with the contiguous bit.
func (e *env) anonBlocks(nr int) {
	e.t.Helper()
	noErr(e.t, e.mm.Mmap(base, uint64(nr)*e.block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: e.block}))
	for b := 0; b < nr; b++ {
		noErr(e.t, e.mm.Write(0, base+uint64(b)*e.block, uint64(b+1)))
	}
	e.check("anonBlocks")
}

// fileBlocks maps nr blocks of a shared file with block-sized folios.
func (e *env) fileBlocks(name string, nr int) {
	e.t.Helper()
	noErr(e.t, e.mm.Mmap(base, uint64(nr)*e.block, mmu.ProtRead|mmu.ProtWrite,
		mmu.MapFlags{File: name, Shared: true, FolioSize: e.block}))
}

// blockState summarises the raw entries of the block at a.
type blockState struct {
	cont, young, dirty, write, present int
}

// state counts the raw entries of the block at a by flag.
func (e *env) state(a uint64) blockState {
	var s blockState
	for i := 0; i < e.n; i++ {
		r := e.raw(e.page(a, i))
		if !e.f.Present(r, pgtable.PTE) {
			continue
		}
		s.present++
		if e.f.Cont(r, pgtable.PTE) {
			s.cont++
		}
		if e.f.Young(r, pgtable.PTE) {
			s.young++
		}
		if e.f.Dirty(r, pgtable.PTE) {
			s.dirty++
		}
		if e.f.Write(r, pgtable.PTE) {
			s.write++
		}
	}
	return s
}

// folded reports whether every entry of the block at a is valid and
// contiguous and maps the next frame.
func (e *env) folded(a uint64) bool {
	if t := tlb.TableFor(e.pt, a, pgtable.PTE); t == nil || t.Level() != pgtable.PTE {
		return false
	}
	first := e.raw(a)
	for i := 0; i < e.n; i++ {
		r := e.raw(e.page(a, i))
		if !e.f.Cont(r, pgtable.PTE) || !e.f.HWValidBits(r, pgtable.PTE) || e.f.PFN(r, pgtable.PTE) != e.f.PFN(first, pgtable.PTE)+phys.PFN(i) {
			return false
		}
	}
	return true
}

// convertCounts are the contpte counters of a delta.
type convertCounts struct{ folds, unfolds, converts uint64 }

func converts(d cost.Counts) convertCounts {
	return convertCounts{d[cost.ContpteFolds], d[cost.ContpteUnfolds], d[cost.ContpteConverts]}
}

func (c convertCounts) String() string {
	return fmt.Sprintf("folds %d unfolds %d converts %d", c.folds, c.unfolds, c.converts)
}

// Assertions that stop the test at the first broken fact (the standard
// library's testing only; msg is a format and its arguments).

func fail(t testing.TB, what string, msg []any) {
	t.Helper()
	if len(msg) > 0 {
		if f, ok := msg[0].(string); ok {
			what = fmt.Sprintf(f, msg[1:]...) + ": " + what
		}
	}
	t.Fatal(what)
}

func noErr(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		fail(t, fmt.Sprintf("unexpected error: %v", err), msg)
	}
}

func equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		fail(t, fmt.Sprintf("want %+v, got %+v", want, got), msg)
	}
}

func isTrue(t testing.TB, ok bool, msg ...any) {
	t.Helper()
	if !ok {
		fail(t, "condition false", msg)
	}
}

func isFalse(t testing.TB, ok bool, msg ...any) {
	t.Helper()
	if ok {
		fail(t, "condition true", msg)
	}
}

func zero(t testing.TB, v any, msg ...any) {
	t.Helper()
	if !reflect.ValueOf(v).IsZero() {
		fail(t, fmt.Sprintf("want zero, got %+v", v), msg)
	}
}

func notNil(t testing.TB, v any, msg ...any) {
	t.Helper()
	if v == nil || (reflect.ValueOf(v).Kind() == reflect.Pointer && reflect.ValueOf(v).IsNil()) {
		fail(t, "nil", msg)
	}
}
