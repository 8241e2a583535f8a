package pgtable

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/phys"
)

// holds reports whether table t holds the entries of level l: l is t's
// level or a level folded into it from above.
func holds(t *Table, l Level) bool { return l <= t.level }

// Walk returns a pointer to addr's entry at level want, reading tables from
// the root down as the kernel's pXd_offset chain does, and counting a read
// per level passed. When the walk stops above want, at an empty entry or a
// huge leaf, it returns that entry and false. For an address outside the
// table's space (whose index bits would wrap onto another address's
// entries) it returns no pointer and false.
func (pt *PageTable) Walk(addr uint64, want Level) (Ptr, bool) {
	if p, ok := pt.hinted(addr, want); ok {
		return p, true
	}
	if !pt.space.Contains(addr, 1) {
		return Ptr{}, false
	}
	t := pt.root
	depth := uint64(0)
	for {
		i := pt.index(t, addr)
		if holds(t, want) {
			pt.remember(t, want, depth)
			return Ptr{T: t, I: i}, true
		}
		pt.meter.Add(cost.EntryReads, 1)
		depth++
		child := t.next[i]
		if child == nil {
			return Ptr{T: t, I: i}, false
		}
		t = child
	}
}

// Depth returns how many entries a walk from the root reads to reach
// table t (Walk's count of reads): one per table above it.
func (pt *PageTable) Depth(t *Table) uint64 { return uint64(int(t.geo) - pt.top) }

// hinted returns addr's slot from the walk hint of its level (PTE, or
// PMD) when that hint is current and covers addr, counting the reads a
// full walk would make.
func (pt *PageTable) hinted(addr uint64, want Level) (Ptr, bool) {
	var h *walkHint
	switch want {
	case PTE:
		h = &pt.hint
	case PMD:
		h = &pt.pmdHint
	default:
		return Ptr{}, false
	}
	if h.t == nil || h.gen != pt.gen || addr-h.base >= h.span {
		return Ptr{}, false
	}
	pt.meter.Add(cost.EntryReads, h.depth)
	return Ptr{T: h.t, I: pt.index(h.t, addr)}, true
}

// remember records t, which a walk for level want reached depth levels
// below the root, as the walk hint: a PTE table as the PTE hint, and the
// table a walk for a PMD entry stopped at (below the root) as the PMD
// hint, which serves walks one per PMD entry (zap, fork's copy, mremap).
func (pt *PageTable) remember(t *Table, want Level, depth uint64) {
	if t.level == PTE {
		pt.hint = walkHint{t: t, base: t.base, span: uint64(len(t.entries)) << t.shift, depth: depth, gen: pt.gen}
	}
	if want == PMD && depth > 0 {
		pt.pmdHint = walkHint{t: t, base: t.base, span: uint64(len(t.entries)) << t.shift, depth: depth, gen: pt.gen}
	}
}

// WalkAlloc returns a pointer to addr's entry at level want, allocating the
// missing tables on the way (pud_alloc, pmd_alloc, pte_alloc). When a huge
// leaf stops the walk above want it returns the leaf's pointer with a nil
// error: check p.Level(). It fails with ENOMEM, keeping the tables it did
// allocate, exactly as Linux keeps a half-built path. It fails with EINVAL,
// allocating nothing, for a level that is not one or an address outside
// the table's space.
func (pt *PageTable) WalkAlloc(addr uint64, want Level) (Ptr, error) {
	if want > PTE || !pt.space.Contains(addr, 1) {
		return Ptr{}, fmt.Errorf("pgtable: walk to %v at %#x: bad level or address outside %#x-%#x: %w",
			want, addr, pt.space.Start, pt.space.End, EINVAL)
	}
	if p, ok := pt.hinted(addr, want); ok {
		return p, nil
	}
	t := pt.root
	depth := uint64(0)
	for {
		i := pt.index(t, addr)
		if holds(t, want) {
			pt.remember(t, want, depth)
			return Ptr{T: t, I: i}, nil
		}
		p := Ptr{T: t, I: i}
		pt.meter.Add(cost.EntryReads, 1)
		depth++
		child := t.next[i]
		if child == nil {
			if !pt.fmt.IsNone(t.entries[i], t.level) {
				return p, nil // a huge leaf or a non-present huge entry
			}
			nt, err := pt.AllocTable(pt.geo.Tables[t.geo+1].Level)
			if err != nil {
				return p, err
			}
			pt.Populate(addr, p, nt)
			child = nt
		}
		t = child
	}
}

// Translation is what a lookup finds for an address.
type Translation struct {
	// Level is the level of the leaf entry.
	Level Level
	// Entry is the raw leaf entry.
	Entry Entry
	// PFN is the frame that holds the address (the leaf's frame plus the
	// page offset inside a huge leaf).
	PFN phys.PFN
	// Size is the bytes the leaf maps.
	Size uint64
	// Ptr points at the leaf.
	Ptr Ptr
}

// PA returns the physical address of addr under t.
func (t Translation) PA(addr uint64, pageShift uint) uint64 {
	return uint64(t.PFN)<<pageShift | addr&(1<<pageShift-1)
}

// Lookup translates addr by a software walk without counting anything: the
// debugger's view. It reports false when no present leaf maps addr, and
// for an address outside the table's space (whose index bits would wrap
// onto another address). Cost: a range check, then one index and one
// pointer load per level.
func (pt *PageTable) Lookup(addr uint64) (Translation, bool) {
	if !pt.space.Contains(addr, 1) {
		return Translation{}, false
	}
	t := pt.root
	for {
		i := pt.index(t, addr)
		e := t.entries[i]
		if t.level == PTE {
			if e&pt.fmt.PTE.Present == 0 {
				return Translation{}, false
			}
			return Translation{Level: PTE, Entry: e, PFN: pt.fmt.PFN(e, PTE),
				Size: 1 << pt.fmt.PageShift, Ptr: Ptr{T: t, I: i}}, true
		}
		if child := t.next[i]; child != nil {
			t = child
			continue
		}
		if !pt.fmt.IsLeaf(e, t.level) {
			return Translation{}, false
		}
		tg := pt.geo.Tables[t.geo]
		off := (addr & (tg.Size() - 1)) >> pt.fmt.PageShift
		return Translation{Level: t.level, Entry: e, PFN: pt.fmt.PFN(e, t.level) + phys.PFN(off),
			Size: tg.Size(), Ptr: Ptr{T: t, I: i}}, true
	}
}

// Leaf is one leaf entry found by Leaves.
type Leaf struct {
	// Addr is the first address the entry maps.
	Addr uint64
	// Level is the entry's level.
	Level Level
	// Entry is the raw entry.
	Entry Entry
	// Size is the bytes the entry maps.
	Size uint64
	// Ptr points at the entry.
	Ptr Ptr
}

// Leaves calls fn for every non-empty leaf-level entry (present or not,
// at any level) that maps part of [start, end), in address order, until fn
// returns false. It counts nothing. An end of 0 means the top of the space.
func (pt *PageTable) Leaves(start, end uint64, fn func(Leaf) bool) {
	if fn == nil {
		return
	}
	pt.leaves(pt.root, pt.rootBase(), start, end, fn)
}

func (pt *PageTable) rootBase() uint64 {
	if pt.space.Start != 0 {
		return pt.space.Start &^ (pt.geo.Tables[pt.top].Span() - 1)
	}
	return 0
}

func (pt *PageTable) leaves(t *Table, base, start, end uint64, fn func(Leaf) bool) bool {
	tg := pt.geo.Tables[t.geo]
	size := tg.Size()
	for i, e := range t.entries {
		a := base + uint64(i)*size
		last := a + size - 1
		if last < start || (end != 0 && a >= end) {
			continue
		}
		if child := t.Child(i); child != nil {
			if !pt.leaves(child, a, start, end, fn) {
				return false
			}
			continue
		}
		if pt.fmt.IsNone(e, t.level) {
			continue
		}
		if !fn(Leaf{Addr: a, Level: t.level, Entry: e, Size: size, Ptr: Ptr{T: t, I: i}}) {
			return false
		}
	}
	return true
}

// TableVisit is one table found by WalkTables.
type TableVisit struct {
	// Table is the table; Base the first address it maps; Depth its
	// distance from the root.
	Table *Table
	Base  uint64
	Depth int
}

// WalkTables calls fn for every table, root first, parents before
// children, in address order. It counts nothing.
func (pt *PageTable) WalkTables(fn func(TableVisit) bool) {
	if fn == nil {
		return
	}
	pt.walkTables(pt.root, pt.rootBase(), 0, fn)
}

func (pt *PageTable) walkTables(t *Table, base uint64, depth int, fn func(TableVisit) bool) bool {
	if !fn(TableVisit{Table: t, Base: base, Depth: depth}) {
		return false
	}
	size := pt.geo.Tables[t.geo].Size()
	for i := range t.next {
		if c := t.next[i]; c != nil {
			if !pt.walkTables(c, base+uint64(i)*size, depth+1, fn) {
				return false
			}
		}
	}
	return true
}

// Step is one level of a walk trace.
type Step struct {
	// Level is the level of the entry read; Index its index in the table.
	Level Level
	Index int
	// TablePFN is the frame of the table read; Entry the value found.
	TablePFN phys.PFN
	Entry    Entry
	// Next is the frame of the next table, when the entry points to one.
	Next phys.PFN
	// Kind is "table", "leaf", "none" or "not present".
	Kind string
}

// WalkTrace returns the steps of a walk of addr from the root, in the
// manner of a worked textbook answer, and the physical address it reaches
// (ok is false when no present leaf maps addr). It counts nothing.
func (pt *PageTable) WalkTrace(addr uint64) (steps []Step, pa uint64, ok bool) {
	t := pt.root
	for {
		i := pt.index(t, addr)
		e := t.entries[i]
		s := Step{Level: t.level, Index: i, TablePFN: t.pfn, Entry: e}
		switch child := t.Child(i); {
		case child != nil:
			s.Kind, s.Next = "table", child.pfn
			steps = append(steps, s)
			t = child
			continue
		case pt.fmt.IsNone(e, t.level):
			s.Kind = "none"
		case pt.fmt.IsLeaf(e, t.level) && pt.fmt.Present(e, t.level):
			s.Kind = "leaf"
		default:
			s.Kind = "not present"
		}
		steps = append(steps, s)
		if s.Kind != "leaf" {
			return steps, 0, false
		}
		tr, _ := pt.Lookup(addr)
		return steps, tr.PA(addr, pt.fmt.PageShift), true
	}
}

// String formats a step as one line of a walk trace.
func (s Step) String() string {
	line := fmt.Sprintf("%s index %d in table pfn %#x: entry %#016x (%s)", s.Level, s.Index, s.TablePFN, uint64(s.Entry), s.Kind)
	if s.Kind == "table" {
		line += fmt.Sprintf(" -> table pfn %#x", s.Next)
	}
	return line
}
