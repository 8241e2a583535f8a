package proptest

import (
	"slices"

	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/vmemmap"
)

// Snapshot is the observable state of a machine, with frames named by the
// order in which they are first seen (address spaces in creation order,
// leaves in address order, then page caches, then hugetlb pools), so that
// two machines that allocated their page tables differently still compare
// equal when they map the same data the same way. Costs, counters and TLB
// contents are left out: they are what twins may differ in.
type Snapshot struct {
	// MMs are the live address spaces in creation order.
	MMs []MMState
	// Files are the page caches in creation order.
	Files []FileState
	// Folios are every folio seen, in naming order.
	Folios []FolioState
	// Pools are the hugetlb pools, smallest size first.
	Pools []PoolState
	// InUse counts allocated frames by kind (tables, folios, kernel);
	// KernelFrames is what the machine accounts for as kernel memory.
	InUse        [3]uint64
	KernelFrames uint64
}

// MMState is one address space.
type MMState struct {
	// Name is the address space's name; VMAs its VMAs as VMA.String
	// spells them.
	Name string
	VMAs []string
	// RSS are the MM_* counters; Deposits the PTE tables deposited for
	// huge PMDs; HasPinned MMF_HAS_PINNED.
	RSS       [4]int64
	Deposits  int
	HasPinned bool
	// Leaves are the non-empty leaf entries in address order.
	Leaves []LeafState
}

// LeafState is one leaf entry: what it maps and how.
type LeafState struct {
	// Addr is the first address the entry maps; Level its level.
	Addr  uint64
	Level pgtable.Level
	// Folio is the folio's name (its index in Snapshot.Folios), -1 for the
	// zero page and -2 for a frame outside any folio; Page the frame's
	// index in the folio.
	Folio int
	Page  uint64
	// Bits are the entry's flags as the core reads them; Raw is the entry
	// without its frame number and the arch-private contiguous bit.
	Bits EntryBits
	Raw  pgtable.Entry
	// Content holds the content value of every page the leaf maps.
	Content []uint64
}

// EntryBits are a leaf's flags, read through the arch's Format
// (pte_present, pte_write, pte_young...).
type EntryBits struct {
	Present, Readable, Write, Exec, User, Special, Young, Dirty, SoftDirty, UffdWP bool
}

// FileState is one file's page cache.
type FileState struct {
	// Name is the file's name; Indices its cached page indices in order.
	Name    string
	Indices []uint64
	// Folio and Page name the frame caching each index; Content its value.
	Folio   []int
	Page    []uint64
	Content []uint64
}

// FolioState is one folio.
type FolioState struct {
	// Order is log2 of its pages; Ref, Mapcount, Entire and Pins its
	// refcount, total and entire mapcounts and pins.
	Order                       uint8
	Ref, Mapcount, Entire, Pins int
	// PageMaps and Exclusive are each page's mapcount and
	// PageAnonExclusive.
	PageMaps  []int
	Exclusive []bool
	// Anon, Dirty, PageCache and HugeTLB are the folio's flags.
	Anon, Dirty, PageCache, HugeTLB bool
	// Young and DirtyPTE OR the young and dirty bits of every leaf that
	// maps the folio (what access tracking at folio granularity sees).
	Young, DirtyPTE bool
}

// PoolState is one hugetlb pool.
type PoolState struct {
	// Size is the folio size; Folios name the free folios in free-list
	// order and Optimized says which have an optimised vmemmap.
	Size      uint64
	Folios    []int
	Optimized []bool
}

// namer gives folios their names in order of first sight.
type namer struct {
	mem   *phys.Memory
	ids   map[phys.PFN]int
	order []phys.Folio
}

func (n *namer) name(pfn phys.PFN) (int, uint64) {
	if !n.mem.IsAllocated(pfn) {
		return -2, 0
	}
	f := n.mem.FolioOf(pfn)
	id, ok := n.ids[f.PFN]
	if !ok {
		id = len(n.order)
		n.ids[f.PFN] = id
		n.order = append(n.order, f)
	}
	return id, uint64(pfn - f.PFN)
}

// Take records the observable state of m. It counts nothing and changes
// nothing but the metadata sections phys allocates on first look.
func Take(m *mmu.Machine) Snapshot {
	var s Snapshot
	mem := m.Memory()
	fm := &m.Arch().Format
	ps := m.Arch().PageSize()
	n := &namer{mem: mem, ids: map[phys.PFN]int{}}
	young := map[int]bool{}
	dirty := map[int]bool{}
	for _, mm := range m.MMs() {
		ms := MMState{Name: mm.Name(), Deposits: mm.Deposits(), HasPinned: mm.HasPinned()}
		for k := range ms.RSS {
			ms.RSS[k] = mm.RSS(mmu.RSSKind(k))
		}
		for _, v := range mm.VMAs() {
			ms.VMAs = append(ms.VMAs, v.String())
		}
		mm.PageTable().Leaves(0, 0, func(l pgtable.Leaf) bool {
			e := l.Entry
			ls := LeafState{Addr: l.Addr, Level: l.Level, Folio: -2}
			ls.Bits = EntryBits{
				Present: fm.Present(e, l.Level), Readable: fm.Readable(e, l.Level), Write: fm.Write(e, l.Level),
				Exec: fm.Exec(e, l.Level), User: fm.User(e, l.Level), Special: fm.Special(e, l.Level),
				Young: fm.Young(e, l.Level), Dirty: fm.Dirty(e, l.Level), SoftDirty: fm.SoftDirty(e, l.Level),
				UffdWP: fm.UffdWP(e, l.Level),
			}
			// The frame differs between twins; PTE_CONT is arm64's private
			// bit; UML's _PAGE_NEEDSYNC is the host-sync bookkeeping that
			// any access may clear (MkUptodate).
			if l.Level == pgtable.PTE {
				ls.Raw = fm.MkNonCont(e) &^ fm.PTE.AddrMask &^ fm.SetAlways
			} else {
				ls.Raw = e &^ fm.Huge.AddrMask &^ fm.SetAlways
			}
			if ls.Bits.Present {
				pfn := fm.PFN(e, l.Level)
				if pfn == m.ZeroPage() {
					ls.Folio = -1
				} else {
					ls.Folio, ls.Page = n.name(pfn)
				}
				for a := uint64(0); a < l.Size; a += ps {
					c, _ := mm.Content(l.Addr + a)
					ls.Content = append(ls.Content, c)
				}
				if ls.Folio >= 0 {
					young[ls.Folio] = young[ls.Folio] || ls.Bits.Young
					dirty[ls.Folio] = dirty[ls.Folio] || ls.Bits.Dirty
				}
			}
			ms.Leaves = append(ms.Leaves, ls)
			return true
		})
		s.MMs = append(s.MMs, ms)
	}
	for _, f := range m.Files() {
		fs := FileState{Name: f.Name}
		for _, idx := range f.Indices() {
			pfn, _ := f.Cached(idx)
			id, pg := n.name(pfn)
			fs.Indices = append(fs.Indices, idx)
			fs.Folio = append(fs.Folio, id)
			fs.Page = append(fs.Page, pg)
			fs.Content = append(fs.Content, mem.Content(pfn))
		}
		s.Files = append(s.Files, fs)
	}
	if m.HugeTLB() != nil {
		for _, p := range vmemmap.Of(m).Pools() {
			psnap := PoolState{Size: p.Size()}
			for _, f := range p.Folios() {
				id, _ := n.name(f.PFN)
				psnap.Folios = append(psnap.Folios, id)
				psnap.Optimized = append(psnap.Optimized, p.Optimized(f))
			}
			s.Pools = append(s.Pools, psnap)
		}
	}
	for id, f := range n.order {
		fsnap := FolioState{
			Order: f.Order, Ref: mem.Refcount(f), Mapcount: mem.Mapcount(f), Entire: mem.EntireMapcount(f),
			Pins: mem.Pincount(f), Anon: mem.Test(f, phys.FlagAnon), Dirty: mem.Test(f, phys.FlagDirty),
			PageCache: mem.Test(f, phys.FlagPageCache), HugeTLB: mem.Test(f, phys.FlagHugeTLB),
			Young: young[id], DirtyPTE: dirty[id],
		}
		pages := mem.Pages(f)
		for i := range pages {
			fsnap.PageMaps = append(fsnap.PageMaps, pages[i].Mapcount())
			fsnap.Exclusive = append(fsnap.Exclusive, pages[i].Has(phys.FlagAnonExclusive))
		}
		s.Folios = append(s.Folios, fsnap)
	}
	for k := phys.KindTable; k <= phys.KindKernel; k++ {
		s.InUse[k] = mem.InUse(k)
	}
	s.KernelFrames = m.KernelFrames()
	return s
}

// LoosenAD drops what the contiguous-PTE twin may legitimately differ in:
// contpte_convert repaints every entry of a block with the access and
// dirty bits of all of them (and arm64 derives PTE_RDONLY from dirty), so
// those bits are not compared per entry. Per folio they survive only
// while the whole block stays mapped: once part of it is unmapped, the
// bits an unfold spread stay on the entries left, where without contpte
// the zap took them away (Linux's zap turns a dirty PTE of a file folio
// into the folio's dirty flag, a young one into PG_referenced, which the
// model does not keep, and drops both for anonymous folios). What stays
// equal is the data-integrity view: a file folio is dirty (flag or any
// PTE) in both or in neither.
func (s *Snapshot) LoosenAD() {
	for i := range s.MMs {
		for j := range s.MMs[i].Leaves {
			l := &s.MMs[i].Leaves[j]
			l.Bits.Young, l.Bits.Dirty, l.Raw = false, false, 0
		}
	}
	for i := range s.Folios {
		f := &s.Folios[i]
		f.Young = false
		if f.Anon {
			f.DirtyPTE = false
		} else {
			f.Dirty = f.Dirty || f.DirtyPTE
			f.DirtyPTE = false
		}
	}
}

// LoosenSoftDirty drops what the table-moving twins may legitimately
// differ in: move_ptes marks every present PTE it moves soft-dirty
// (move_soft_dirty_pte), while move_normal_pmd and move_normal_pud move a
// whole table and leave its PTEs as they were, in Linux as here.
func (s *Snapshot) LoosenSoftDirty(fm *pgtable.Format) {
	for i := range s.MMs {
		for j := range s.MMs[i].Leaves {
			l := &s.MMs[i].Leaves[j]
			l.Bits.SoftDirty = false
			if l.Level == pgtable.PTE {
				l.Raw &^= fm.PTE.SoftDirty
			} else {
				l.Raw &^= fm.Huge.SoftDirty
			}
		}
	}
}

// Equal reports whether two snapshots are the same, without reflection
// (reflect.DeepEqual dominated the property tests under the race
// detector); cmp.Diff shows how they differ.
func (s *Snapshot) Equal(o *Snapshot) bool {
	if len(s.MMs) != len(o.MMs) || len(s.Files) != len(o.Files) || len(s.Folios) != len(o.Folios) ||
		len(s.Pools) != len(o.Pools) || s.InUse != o.InUse || s.KernelFrames != o.KernelFrames {
		return false
	}
	for i := range s.MMs {
		a, b := &s.MMs[i], &o.MMs[i]
		if a.Name != b.Name || a.RSS != b.RSS || a.Deposits != b.Deposits || a.HasPinned != b.HasPinned ||
			!slices.Equal(a.VMAs, b.VMAs) || len(a.Leaves) != len(b.Leaves) {
			return false
		}
		for j := range a.Leaves {
			x, y := &a.Leaves[j], &b.Leaves[j]
			if x.Addr != y.Addr || x.Level != y.Level || x.Folio != y.Folio || x.Page != y.Page ||
				x.Bits != y.Bits || x.Raw != y.Raw || !slices.Equal(x.Content, y.Content) {
				return false
			}
		}
	}
	for i := range s.Files {
		a, b := &s.Files[i], &o.Files[i]
		if a.Name != b.Name || !slices.Equal(a.Indices, b.Indices) || !slices.Equal(a.Folio, b.Folio) ||
			!slices.Equal(a.Page, b.Page) || !slices.Equal(a.Content, b.Content) {
			return false
		}
	}
	for i := range s.Folios {
		a, b := &s.Folios[i], &o.Folios[i]
		if a.Order != b.Order || a.Ref != b.Ref || a.Mapcount != b.Mapcount || a.Entire != b.Entire ||
			a.Pins != b.Pins || a.Anon != b.Anon || a.Dirty != b.Dirty || a.PageCache != b.PageCache ||
			a.HugeTLB != b.HugeTLB || a.Young != b.Young || a.DirtyPTE != b.DirtyPTE ||
			!slices.Equal(a.PageMaps, b.PageMaps) || !slices.Equal(a.Exclusive, b.Exclusive) {
			return false
		}
	}
	for i := range s.Pools {
		a, b := &s.Pools[i], &o.Pools[i]
		if a.Size != b.Size || !slices.Equal(a.Folios, b.Folios) || !slices.Equal(a.Optimized, b.Optimized) {
			return false
		}
	}
	return true
}
