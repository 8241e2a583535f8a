package pgtable

import "github.com/ptsim/ptsim/phys"

// Table is one page-table page: a flat array of entries, backed by a frame
// of simulated physical memory.
type Table struct {
	// pfn is the frame that backs the table; its entries' raw values name
	// it when they point here.
	pfn phys.PFN
	// level is the lowest Linux level whose entries the table holds.
	level Level
	// geo is the index of the table's level in Geometry.Tables.
	geo int8
	// shift and mask turn an address into an index in this table; cached
	// here because every walk step needs them.
	shift uint8
	mask  uint32
	// freed is set when the table's frame has been given back; a walk
	// cache or a speculative walker still holding the table is stale.
	freed bool
	// used counts the entries that are not none, so emptiness is O(1).
	used int32
	// base is the first virtual address the table maps, recorded when it
	// is attached (and updated when a table move attaches it elsewhere).
	base uint64
	// entries holds the raw entries.
	entries []Entry
	// next holds the child table of each table entry (nil for leaves and
	// empty entries, and for the whole PTE level). It mirrors the
	// address in the entry so walks need no PFN lookup; the primitives
	// keep the two in step.
	next []*Table
	// ptl is the table's split page-table lock.
	ptl Lock
}

// PFN returns the frame that backs the table.
func (t *Table) PFN() phys.PFN { return t.pfn }

// Level returns the lowest Linux level whose entries the table holds.
func (t *Table) Level() Level { return t.level }

// Len returns the number of entries.
func (t *Table) Len() int { return len(t.entries) }

// Used returns the number of entries that are not none.
func (t *Table) Used() int { return int(t.used) }

// Freed reports whether the table's frame has been freed.
func (t *Table) Freed() bool { return t.freed }

// Base returns the first virtual address the table maps.
func (t *Table) Base() uint64 { return t.base }

// Entry returns entry i, uncounted: an inspection helper. An index
// outside the table gives 0.
func (t *Table) Entry(i int) Entry {
	if i < 0 || i >= len(t.entries) {
		return 0
	}
	return t.entries[i]
}

// Child returns the table that entry i points to, or nil.
func (t *Table) Child(i int) *Table {
	if t.next == nil || i < 0 || i >= len(t.next) {
		return nil
	}
	return t.next[i]
}

// PTL returns the table's page-table lock.
func (t *Table) PTL() *Lock { return &t.ptl }

// Ptr points at one entry: a table and an index in it, Linux's pte_t *
// (or pmd_t *, pud_t *...).
type Ptr struct {
	// T is the table.
	T *Table
	// I is the index of the entry in T.
	I int
}

// Valid reports whether p points at an entry.
func (p Ptr) Valid() bool { return p.In(1) }

// In reports whether p and the nr-1 entries after it (nr >= 1) are
// entries of one table: the precondition of the functions that take a
// pointer and a count (set_ptes and friends).
func (p Ptr) In(nr int) bool {
	return p.T != nil && nr >= 1 && p.I >= 0 && p.I <= len(p.T.entries)-nr
}

// Add returns a pointer n entries further (ptep + n).
// Precondition: the result stays inside the table.
func (p Ptr) Add(n int) Ptr { return Ptr{T: p.T, I: p.I + n} }

// Level returns the level of the entry p points at, NumLevels for a
// pointer to no table.
func (p Ptr) Level() Level {
	if p.T == nil {
		return NumLevels
	}
	return p.T.level
}

// Peek returns the entry, uncounted (for inspection and for assertions);
// 0 for a pointer to no entry.
func (p Ptr) Peek() Entry {
	if !p.Valid() {
		return 0
	}
	return p.T.entries[p.I]
}

// Child returns the table the entry points to, or nil.
func (p Ptr) Child() *Table {
	if p.T == nil {
		return nil
	}
	return p.T.Child(p.I)
}

// Lock is a page-table lock in simulated time. The model is driven from
// one goroutine; the lock records who holds it so that the deterministic
// scheduler can make other simulated threads wait, and so that the
// validator can catch use after free.
type Lock struct {
	// holder is the simulated thread holding the lock, 0 when free.
	holder int32
	// freed is set when the lock's storage was given back (ptlock_free).
	freed bool
}

// Held reports whether a thread holds the lock.
func (l *Lock) Held() bool { return l.holder != 0 }

// Holder returns the holding thread, 0 when free.
func (l *Lock) Holder() int32 { return l.holder }

// Freed reports whether the lock's storage has been freed.
func (l *Lock) Freed() bool { return l.freed }

// TryLock takes the lock for thread who (who > 0) if it is free and not
// freed, and reports success.
func (l *Lock) TryLock(who int32) bool {
	if l.holder != 0 || l.freed {
		return false
	}
	l.holder = who
	return true
}

// Unlock releases the lock if who holds it and reports whether it did.
func (l *Lock) Unlock(who int32) bool {
	if l.holder != who {
		return false
	}
	l.holder = 0
	return true
}

// Free marks the lock's storage freed (ptlock_free).
func (l *Lock) Free() { l.freed = true }

// pte512 and upper512 hold a table and its arrays in one allocation for
// the common 512-entry size, so that a fresh table costs one allocation.
type pte512 struct {
	Table
	arr [512]Entry
}

type upper512 struct {
	Table
	arr    [512]Entry
	tables [512]*Table
}

// newTable allocates a table of n entries, with child pointers if upper.
func newTable(n int, upper bool) *Table {
	switch {
	case n == 512 && upper:
		u := &upper512{}
		u.entries, u.next = u.arr[:], u.tables[:]
		return &u.Table
	case n == 512:
		p := &pte512{}
		p.entries = p.arr[:]
		return &p.Table
	}
	t := &Table{entries: make([]Entry, n)}
	if upper {
		t.next = make([]*Table, n)
	}
	return t
}
