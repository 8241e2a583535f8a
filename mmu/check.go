package mmu

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// Holder accounts for folio references held outside page tables and page
// caches, so that Check can balance every reference (the hugetlb pool
// holds its free folios this way).
type Holder interface {
	// Holdings calls fn for every folio the holder keeps, with the number
	// of references it holds on it.
	Holdings(fn func(f phys.Folio, refs int))
}

// AddHolder registers h with the invariant checker (nil is ignored).
func (m *Machine) AddHolder(h Holder) {
	if h != nil {
		m.holders = append(m.holders, h)
	}
}

// folioUse is what the checker finds of one folio.
type folioUse struct {
	// pte counts PTE mappings per page (index in the folio).
	pte map[int]int
	// entire counts PMD and PUD mappings.
	entire int
	// cache is 1 when a page cache holds the folio.
	cache int
	// held counts references reported by holders.
	held int
}

// checker collects what the tables, caches and holders show.
type checker struct {
	m      *Machine
	errs   []error
	folios map[phys.PFN]*folioUse
	// tableFrames counts the frames of every reachable or deposited table.
	tableFrames uint64
}

func (c *checker) errorf(format string, a ...any) {
	if len(c.errs) < 50 {
		c.errs = append(c.errs, fmt.Errorf(format, a...))
	}
}

func (c *checker) use(f phys.Folio) *folioUse {
	u := c.folios[f.PFN]
	if u == nil {
		u = &folioUse{pte: map[int]int{}}
		c.folios[f.PFN] = u
	}
	return u
}

// Check audits the whole machine and returns every inconsistency found
// (at most 50), joined, or nil: page tables well formed (child pointers
// match entries, use counts right, no freed table reachable), every user
// mapping inside a VMA, TLBs and walk caches in step with the tables and
// no break-before-make or live-store violation, per-page and per-folio
// mapcounts equal to what the tables map, refcounts equal to mappings
// plus page-cache, pin and holder references (so never below mapcount),
// RSS equal to what the tables map, exclusive pages mapped at most once,
// no entry primitive called with a bad pointer (pgtable.Misuse), and no
// leaked table or frame.
func (m *Machine) Check() error {
	c := &checker{m: m, folios: map[phys.PFN]*folioUse{}}
	c.checkMM(m.kernel)
	for _, mm := range m.mms {
		c.checkMM(mm)
	}
	for _, s := range m.tlb.Validate() {
		c.errorf("stale TLB: %s", s)
	}
	for _, v := range m.tlb.Violations() {
		c.errorf("violation: %v", v)
	}
	for _, f := range m.files {
		seen := map[phys.PFN]bool{}
		for _, idx := range f.Indices() {
			pfn := f.cache[idx]
			fo := m.mem.FolioOf(pfn)
			if !seen[fo.PFN] {
				seen[fo.PFN] = true
				c.use(fo).cache++
			}
		}
	}
	pinned := make([]phys.PFN, 0, len(m.pinned))
	for pfn := range m.pinned {
		pinned = append(pinned, pfn)
	}
	sort.Slice(pinned, func(i, j int) bool { return pinned[i] < pinned[j] })
	for _, pfn := range pinned {
		n := m.pinned[pfn]
		f := m.mem.FolioOf(pfn)
		c.use(f)
		if got := m.mem.Pincount(f); got != n {
			c.errorf("folio %#x: %d pins taken, pin count %d", pfn, n, got)
		}
	}
	for _, h := range m.holders {
		h.Holdings(func(f phys.Folio, refs int) { c.use(f).held += refs })
	}
	c.checkFolios()
	if got := m.mem.InUse(phys.KindTable); got != c.tableFrames {
		c.errorf("table frames: %d in use, %d reachable (leak or double count)", got, c.tableFrames)
	}
	if got := m.mem.InUse(phys.KindKernel); got != m.kernelFrames {
		c.errorf("kernel frames: %d in use, %d accounted", got, m.kernelFrames)
	}
	return errors.Join(c.errs...)
}

// checkMM audits one address space's VMAs, tables and RSS.
func (c *checker) checkMM(mm *MM) {
	m := c.m
	fm := &m.arch.Format
	if err := mm.pt.Misuse(); err != nil {
		c.errorf("%s: %v", mm.name, err)
	}
	var prev *VMA
	for _, v := range mm.vmas.v {
		if v.Start >= v.End || v.Start&(mm.pageSize()-1) != 0 || v.End&(mm.pageSize()-1) != 0 || v.Detached {
			c.errorf("%s: bad vma %s", mm.name, v)
		}
		if prev != nil && prev.End > v.Start {
			c.errorf("%s: vmas overlap: %s and %s", mm.name, prev, v)
		}
		prev = v
	}
	for _, t := range mm.deposits {
		c.tableFrames += 1 << m.arch.Geometry.Tables[len(m.arch.Geometry.Tables)-1].Order
		if t.Used() != 0 || t.Freed() {
			c.errorf("%s: deposited table pfn %#x in use or freed", mm.name, t.PFN())
		}
	}
	mm.pt.WalkTables(func(tv pgtable.TableVisit) bool {
		c.checkTable(mm, tv)
		return true
	})
	var rss [numRSS]int64
	mm.pt.Leaves(0, 0, func(l pgtable.Leaf) bool {
		if !fm.Present(l.Entry, l.Level) {
			return true
		}
		var v *VMA
		if !mm.kernel {
			v = mm.FindVMA(l.Addr)
			if v == nil || l.Addr+l.Size > v.End {
				c.errorf("%s: %s leaf at %#x outside any vma", mm.name, l.Level, l.Addr)
				return true
			}
		}
		pfn := fm.PFN(l.Entry, l.Level)
		if mm.kernel || fm.Special(l.Entry, l.Level) || pfn == m.zero {
			return true
		}
		if !m.mem.IsAllocated(pfn) {
			c.errorf("%s: %s at %#x maps free frame %#x", mm.name, l.Level, l.Addr, pfn)
			return true
		}
		f := m.mem.FolioOf(pfn)
		u := c.use(f)
		n := int64(1)
		if l.Level == pgtable.PTE {
			u.pte[int(pfn-f.PFN)]++
		} else {
			u.entire++
			n = int64(f.NrPages())
		}
		switch {
		case m.mem.Test(f, phys.FlagAnon):
			rss[MMAnonPages] += n
		case v != nil && v.File != nil && v.File.Shmem:
			rss[MMShmemPages] += n
		default:
			rss[MMFilePages] += n
		}
		return true
	})
	if !mm.kernel {
		for k := RSSKind(0); k < numRSS; k++ {
			if rss[k] != mm.rss[k] {
				c.errorf("%s: rss[%d] = %d, tables map %d", mm.name, k, mm.rss[k], rss[k])
			}
		}
	}
}

// checkTable audits one table against its entries.
func (c *checker) checkTable(mm *MM, tv pgtable.TableVisit) {
	fm := &c.m.arch.Format
	t := tv.Table
	c.tableFrames += 1 << c.m.arch.Geometry.Tables[c.geoIndex(t.Level())].Order
	if t.Freed() {
		c.errorf("%s: freed %s table pfn %#x still reachable", mm.name, t.Level(), t.PFN())
	}
	used := 0
	for i := 0; i < t.Len(); i++ {
		e := t.Entry(i)
		if !fm.IsNone(e, t.Level()) {
			used++
		}
		child := t.Child(i)
		if child == nil {
			continue
		}
		if fm.TablePFN(e) != child.PFN() {
			c.errorf("%s: %s table pfn %#x entry %d points at %#x but its child is pfn %#x",
				mm.name, t.Level(), t.PFN(), i, fm.TablePFN(e), child.PFN())
		}
	}
	if used != t.Used() {
		c.errorf("%s: %s table pfn %#x counts %d used entries, holds %d", mm.name, t.Level(), t.PFN(), t.Used(), used)
	}
}

func (c *checker) geoIndex(l pgtable.Level) int {
	for i, tg := range c.m.arch.Geometry.Tables {
		if tg.Level == l {
			return i
		}
	}
	return 0
}

// checkFolios balances every folio's mapcounts and references, and the
// frames in use against the folios found.
func (c *checker) checkFolios() {
	mem := c.m.mem
	heads := make([]phys.PFN, 0, len(c.folios))
	for pfn := range c.folios {
		heads = append(heads, pfn)
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i] < heads[j] })
	var frames uint64
	for _, pfn := range heads {
		u := c.folios[pfn]
		f := mem.FolioOf(pfn)
		frames += f.NrPages()
		total := u.entire
		for i, pg := range mem.Pages(f) {
			want := u.pte[i]
			total += want
			if pg.Mapcount() != want {
				c.errorf("folio %#x page %d: mapcount %d, tables map it %d times", pfn, i, pg.Mapcount(), want)
			}
			if pg.Has(phys.FlagAnonExclusive) && want+u.entire > 1 {
				c.errorf("folio %#x page %d: exclusive but mapped %d times", pfn, i, want+u.entire)
			}
		}
		if got := mem.EntireMapcount(f); got != u.entire {
			c.errorf("folio %#x: entire mapcount %d, tables map it whole %d times", pfn, got, u.entire)
		}
		if got := mem.Mapcount(f); got != total {
			c.errorf("folio %#x: folio mapcount %d, tables map %d", pfn, got, total)
		}
		ref := mem.Refcount(f)
		if ref < total {
			c.errorf("folio %#x: refcount %d below mapcount %d", pfn, ref, total)
		}
		extra := ref - total - u.cache - u.held
		switch {
		case f.Large():
			if extra != mem.Pincount(f) {
				c.errorf("folio %#x: refcount %d = %d maps + %d cache + %d held + %d pins + %d unexplained",
					pfn, ref, total, u.cache, u.held, mem.Pincount(f), extra-mem.Pincount(f))
			}
		case extra < 0 || extra%phys.PinBias != 0:
			c.errorf("folio %#x: refcount %d = %d maps + %d cache + %d held + %d unexplained",
				pfn, ref, total, u.cache, u.held, extra)
		}
	}
	if got := mem.InUse(phys.KindFolio); got != frames {
		c.errorf("folio frames: %d in use, %d reachable (leak)", got, frames)
	}
}
