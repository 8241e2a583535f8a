package pgtable

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
)

// WriteKind says how an entry was changed, which matters on architectures
// that forbid changing a live entry with a plain store (s390).
type WriteKind uint8

const (
	// WritePlain is a plain store: set_pte, pmd_clear, pmd_populate.
	WritePlain WriteKind = iota
	// WriteExchange is an invalidating exchange that purged the old
	// translation from every TLB as part of the write (s390 IPTE, IDTE).
	WriteExchange
	// WriteHardware is the MMU setting the access or dirty bit of a live
	// entry, which break-before-make allows.
	WriteHardware
)

// Observer sees every entry write; the TLB validator uses it to check
// break-before-make and s390's invalidate-before-change rule.
type Observer interface {
	// Written is called after entry p (mapping addr) changed from old to
	// new.
	Written(pt *PageTable, addr uint64, p Ptr, old, new Entry, kind WriteKind)
}

// LazyObserver is an Observer that also sees lazy-MMU sections begin and
// end: sparc64 flushes the addresses it batched when a section ends.
type LazyObserver interface {
	Observer
	// LazyMMU is called after the table entered (enter) or left a
	// lazy-MMU section; Lazy() tells whether sections are still open.
	LazyMMU(pt *PageTable, enter bool)
}

// RawGet reads an entry (__ptep_get, pmdp_get) and counts the read. For
// a pointer to no entry it reads nothing and returns 0 (see Misuse).
func (pt *PageTable) RawGet(p Ptr) Entry {
	if !p.In(1) && pt.Misused("read", 0, p, 1) {
		return 0
	}
	pt.meter.Add(cost.EntryReads, 1)
	return p.T.entries[p.I]
}

// write stores e into p and keeps the table's use count, the counters and
// the observer up to date. It is the one place entries change.
func (pt *PageTable) write(addr uint64, p Ptr, e Entry, kind WriteKind) {
	t := p.T
	old := t.entries[p.I]
	t.entries[p.I] = e
	f := pt.fmt
	oldNone, newNone := f.IsNone(old, t.level), f.IsNone(e, t.level)
	if oldNone != newNone {
		if newNone {
			t.used--
		} else {
			t.used++
		}
	}
	ev := cost.UpperSets
	switch {
	case t.level == PTE && newNone:
		ev = cost.PTEClears
	case t.level == PTE:
		ev = cost.PTESets
	case newNone:
		ev = cost.UpperClears
	}
	pt.meter.Note(ev, 1, addr, uint64(e))
	if pt.observer != nil && !pt.observerQuiet() {
		pt.observer.Written(pt, addr, p, old, e, kind)
	}
}

// observerQuiet reports whether the observer says it ignores writes now
// (QuietObserver), so that telling it of one can be skipped.
func (pt *PageTable) observerQuiet() bool { return pt.quietFlag != nil && *pt.quietFlag }

// RawSet stores a leaf or empty entry with a plain store (set_pte).
// Precondition: p does not hold a table entry (use ClearTable for those).
// A pointer to no entry stores nothing (see Misuse).
func (pt *PageTable) RawSet(addr uint64, p Ptr, e Entry) {
	if !p.In(1) && pt.Misused("set", addr, p, 1) {
		return
	}
	if p.T.level == PTE {
		e |= pt.fmt.SetAlways
	}
	pt.write(addr, p, e, WritePlain)
}

// RawExchange stores e with an invalidating exchange and returns the old
// value; the caller has purged (or is about to purge) the old
// translation, as s390's IPTE does. A pointer to no entry stores
// nothing and returns 0 (see Misuse).
func (pt *PageTable) RawExchange(addr uint64, p Ptr, e Entry) Entry {
	if !p.In(1) && pt.Misused("exchange", addr, p, 1) {
		return 0
	}
	old := p.T.entries[p.I]
	if p.T.level == PTE {
		e |= pt.fmt.SetAlways
	}
	pt.write(addr, p, e, WriteExchange)
	return old
}

// RawSetPTEs writes nr consecutive PTEs starting at p, the first e and
// each next one mapping the next frame (__set_ptes).
// Entries reaching past the table store nothing (see Misuse).
func (pt *PageTable) RawSetPTEs(addr uint64, p Ptr, e Entry, nr int) {
	if !p.In(nr) && pt.Misused("set_ptes", addr, p, nr) {
		return
	}
	if p.T.level == PTE && pt.quiet() {
		pt.bulkSetPTEs(p, e, nr)
		return
	}
	ps := uint64(1) << pt.fmt.PageShift
	for i := 0; i < nr; i++ {
		pt.RawSet(addr, Ptr{T: p.T, I: p.I + i}, e)
		addr += ps
		e = pt.fmt.AdvancePFN(e, PTE, 1)
	}
}

// RawGetAndClear reads and clears one entry with a plain store
// (__ptep_get_and_clear).
func (pt *PageTable) RawGetAndClear(addr uint64, p Ptr) Entry {
	if !p.In(1) && pt.Misused("get_and_clear", addr, p, 1) {
		return 0
	}
	old := pt.RawGet(p)
	pt.write(addr, p, pt.fmt.None[p.T.level], WritePlain)
	return old
}

// RawClear clears one entry with a plain store (__pte_clear).
func (pt *PageTable) RawClear(addr uint64, p Ptr) {
	if !p.In(1) && pt.Misused("clear", addr, p, 1) {
		return
	}
	pt.write(addr, p, pt.fmt.None[p.T.level], WritePlain)
}

// Populate makes p point at table child (pmd_populate, pud_populate...).
// A child that mapped other addresses before (mremap moving a whole table
// with its subtree) has its descendants' first addresses moved with it.
// Precondition: p is empty and child is a detached table of the next level.
// A pointer to no entry, or no child, changes nothing (see Misuse).
func (pt *PageTable) Populate(addr uint64, p Ptr, child *Table) {
	if !p.In(1) && pt.Misused("populate", addr, p, 1) {
		return
	}
	if child == nil && pt.Misused("populate with no table", addr, p, 1) {
		return
	}
	size := p.T.entrySize()
	rebase(child, addr&^(size-1))
	p.T.next[p.I] = child
	pt.gen++
	pt.write(addr, p, pt.fmt.MkTable(p.T.level, child.pfn, pt.kernel), WritePlain)
}

// rebase records base as the first address t maps and moves the first
// addresses of t's descendants by as much: walk hints and gathers read
// them. Cost: one store per table below t, nothing for a fresh table.
func rebase(t *Table, base uint64) {
	delta := base - t.base
	t.base = base
	if delta == 0 || t.used == 0 {
		return
	}
	for _, c := range t.next {
		if c != nil {
			rebase(c, c.base+delta)
		}
	}
}

// ClearTable clears a table entry with a plain store and returns the table
// it pointed to, now detached (pmd_clear on a table entry). The table is
// not freed: the caller moves it (mremap) or frees it after the TLB flush
// (free_pgtables through the mmu_gather).
func (pt *PageTable) ClearTable(addr uint64, p Ptr) *Table {
	if !p.In(1) && pt.Misused("clear table", addr, p, 1) {
		return nil
	}
	child := p.T.next[p.I]
	p.T.next[p.I] = nil
	pt.gen++
	pt.write(addr, p, pt.fmt.None[p.T.level], WritePlain)
	return child
}

// SetLeaf writes a huge leaf at an upper level with a plain store
// (set_pmd_at, set_pud_at). It refuses, with EEXIST, to overwrite a table
// entry, which would lose the table.
func (pt *PageTable) SetLeaf(addr uint64, p Ptr, e Entry) error {
	if !p.Valid() {
		return fmt.Errorf("pgtable: SetLeaf at %#x: no entry: %w", addr, EINVAL)
	}
	if p.T.level == PTE {
		return fmt.Errorf("pgtable: SetLeaf at pte level: %w", EINVAL)
	}
	if p.T.next[p.I] != nil {
		return fmt.Errorf("pgtable: %s at %#x holds a table: %w", p.T.level, addr, EEXIST)
	}
	pt.write(addr, p, e, WritePlain)
	return nil
}

// ExchangeLeaf replaces an upper-level leaf with an invalidating exchange
// and returns the old value (pmdp_huge_get_and_clear, pmdp_invalidate,
// s390's IDTE).
// Precondition: p holds a leaf or nothing.
func (pt *PageTable) ExchangeLeaf(addr uint64, p Ptr, e Entry) Entry {
	if !p.In(1) && pt.Misused("exchange leaf", addr, p, 1) {
		return 0
	}
	old := p.T.entries[p.I]
	pt.write(addr, p, e, WriteExchange)
	return old
}

// IsNone reports whether the entry p points at is empty, without counting
// a read (the caller has read it).
func (pt *PageTable) IsNone(e Entry, l Level) bool { return pt.fmt.IsNone(e, l) }

// MkUptodate clears, in place, the bits of the entry at p that every PTE
// write sets (Format.SetAlways) and that pte_none ignores
// (Format.NoneIgnore): UML's _PAGE_NEEDSYNC, which pte_mkuptodate and
// pmd_mkuptodate clear once a TLB sync has brought the host mapping in
// line with the entry. The MMU reads none of these bits and the entry
// stays empty or not as it was, so this is the sync's bookkeeping, not
// an entry write: nothing is counted and the observer is not told. On
// arches without such bits it changes nothing.
func (pt *PageTable) MkUptodate(p Ptr) {
	if !p.In(1) && pt.Misused("mkuptodate", 0, p, 1) {
		return
	}
	p.T.entries[p.I] &^= pt.fmt.SetAlways & pt.fmt.NoneIgnore
}

// HWUpdate stores e as the MMU does when it sets the access or dirty bit
// of a live entry during a walk (an atomic update, not a kernel store):
// it counts ad_updates rather than an entry write.
func (pt *PageTable) HWUpdate(addr uint64, p Ptr, e Entry) {
	if !p.In(1) && pt.Misused("hardware update", addr, p, 1) {
		return
	}
	t := p.T
	old := t.entries[p.I]
	t.entries[p.I] = e
	pt.meter.Note(cost.ADUpdates, 1, addr, uint64(e))
	if pt.observer != nil {
		pt.observer.Written(pt, addr, p, old, e, WriteHardware)
	}
}

// CheckPtr reports, with EINVAL naming the problem, whether p and the nr
// entries from it (nr >= 1) are what the entry primitives (RawGet, RawSet,
// SetPTEs, PtepGet, ClearFullPTEs, WrprotectPTEs...) expect: p points into
// a live table of pt, at the entry that maps addr, and the nr entries stay
// inside that table. The primitives themselves check only the last part
// (see Misuse): they run once per entry in mremap's and fork's loops, and
// their callers get p from a walk of pt (see ARCHITECTURE.md, "Checks in
// the entry primitives"). Cost: one walk from the root.
func (pt *PageTable) CheckPtr(addr uint64, p Ptr, nr int) error {
	switch {
	case p.T == nil:
		return fmt.Errorf("pgtable: pointer for %#x: no table: %w", addr, EINVAL)
	case p.T.freed:
		return fmt.Errorf("pgtable: pointer for %#x: %s table pfn %#x is freed: %w", addr, p.T.level, p.T.pfn, EINVAL)
	case nr < 1 || p.I < 0 || p.I > len(p.T.entries)-nr:
		return fmt.Errorf("pgtable: pointer for %#x: entries %d+%d outside a table of %d: %w", addr, p.I, nr, len(p.T.entries), EINVAL)
	case !pt.space.Contains(addr, 1):
		return fmt.Errorf("pgtable: pointer for %#x: address outside %#x-%#x: %w", addr, pt.space.Start, pt.space.End, EINVAL)
	}
	for t := pt.root; t != p.T; {
		var next *Table
		if t.level < p.T.level {
			next = t.next[pt.index(t, addr)]
		}
		if next == nil {
			return fmt.Errorf("pgtable: pointer for %#x: %s table pfn %#x is not on the address's walk: %w", addr, p.T.level, p.T.pfn, EINVAL)
		}
		t = next
	}
	if i := pt.index(p.T, addr); i != p.I {
		return fmt.Errorf("pgtable: pointer for %#x: entry %d, but the address selects %d: %w", addr, p.I, i, EINVAL)
	}
	return nil
}
