package mremap

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// env is one machine with one address space, and the test it serves.
type env struct {
	t  testing.TB
	m  *mmu.Machine
	mm *mmu.MM
	a  *arch.Arch
	// ps, pmd and pud are PAGE_SIZE, PMD_SIZE and PUD_SIZE.
	ps, pmd, pud uint64
	// src and dst are PUD-aligned addresses far enough apart for any
	// test region, inside every arch's user space (s390 below its
	// 3-level limit, um32 below 3 GiB).
	src, dst uint64
}

// newEnv builds a 1-CPU machine for arch name (8 GiB of memory) with the
// given `config` settings ("move_pmd=off").
func newEnv(t testing.TB, name string, knobs ...string) *env {
	t.Helper()
	return newEnvCPUs(t, name, 1, knobs...)
}

// newEnvCPUs is newEnv with cpus CPUs.
func newEnvCPUs(t testing.TB, name string, cpus int, knobs ...string) *env {
	t.Helper()
	a, err := archs.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 8 << 30, CPUs: cpus})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range knobs {
		k, v, _ := strings.Cut(kv, "=")
		if err := m.SetKnob(k, v); err != nil {
			t.Fatal(err)
		}
	}
	mm, err := m.NewMM("init")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m, mm: mm, a: a, ps: a.PageSize(),
		pmd: a.Geometry.Size(pgtable.PMD), pud: a.Geometry.Size(pgtable.PUD)}
	e.src = 0x10_0000_0000
	e.dst = e.src + max(e.pud, 16<<30)
	if name == "um32" {
		e.src, e.dst = 0x1000_0000, 0x8000_0000
	}
	e.check()
	return e
}

// check runs the machine's invariant checker.
func (e *env) check() {
	e.t.Helper()
	if err := e.m.Check(); err != nil {
		e.t.Fatalf("invariants: %v", err)
	}
}

// mmap maps [addr, addr+length) read-write with flags and checks.
func (e *env) mmap(addr, length uint64, fl mmu.MapFlags) {
	e.t.Helper()
	if err := e.mm.Mmap(addr, length, mmu.ProtRead|mmu.ProtWrite, fl); err != nil {
		e.t.Fatal(err)
	}
	e.check()
}

// fill writes every step-th page of [addr, addr+length) through CPU 0,
// each with its own address as content, and checks.
func (e *env) fill(addr, length, step uint64) {
	e.t.Helper()
	for a := addr; a < addr+length; a += step {
		if err := e.mm.Write(0, a, a); err != nil {
			e.t.Fatalf("write %#x: %v", a, err)
		}
	}
	e.check()
}

// mremap calls Mremap and checks the invariants afterwards.
func (e *env) mremap(old, oldLen, newLen uint64, fl Flags, newAddr uint64) (uint64, error) {
	e.t.Helper()
	got, err := Mremap(e.mm, old, oldLen, newLen, fl, newAddr)
	e.check()
	return got, err
}

// mustMremap is mremap that fails the test on error.
func (e *env) mustMremap(old, oldLen, newLen uint64, fl Flags, newAddr uint64) uint64 {
	e.t.Helper()
	got, err := e.mremap(old, oldLen, newLen, fl, newAddr)
	if err != nil {
		e.t.Fatalf("mremap %#x+%#x -> %#x (%s, %#x): %v", old, oldLen, newLen, fl, newAddr, err)
	}
	return got
}

// count returns the address space's counter of ev.
func (e *env) count(ev cost.Event) uint64 { return e.mm.Meter().Count(ev) }

// reset zeroes every counter.
func (e *env) reset() { e.m.Reset() }

// wantContent checks that every step-th page of [addr, addr+length)
// holds want(page address).
func (e *env) wantContent(addr, length, step uint64, want func(a uint64) uint64) {
	e.t.Helper()
	for a := addr; a < addr+length; a += step {
		got, ok := e.mm.Content(a)
		if !ok {
			e.t.Fatalf("content %#x: no mapping", a)
		}
		if w := want(a); got != w {
			e.t.Fatalf("content %#x = %#x, want %#x", a, got, w)
		}
	}
}

// wantUnmapped checks that no VMA and no translation covers
// [addr, addr+length).
func (e *env) wantUnmapped(addr, length uint64) {
	e.t.Helper()
	if vs := e.mm.VMAsIn(addr, addr+length); len(vs) != 0 {
		e.t.Fatalf("%#x+%#x still mapped by %v", addr, length, vs[0])
	}
	if !e.mm.PageTable().IsEmpty(addr, length) {
		e.t.Fatalf("%#x+%#x still has entries", addr, length)
	}
}

// wantCounts checks counters.
func (e *env) wantCounts(want map[cost.Event]uint64) {
	e.t.Helper()
	for ev, n := range want {
		if got := e.count(ev); got != n {
			e.t.Errorf("%s = %d, want %d", ev, got, n)
		}
	}
}

// wantErr checks that err wraps want.
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

// pageState is what one virtual page looks like: its translation, its
// content and its folio's counts.
type pageState struct {
	Mapped                      bool
	PFN                         phys.PFN
	Level                       pgtable.Level
	Entry                       pgtable.Entry
	Content                     uint64
	Ref, Mapcount, PageMapcount int
}

// state is an address space as the differential oracle compares it.
type state struct {
	Pages []pageState
	RSS   [4]int64
	VMAs  []string
}

// snapshot records every page of the given ranges, the RSS counters and
// the VMAs. Entries are compared without the soft-dirty bit, which
// move_ptes sets and whole-table moves leave as it was, and without the
// bits every PTE write sets (UML's _PAGE_NEEDSYNC, a host-sync mark).
func (e *env) snapshot(ranges ...[2]uint64) state {
	var s state
	fm := &e.a.Format
	mem := e.m.Memory()
	for _, r := range ranges {
		for a := r[0]; a < r[0]+r[1]; a += e.ps {
			var p pageState
			if tr, ok := e.mm.Translate(a); ok {
				f := mem.FolioOf(tr.PFN)
				p = pageState{Mapped: true, PFN: tr.PFN, Level: tr.Level,
					Entry:        fm.ClearSoftDirty(tr.Entry, tr.Level) &^ fm.SetAlways,
					Ref:          mem.Refcount(f),
					Mapcount:     mem.Mapcount(f),
					PageMapcount: mem.PageMapcount(tr.PFN)}
			}
			p.Content, _ = e.mm.Content(a)
			s.Pages = append(s.Pages, p)
		}
	}
	for k := range s.RSS {
		s.RSS[k] = e.mm.RSS(mmu.RSSKind(k))
	}
	for _, v := range e.mm.VMAs() {
		s.VMAs = append(s.VMAs, v.String())
	}
	return s
}

// diffStates describes the first differences between two states.
func diffStates(a, b state) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	var out []string
	if len(a.Pages) != len(b.Pages) {
		out = append(out, fmt.Sprintf("%d pages vs %d", len(a.Pages), len(b.Pages)))
	}
	for i := range min(len(a.Pages), len(b.Pages)) {
		if a.Pages[i] != b.Pages[i] && len(out) < 5 {
			out = append(out, fmt.Sprintf("page %d: %+v vs %+v", i, a.Pages[i], b.Pages[i]))
		}
	}
	if a.RSS != b.RSS {
		out = append(out, fmt.Sprintf("rss %v vs %v", a.RSS, b.RSS))
	}
	if !reflect.DeepEqual(a.VMAs, b.VMAs) {
		out = append(out, fmt.Sprintf("vmas %v vs %v", a.VMAs, b.VMAs))
	}
	return strings.Join(out, "\n")
}

// tableMoves reports whether the arch moves whole tables by default.
func tableMoves(a *arch.Arch) bool { return a.Caps.HaveMovePMD }
