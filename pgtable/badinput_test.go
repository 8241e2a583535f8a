package pgtable_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// snapshot is what a call with bad arguments must leave as it was.
type snapshot struct {
	leaves string
	tables int
	frames uint64
	counts string
}

func snap(pt *pgtable.PageTable, mem *phys.Memory) snapshot {
	var b strings.Builder
	pt.Leaves(0, 0, func(l pgtable.Leaf) bool {
		fmt.Fprintf(&b, "%#x %v %#x\n", l.Addr, l.Level, l.Entry)
		return true
	})
	c := pt.Meter().Counts()
	return snapshot{b.String(), pt.Tables(), mem.InUse(phys.KindTable), fmt.Sprint(c)}
}

// TestBadPointers gives every entry primitive a pointer to no table, an
// index before and past the table and a count reaching past its end: none
// may panic or change anything, and Misuse names each call.
func TestBadPointers(t *testing.T) {
	pt, mem := newX86(t)
	const va = 0x7f00_0000_0000
	if err := pt.Map(va, 4<<12, 0x1000, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	good, ok := pt.Walk(va, pgtable.PTE)
	if !ok {
		t.Fatal("no pte")
	}
	n := good.T.Len()
	ptrs := []struct {
		name string
		p    pgtable.Ptr
	}{
		{"no table", pgtable.Ptr{}},
		{"before", pgtable.Ptr{T: good.T, I: -1}},
		{"past", pgtable.Ptr{T: good.T, I: n}},
		{"far past", pgtable.Ptr{T: good.T, I: 1 << 40}},
		{"last entry", pgtable.Ptr{T: good.T, I: n - 1}}, // bad only with a count > 1
	}
	e := pt.Format().MkPTE(0x2000, pgtable.ProtRead)
	calls := []struct {
		name string
		nr   int // the count the call uses
		call func(p pgtable.Ptr) any
	}{
		{"RawGet", 1, func(p pgtable.Ptr) any { return pt.RawGet(p) }},
		{"RawSet", 1, func(p pgtable.Ptr) any { pt.RawSet(va, p, e); return nil }},
		{"RawExchange", 1, func(p pgtable.Ptr) any { return pt.RawExchange(va, p, e) }},
		{"RawSetPTEs", 4, func(p pgtable.Ptr) any { pt.RawSetPTEs(va, p, e, 4); return nil }},
		{"RawGetAndClear", 1, func(p pgtable.Ptr) any { return pt.RawGetAndClear(va, p) }},
		{"RawClear", 1, func(p pgtable.Ptr) any { pt.RawClear(va, p); return nil }},
		{"Populate", 1, func(p pgtable.Ptr) any { pt.Populate(va, p, nil); return nil }},
		{"ClearTable", 1, func(p pgtable.Ptr) any { return pt.ClearTable(va, p) }},
		{"ExchangeLeaf", 1, func(p pgtable.Ptr) any { return pt.ExchangeLeaf(va, p, e) }},
		{"MkUptodate", 1, func(p pgtable.Ptr) any { pt.MkUptodate(p); return nil }},
		{"HWUpdate", 1, func(p pgtable.Ptr) any { pt.HWUpdate(va, p, e); return nil }},
		{"SetPTEs", 3, func(p pgtable.Ptr) any { pt.SetPTEs(va, p, e, 3); return nil }},
		{"PtepGet", 1, func(p pgtable.Ptr) any { return pt.PtepGet(va, p) }},
		{"PtepGetLockless", 1, func(p pgtable.Ptr) any { return pt.PtepGetLockless(va, p) }},
		{"PtepGetAndClear", 1, func(p pgtable.Ptr) any { return pt.PtepGetAndClear(va, p) }},
		{"GetAndClearFullPTEs", 2, func(p pgtable.Ptr) any { return pt.GetAndClearFullPTEs(va, p, 2, false) }},
		{"PTEClear", 1, func(p pgtable.Ptr) any { pt.PTEClear(va, p); return nil }},
		{"ClearFullPTEs", 2, func(p pgtable.Ptr) any { pt.ClearFullPTEs(va, p, 2, true); return nil }},
		{"WrprotectPTEs", 2, func(p pgtable.Ptr) any { pt.WrprotectPTEs(va, p, 2); return nil }},
		{"PtepTestAndClearYoung", 1, func(p pgtable.Ptr) any { return pt.PtepTestAndClearYoung(va, p) }},
		{"PtepSetAccessFlags", 1, func(p pgtable.Ptr) any { return pt.PtepSetAccessFlags(va, p, e, true) }},
	}
	misuses := 0
	for _, c := range calls {
		for _, bp := range ptrs {
			pname, p := bp.name, bp.p
			if p.In(c.nr) && c.name != "Populate" {
				continue // a good pointer for this call
			}
			t.Run(c.name+"/"+pname, func(t *testing.T) {
				before := snap(pt, mem)
				got := c.call(p)
				if got != nil && got != pgtable.Entry(0) && got != false && got != (*pgtable.Table)(nil) {
					t.Errorf("returned %v, want the zero value", got)
				}
				if after := snap(pt, mem); after != before {
					t.Errorf("state changed:\nbefore %+v\nafter  %+v", before, after)
				}
				misuses++
				err := pt.Misuse()
				if !errors.Is(err, pgtable.EINVAL) {
					t.Fatalf("Misuse = %v, want EINVAL", err)
				}
			})
		}
	}
	// The first calls are named, the rest counted.
	msg := pt.Misuse().Error()
	if !strings.Contains(msg, "pgtable: read at 0x0: pointer to no table") {
		t.Errorf("Misuse does not name the first call:\n%s", msg)
	}
	if want := fmt.Sprintf("%d more calls", misuses-8); !strings.Contains(msg, want) {
		t.Errorf("Misuse does not count the rest (%s):\n%s", want, msg)
	}
}

// TestBadPointersFast checks that the bulk fast paths refuse a range that
// leaves the table (their callers then take the checked slow path).
func TestBadPointersFast(t *testing.T) {
	pt, _ := newX86(t)
	const va = 0x7f00_0000_0000
	if err := pt.Map(va, 1<<12, 0x1000, pgtable.MapOpts{Prot: pgtable.ProtRead}); err != nil {
		t.Fatal(err)
	}
	p, _ := pt.Walk(va, pgtable.PTE)
	past := pgtable.Ptr{T: p.T, I: p.T.Len() - 1}
	if pt.SetEachPTE(past, make([]pgtable.Entry, 2)) {
		t.Error("SetEachPTE wrote past the table")
	}
	if _, ok := pt.QuietPTEs(past, 2); ok {
		t.Error("QuietPTEs read past the table")
	}
	if _, _, ok := pt.MovePTEsQuiet(p, past, 2, 0, 0); ok {
		t.Error("MovePTEsQuiet moved past the table")
	}
	if err := pt.Misuse(); err != nil {
		t.Errorf("the fast paths' refusals are not misuse: %v", err)
	}
}

// TestBadLevelsAndSpaces feeds values that are no level to the geometry
// and format helpers and bad ranges to SetSpace.
func TestBadLevelsAndSpaces(t *testing.T) {
	pt, _ := newX86(t)
	g, f := pt.Geometry(), pt.Format()
	bad := pgtable.NumLevels + 3
	if g.Size(bad) != 0 || g.Shift(bad) != 0 || g.Mask(bad) != 0 || g.AddrEnd(bad, 0x1000, 0x5000) != 0x5000 {
		t.Error("geometry of a bad level is not empty")
	}
	if g.HasTable(bad) || f.IsLeaf(1, bad) || !f.IsNone(0, bad) || f.IsNone(1, bad) {
		t.Error("format of a bad level")
	}
	if e := f.MkTable(bad, 5, false); e != pgtable.Entry(5<<12) {
		t.Errorf("MkTable at a bad level = %#x", e)
	}
	if (pgtable.Ptr{}).Level() != pgtable.NumLevels || (pgtable.Ptr{}).Peek() != 0 || (pgtable.Ptr{}).Child() != nil {
		t.Error("a pointer to no table")
	}
	old := pt.Space()
	for _, r := range []pgtable.Range{
		{Start: 0x1001, End: 0x2000},
		{Start: 0x2000, End: 0x2000},
		{Start: 0x3000, End: 0x2000},
		{Start: 0, End: 1 << 50}, // a four-level root maps 1<<48
		{Start: 1 << 47, End: 0},
	} {
		if err := pt.SetSpace(r); !errors.Is(err, pgtable.EINVAL) {
			t.Errorf("SetSpace(%+v) = %v, want EINVAL", r, err)
		}
	}
	if pt.Space() != old {
		t.Errorf("space changed to %+v", pt.Space())
	}
	if err := pt.SetSpace(pgtable.Range{Start: 0x1000, End: 1 << 47}); err != nil {
		t.Errorf("a good space: %v", err)
	}
	if pt.IndexOf(nil, 0) != -1 || pt.EntrySize(nil) != 0 {
		t.Error("IndexOf or EntrySize of no table")
	}
}

// TestCheckPtr checks the full precondition of the entry primitives: the
// pointer is the entry that maps the address, in a live table of this
// page table, with its count inside the table.
func TestCheckPtr(t *testing.T) {
	pt, _ := newX86(t)
	const va, other = 0x7f00_0000_0000, 0x7f00_4000_0000
	for _, a := range []uint64{va, other} {
		if err := pt.Map(a, 1<<12, 0x1000, pgtable.MapOpts{Prot: pgtable.ProtRead}); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := pt.Walk(va, pgtable.PTE)
	q, _ := pt.Walk(other, pgtable.PTE)
	if err := pt.CheckPtr(va, p, 4); err != nil {
		t.Fatalf("a good pointer: %v", err)
	}
	for _, c := range []struct {
		name string
		addr uint64
		p    pgtable.Ptr
		nr   int
	}{
		{"no table", va, pgtable.Ptr{}, 1},
		{"another entry", va, pgtable.Ptr{T: p.T, I: p.I + 1}, 1},
		{"another address's table", va, q, 1},
		{"count past the end", va, p, p.T.Len() + 1},
		{"count zero", va, p, 0},
		{"address outside the space", 1 << 60, p, 1},
	} {
		if err := pt.CheckPtr(c.addr, c.p, c.nr); !errors.Is(err, pgtable.EINVAL) {
			t.Errorf("%s: %v, want EINVAL", c.name, err)
		}
	}
	if err := pt.Unmap(other, 1<<12); err != nil {
		t.Fatal(err)
	}
	if err := pt.CheckPtr(other, q, 1); !errors.Is(err, pgtable.EINVAL) {
		t.Errorf("a freed table: %v, want EINVAL", err)
	}
}
