package pgtable

import (
	"fmt"

	"github.com/ptsim/ptsim/phys"
)

// MapOpts selects how Map and Protect build leaf entries.
type MapOpts struct {
	// Prot is the user protection (an index into the protection map).
	// Private writable protections start read-only, as for COW; use
	// ProtShared|ProtWrite for a writable mapping.
	Prot Prot
	// Kernel maps with PAGE_KERNEL (or PAGE_KERNEL_RO without ProtWrite)
	// instead of a user protection.
	Kernel bool
	// Huge lets Map use upper-level leaves where size and alignment allow.
	Huge bool
	// Old and Dirty give the entries' initial state; the default is young
	// and clean, as pfn_pte with the protection map gives.
	Old, Dirty bool
}

// CheckRange validates [addr, addr+size): page-aligned, non-empty, no
// overflow, inside the table's address space. It returns EINVAL naming the
// problem.
func (pt *PageTable) CheckRange(addr, size uint64) error {
	ps := pt.geo.PageSize()
	switch {
	case size == 0:
		return fmt.Errorf("range %#x+0: length 0: %w", addr, EINVAL)
	case addr&(ps-1) != 0:
		return fmt.Errorf("address %#x not aligned to the %d-byte page: %w", addr, ps, EINVAL)
	case size&(ps-1) != 0:
		return fmt.Errorf("length %#x not a multiple of the %d-byte page: %w", size, ps, EINVAL)
	case addr+size-1 < addr:
		return fmt.Errorf("range %#x+%#x wraps around: %w", addr, size, EINVAL)
	case !pt.space.Contains(addr, size):
		return fmt.Errorf("range %#x-%#x outside the address space %#x-%#x: %w",
			addr, addr+size, pt.space.Start, pt.space.End, EINVAL)
	case pt.top > 0 && (addr+size-1)>>pt.geo.Tables[pt.top].Shift >= uint64(pt.geo.Tables[pt.top].Entries):
		// A table that has not grown to all its levels (s390 before
		// crst_table_upgrade) cannot index higher addresses: they
		// would alias low ones.
		limit := pt.geo.Tables[pt.top].Span()
		return fmt.Errorf("range %#x-%#x above the %d-level limit %#x; grow the table first: %w",
			addr, addr+size, pt.Levels(), limit, EINVAL)
	}
	return nil
}

// leafFor returns the leaf entry Map writes at level l for frame pfn.
func (pt *PageTable) leafFor(l Level, pfn phys.PFN, o MapOpts) Entry {
	f := pt.fmt
	var e Entry
	switch {
	case l == PTE && o.Kernel:
		e = f.MkKernel(pfn, o.Prot&ProtWrite != 0)
	case l == PTE:
		e = f.MkPTE(pfn, o.Prot)
	case o.Kernel && o.Prot&ProtWrite != 0:
		e = f.MkKernelHuge(pfn) | f.HugeLevelBits[l]
	case o.Kernel:
		e = f.PTEToHuge(f.MkKernel(pfn, false))
		e = f.SetPFN(e, l, pfn) | f.HugeLevelBits[l]
	default:
		e = f.MkHugeAt(l, pfn, o.Prot)
	}
	// An entry the protection already makes young is left alone: marking
	// sparc64's PAGE_NONE young would make it valid.
	switch {
	case o.Old:
		e = f.MkOld(e, l)
	case !f.Young(e, l):
		e = f.MkYoung(e, l)
	}
	if o.Dirty {
		e = f.MkDirty(e, l)
	}
	return e
}

// hugeLevel returns the largest leaf level that can map [addr, end) from
// frame pfn onwards, or PTE.
func (pt *PageTable) hugeLevel(addr, end uint64, pfn phys.PFN) Level {
	pa := uint64(pfn) << pt.fmt.PageShift
	for i := pt.top; i < len(pt.geo.Tables)-1; i++ {
		tg := pt.geo.Tables[i]
		if !pt.fmt.LeafLevels[tg.Level] {
			continue
		}
		size := tg.Size()
		if addr&(size-1) == 0 && pa&(size-1) == 0 && end-addr >= size {
			return tg.Level
		}
	}
	return PTE
}

// Map maps [addr, addr+size) to the frames from pfn on. It fails with
// EINVAL for a bad range or frames beyond memory, with EEXIST when part of
// the range is already mapped, and with ENOMEM when a table cannot be
// allocated; on any error the table is as it was. Cost: one walk per page
// table touched, one entry write per leaf.
func (pt *PageTable) Map(addr, size uint64, pfn phys.PFN, o MapOpts) error {
	if err := pt.CheckRange(addr, size); err != nil {
		return fmt.Errorf("map: %w", err)
	}
	pages := size >> pt.fmt.PageShift
	if !pt.mem.Valid(pfn) || !pt.mem.Valid(pfn+phys.PFN(pages-1)) {
		return fmt.Errorf("map %#x: frames %#x+%d beyond memory: %w", addr, pfn, pages, EINVAL)
	}
	end := addr + size
	pmd := pt.geo.Size(PMD)
	if !o.Huge && (addr^(end-1))&^(pmd-1) == 0 {
		return pt.mapInTable(addr, pages, pfn, o)
	}
	if pt.anyLeaf(pt.root, pt.rootBase(), addr, end) {
		return fmt.Errorf("map %#x-%#x: already mapped: %w", addr, end, EEXIST)
	}
	var fresh []*Table
	ps := pt.geo.PageSize()
	for a := addr; a != end; {
		l := PTE
		if o.Huge {
			l = pt.hugeLevel(a, end, pfn)
		}
		before := pt.tables
		p, err := pt.WalkAlloc(a, l)
		fresh = pt.collectFresh(fresh, a, l, before)
		if err != nil {
			pt.unmapFresh(addr, a, fresh)
			return fmt.Errorf("map %#x: %w", a, err)
		}
		if l != PTE {
			if err := pt.SetLeaf(a, p, pt.leafFor(l, pfn, o)); err != nil {
				pt.unmapFresh(addr, a, fresh)
				return fmt.Errorf("map %#x: %w", a, err)
			}
			n := pt.geo.Size(l) / ps
			a += n * ps
			pfn += phys.PFN(n)
			continue
		}
		n := uint64(p.T.Len() - p.I)
		if left := (end - a) / ps; left < n {
			n = left
		}
		pt.SetPTEs(a, p, pt.leafFor(PTE, pfn, o), int(n))
		a += n * ps
		pfn += phys.PFN(n)
	}
	return nil
}

// mapInTable is Map for a range inside one PTE table: one walk that
// allocates, then a check that the slots are free, then the writes.
func (pt *PageTable) mapInTable(addr, pages uint64, pfn phys.PFN, o MapOpts) error {
	before := pt.tables
	p, err := pt.WalkAlloc(addr, PTE)
	var fresh []*Table
	if pt.tables != before {
		fresh = pt.collectFresh(nil, addr, PTE, before)
	}
	if err == nil && p.T.level != PTE {
		err = fmt.Errorf("map %#x: already mapped by a %s leaf: %w", addr, p.T.level, EEXIST)
	}
	if err == nil {
		for i := 0; i < int(pages); i++ {
			if !pt.fmt.IsNone(p.T.entries[p.I+i], PTE) {
				err = fmt.Errorf("map %#x: already mapped: %w", addr+uint64(i)<<pt.fmt.PageShift, EEXIST)
				break
			}
		}
	}
	if err != nil {
		pt.unmapFresh(addr, addr, fresh)
		return fmt.Errorf("map %#x: %w", addr, err)
	}
	pt.SetPTEs(addr, p, pt.leafFor(PTE, pfn, o), int(pages))
	return nil
}

// collectFresh appends the tables WalkAlloc just allocated on addr's path
// (tables created since the count was before).
func (pt *PageTable) collectFresh(fresh []*Table, addr uint64, l Level, before int) []*Table {
	if pt.tables == before {
		return fresh
	}
	n := pt.tables - before
	// The fresh tables are the last n tables on addr's path.
	var path []*Table
	t := pt.root
	for t != nil && !holds(t, l) {
		c := t.next[pt.index(t, addr)]
		if c == nil {
			break
		}
		path = append(path, c)
		t = c
	}
	if n > len(path) {
		n = len(path)
	}
	return append(fresh, path[len(path)-n:]...)
}

// unmapFresh undoes a failed Map: it clears the leaves written in
// [start, end) and frees the tables the Map allocated, deepest first.
func (pt *PageTable) unmapFresh(start, end uint64, fresh []*Table) {
	if end > start {
		pt.clearLeaves(start, end)
	}
	for i := len(fresh) - 1; i >= 0; i-- {
		t := fresh[i]
		p, ok := pt.parentOf(t)
		if !ok || t.used != 0 {
			continue
		}
		pt.ClearTable(t.base, p)
		_ = pt.FreeTable(t)
	}
}

// parentOf finds the entry that points at table t.
func (pt *PageTable) parentOf(t *Table) (Ptr, bool) {
	cur := pt.root
	for cur != nil && cur != t {
		i := pt.index(cur, t.base)
		c := cur.Child(i)
		if c == t {
			return Ptr{T: cur, I: i}, true
		}
		cur = c
	}
	return Ptr{}, false
}

// anyLeaf reports whether any non-empty leaf entry maps part of
// [start, end) below table t, which maps from base.
func (pt *PageTable) anyLeaf(t *Table, base, start, end uint64) bool {
	tg := &pt.geo.Tables[t.geo]
	size := tg.Size()
	first := 0
	if start > base {
		first = int((start - base) >> tg.Shift)
	}
	for i := first; i < len(t.entries); i++ {
		a := base + uint64(i)*size
		if a >= end && end != 0 {
			break
		}
		if c := t.Child(i); c != nil {
			if pt.anyLeaf(c, a, start, end) {
				return true
			}
			continue
		}
		if !pt.fmt.IsNone(t.entries[i], t.level) {
			return true
		}
	}
	return false
}

// IsEmpty reports whether nothing maps any part of [addr, addr+size).
func (pt *PageTable) IsEmpty(addr, size uint64) bool {
	return !pt.anyLeaf(pt.root, pt.rootBase(), addr, addr+size)
}

// clearLeaves clears every leaf in [start, end) with plain stores.
// Precondition: no huge leaf straddles start or end.
func (pt *PageTable) clearLeaves(start, end uint64) {
	var ps []Leaf
	pt.Leaves(start, end, func(l Leaf) bool { ps = append(ps, l); return true })
	for _, l := range ps {
		if l.Level == PTE {
			pt.PTEClear(l.Addr, l.Ptr)
		} else {
			pt.RawClear(l.Addr, l.Ptr)
		}
	}
}

// splitStep records one split, so a failed multi-split can be undone.
type splitStep struct {
	p   Ptr
	old Entry
	t   *Table
}

// SplitLeaf replaces the huge leaf at p, which maps addr, with a table of
// leaves of the next level mapping the same frames with the same
// protection and state (split_huge_pmd's result; vmemmap_split_pmd). The
// new table is installed with a plain store over the live leaf, as the
// vmemmap split does; callers that must break before make clear and flush
// first. It fails with EINVAL when p is not a present huge leaf, and with
// ENOMEM, leaving the leaf in place.
func (pt *PageTable) SplitLeaf(addr uint64, p Ptr) error {
	if !p.Valid() {
		return fmt.Errorf("pgtable: split at %#x: no entry: %w", addr, EINVAL)
	}
	_, err := pt.splitLeaf(addr, p)
	return err
}

func (pt *PageTable) splitLeaf(addr uint64, p Ptr) (splitStep, error) {
	l := p.T.level
	e := p.T.entries[p.I]
	if l == PTE || p.T.next[p.I] != nil || !pt.fmt.IsLeaf(e, l) {
		return splitStep{}, fmt.Errorf("split %#x: %s entry is not a huge leaf: %w", addr, l, EINVAL)
	}
	childGeo := pt.geo.Tables[p.T.geo+1]
	nt, err := pt.AllocTable(childGeo.Level)
	if err != nil {
		return splitStep{}, fmt.Errorf("split %#x: %w", addr, err)
	}
	base := addr &^ (pt.tableGeo(p.T).Size() - 1)
	nt.base = base
	ce := e
	if childGeo.Level == PTE {
		ce = pt.fmt.HugeToPTE(e &^ pt.fmt.HugeLevelBits[l])
	} else if pt.fmt.LeafLevels[childGeo.Level] {
		ce = e&^pt.fmt.HugeLevelBits[l] | pt.fmt.HugeLevelBits[childGeo.Level]
	} else {
		_ = pt.FreeTable(nt)
		return splitStep{}, fmt.Errorf("split %#x: no %s leaves on this arch: %w", addr, childGeo.Level, EINVAL)
	}
	step := childGeo.Size() >> pt.fmt.PageShift
	for i := range nt.entries {
		pt.RawSet(base+uint64(i)*childGeo.Size(), Ptr{T: nt, I: i}, ce)
		ce = pt.fmt.AdvancePFN(ce, childGeo.Level, step)
	}
	p.T.next[p.I] = nt
	pt.gen++
	pt.write(addr, p, pt.fmt.MkTable(l, nt.pfn, pt.kernel), WritePlain)
	return splitStep{p: p, old: e, t: nt}, nil
}

// unsplit undoes splitLeaf.
func (pt *PageTable) unsplit(s splitStep) {
	for i := range s.t.entries {
		if !pt.fmt.IsNone(s.t.entries[i], s.t.level) {
			pt.RawClear(s.t.base, Ptr{T: s.t, I: i})
		}
	}
	s.p.T.next[s.p.I] = nil
	pt.gen++
	pt.write(s.t.base, s.p, s.old, WritePlain)
	_ = pt.FreeTable(s.t)
}

// splitEdges splits the huge leaves that straddle start or end, so that
// every leaf in [start, end) lies wholly inside it. On ENOMEM it undoes
// its splits and leaves the table as it was.
func (pt *PageTable) splitEdges(start, end uint64) error {
	var done []splitStep
	for _, edge := range [2]uint64{start, end} {
		for edge != 0 {
			p, found := pt.hugeAt(edge)
			if !found || edge&(pt.tableGeo(p.T).Size()-1) == 0 {
				break
			}
			s, err := pt.splitLeaf(edge, p)
			if err != nil {
				for i := len(done) - 1; i >= 0; i-- {
					pt.unsplit(done[i])
				}
				return err
			}
			done = append(done, s)
		}
	}
	return nil
}

// hugeAt returns the upper-level leaf entry (present or not) covering addr.
func (pt *PageTable) hugeAt(addr uint64) (Ptr, bool) {
	t := pt.root
	for t.level != PTE {
		i := pt.index(t, addr)
		if c := t.next[i]; c != nil {
			t = c
			continue
		}
		if pt.fmt.IsNone(t.entries[i], t.level) {
			return Ptr{}, false
		}
		return Ptr{T: t, I: i}, true
	}
	return Ptr{}, false
}

// Unmap clears every entry in [addr, addr+size), splitting huge leaves
// that straddle its ends, and frees the tables left empty in it. It does
// not flush any TLB: that is the caller's business. It fails with EINVAL
// for a bad range and with ENOMEM when a split cannot allocate; then the
// table is as it was.
func (pt *PageTable) Unmap(addr, size uint64) error {
	if err := pt.CheckRange(addr, size); err != nil {
		return fmt.Errorf("unmap: %w", err)
	}
	end := addr + size
	if err := pt.splitEdges(addr, end); err != nil {
		return fmt.Errorf("unmap: %w", err)
	}
	pt.clearLeaves(addr, end)
	pt.FreeEmpty(addr, end)
	return nil
}

// FreeEmpty frees every table below the root that maps part of
// [start, end) and holds no entries, deepest first, clearing the entries
// that pointed at them.
func (pt *PageTable) FreeEmpty(start, end uint64) {
	pt.freeEmpty(pt.root, pt.rootBase(), start, end)
}

func (pt *PageTable) freeEmpty(t *Table, base, start, end uint64) {
	size := pt.geo.Tables[t.geo].Size()
	for i := range t.next {
		c := t.next[i]
		if c == nil {
			continue
		}
		a := base + uint64(i)*size
		if a+size-1 < start || (end != 0 && a >= end) {
			continue
		}
		pt.freeEmpty(c, a, start, end)
		if c.used == 0 {
			pt.ClearTable(a, Ptr{T: t, I: i})
			_ = pt.FreeTable(c)
		}
	}
}

// Protect changes the protection of every present leaf in
// [addr, addr+size), keeping frames and access/dirty state (pte_modify),
// and splitting huge leaves that straddle its ends. Errors as Unmap.
func (pt *PageTable) Protect(addr, size uint64, o MapOpts) error {
	if err := pt.CheckRange(addr, size); err != nil {
		return fmt.Errorf("protect: %w", err)
	}
	end := addr + size
	if err := pt.splitEdges(addr, end); err != nil {
		return fmt.Errorf("protect: %w", err)
	}
	var ls []Leaf
	pt.Leaves(addr, end, func(l Leaf) bool { ls = append(ls, l); return true })
	for _, l := range ls {
		if !pt.fmt.Present(l.Entry, l.Level) {
			continue
		}
		if l.Level == PTE {
			pt.SetPTEAt(l.Addr, l.Ptr, pt.fmt.Modify(pt.PtepGet(l.Addr, l.Ptr), PTE, o.Prot))
		} else {
			pt.RawSet(l.Addr, l.Ptr, pt.fmt.Modify(l.Entry, l.Level, o.Prot))
		}
	}
	return nil
}
