package phys

// Page is the metadata of one frame, the simulator's struct page. It is 20
// bytes; together with the 8-byte PTE that maps it, a mapped base page costs
// under 32 bytes of simulator memory.
//
// As in Linux, the state of a large folio lives in its first pages: the
// head page holds the refcount and the folio flags; the unused refcount
// fields of the first tail pages hold the folio's pin count (page 1), its
// entire mapcount (page 2) and its total mapcount (page 3).
type Page struct {
	// lo and hi hold the page's content value, split so the struct packs
	// to 20 bytes.
	lo, hi uint32
	// ref is the refcount on a head page; on tails 1-3 of a large folio it
	// holds folio fields (see the type comment).
	ref int32
	// mapcnt counts the PTE mappings of this page.
	mapcnt int32
	// flags holds the folio order in its low bits and the Flag* bits.
	flags uint32
}

// Page flags. The low five bits of the flags word hold the folio order.
const (
	orderMask uint32 = 0x1f
	// FlagAllocated marks a frame that belongs to an allocated folio.
	FlagAllocated uint32 = 1 << (5 + iota)
	// FlagTail marks every page of a folio but the first.
	FlagTail
	// FlagPageTable marks a page-table page.
	FlagPageTable
	// FlagAnon marks an anonymous folio (on the head).
	FlagAnon
	// FlagAnonExclusive marks an anonymous page that only one address
	// space maps and may write without COW (PageAnonExclusive, per page).
	FlagAnonExclusive
	// FlagDirty marks a folio whose content differs from its backing
	// store (on the head).
	FlagDirty
	// FlagHugeTLB marks a hugetlb folio (on the head).
	FlagHugeTLB
	// FlagVmemmapOptimized marks a hugetlb folio whose vmemmap has been
	// optimised (on the head).
	FlagVmemmapOptimized
	// FlagPageCache marks a folio held by a file's page cache (on the head).
	FlagPageCache
	// FlagReserved marks a frame that is never freed (the zero page,
	// memblock memory).
	FlagReserved
)

// Order returns the order of the folio this page belongs to.
func (p *Page) Order() uint { return uint(p.flags & orderMask) }

// Flags returns the page's flag bits (order excluded).
func (p *Page) Flags() uint32 { return p.flags &^ orderMask }

// Has reports whether every bit of f is set.
func (p *Page) Has(f uint32) bool { return p.flags&f == f }

// Set sets the flag bits f.
func (p *Page) Set(f uint32) { p.flags |= f &^ orderMask }

// Clear clears the flag bits f.
func (p *Page) Clear(f uint32) { p.flags &^= f &^ orderMask }

// Content returns the page's content value.
func (p *Page) Content() uint64 { return uint64(p.hi)<<32 | uint64(p.lo) }

// SetContent sets the page's content value.
func (p *Page) SetContent(v uint64) { p.lo, p.hi = uint32(v), uint32(v>>32) }

// Mapcount returns the number of PTE mappings of this page.
func (p *Page) Mapcount() int { return int(p.mapcnt) }

// Folio names a folio by its head frame and order.
type Folio struct {
	// PFN is the head frame.
	PFN PFN
	// Order is log2 of the number of pages.
	Order uint8
}

// NrPages returns the number of base pages in the folio.
func (f Folio) NrPages() uint64 { return 1 << f.Order }

// Large reports whether the folio has more than one page.
func (f Folio) Large() bool { return f.Order > 0 }

// Contains reports whether pfn is one of the folio's pages.
func (f Folio) Contains(pfn PFN) bool { return pfn >= f.PFN && pfn < f.PFN+PFN(f.NrPages()) }

// End returns the frame after the folio's last page.
func (f Folio) End() PFN { return f.PFN + PFN(f.NrPages()) }
