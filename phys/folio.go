package phys

// PinBias is what one FOLL_PIN pin adds to the refcount of a small folio
// (GUP_PIN_COUNTING_BIAS): small folios have no pin counter of their own,
// so a refcount at or above the bias means "maybe pinned".
const PinBias = 1024

// Tail pages whose spare refcount field holds folio state.
const (
	tailPincount       = 1
	tailEntireMapcount = 2
	tailLargeMapcount  = 3
)

// FolioOf returns the folio that frame pfn belongs to.
// Precondition: pfn is an allocated frame.
func (m *Memory) FolioOf(pfn PFN) Folio {
	order := m.Page(pfn).Order()
	return Folio{PFN: pfn &^ PFN(1<<order-1), Order: uint8(order)}
}

// IsAllocated reports whether frame pfn belongs to an allocated folio.
func (m *Memory) IsAllocated(pfn PFN) bool {
	return m.Valid(pfn) && m.Page(pfn).flags&FlagAllocated != 0
}

func (m *Memory) head(f Folio) *Page { return m.Page(f.PFN) }

// Refcount returns the folio's reference count (folio_ref_count).
func (m *Memory) Refcount(f Folio) int { return int(m.head(f).ref) }

// RefAdd adds n references (folio_ref_add). Callers charge the atomic
// (cost.RefAtomics) to whoever does the work; so for every folio update.
func (m *Memory) RefAdd(f Folio, n int) { m.head(f).ref += int32(n) }

// RefSub drops n references; at zero the folio is freed and RefSub
// reports true (folio_put_refs).
func (m *Memory) RefSub(f Folio, n int) bool {
	h := m.head(f)
	h.ref -= int32(n)
	if h.ref > 0 {
		return false
	}
	kind := KindFolio
	if h.flags&FlagPageTable != 0 {
		kind = KindTable
	}
	m.Free(f.PFN, kind)
	return true
}

// Get takes one reference (folio_get).
func (m *Memory) Get(f Folio) { m.RefAdd(f, 1) }

// Put drops one reference and frees the folio at zero (folio_put).
func (m *Memory) Put(f Folio) bool { return m.RefSub(f, 1) }

// tail returns the folio field kept in tail page i, or nil for a folio too
// small to have that tail.
func (m *Memory) tail(f Folio, i uint64) *int32 {
	if f.NrPages() <= i {
		return nil
	}
	return &m.Page(f.PFN + PFN(i)).ref
}

// EntireMapcount returns how many PMD or PUD entries map the whole folio.
func (m *Memory) EntireMapcount(f Folio) int {
	if p := m.tail(f, tailEntireMapcount); p != nil {
		return int(*p)
	}
	return 0
}

// Mapcount returns the folio's total mapcount (folio_mapcount): every PTE
// mapping of every page plus every entire mapping.
func (m *Memory) Mapcount(f Folio) int {
	if p := m.tail(f, tailLargeMapcount); p != nil {
		return int(*p)
	}
	n := 0
	for _, pg := range m.pages(f.PFN, f.NrPages()) {
		n += int(pg.mapcnt)
	}
	return n
}

// PageMapcount returns the number of PTE mappings of page pfn plus the
// entire mappings of its folio (page_mapcount).
func (m *Memory) PageMapcount(pfn PFN) int {
	return int(m.Page(pfn).mapcnt) + m.EntireMapcount(m.FolioOf(pfn))
}

// AddPTEMaps records nr PTE mappings of the consecutive pages of f starting
// at first (folio_add_*_rmap_ptes, folio_dup_*_rmap_ptes).
// Precondition: [first, first+nr) lies inside f.
func (m *Memory) AddPTEMaps(f Folio, first PFN, nr int) {
	ps := m.pages(first, uint64(nr))
	for i := range ps {
		ps[i].mapcnt++
	}
	if p := m.tail(f, tailLargeMapcount); p != nil {
		*p += int32(nr)
	}
}

// RemovePTEMaps drops nr PTE mappings starting at page first
// (folio_remove_rmap_ptes).
func (m *Memory) RemovePTEMaps(f Folio, first PFN, nr int) {
	ps := m.pages(first, uint64(nr))
	for i := range ps {
		ps[i].mapcnt--
	}
	if p := m.tail(f, tailLargeMapcount); p != nil {
		*p -= int32(nr)
	}
}

// AddEntireMap records one PMD or PUD mapping of the whole folio.
// Precondition: the folio has at least four pages.
func (m *Memory) AddEntireMap(f Folio) {
	*m.tail(f, tailEntireMapcount) += 1
	*m.tail(f, tailLargeMapcount) += 1
}

// RemoveEntireMap drops one PMD or PUD mapping of the whole folio.
func (m *Memory) RemoveEntireMap(f Folio) {
	*m.tail(f, tailEntireMapcount) -= 1
	*m.tail(f, tailLargeMapcount) -= 1
}

// Pin takes n FOLL_PIN pins: each adds a reference, and on a large folio
// one to the pin count; on a small one the reference is PinBias.
func (m *Memory) Pin(f Folio, n int) {
	if p := m.tail(f, tailPincount); p != nil {
		*p += int32(n)
		m.RefAdd(f, n)
		return
	}
	m.RefAdd(f, n*PinBias)
}

// Unpin drops n pins taken by Pin. It reports false, and changes nothing,
// when the folio holds fewer than n pins.
func (m *Memory) Unpin(f Folio, n int) bool {
	if p := m.tail(f, tailPincount); p != nil {
		if int(*p) < n {
			return false
		}
		*p -= int32(n)
		m.RefSub(f, n)
		return true
	}
	if m.Refcount(f) < n*PinBias {
		return false
	}
	m.RefSub(f, n*PinBias)
	return true
}

// Pincount returns the pins held on the folio: exact for a large folio,
// refcount/PinBias for a small one.
func (m *Memory) Pincount(f Folio) int {
	if p := m.tail(f, tailPincount); p != nil {
		return int(*p)
	}
	return m.Refcount(f) / PinBias
}

// MaybeDMAPinned reports whether the folio may be pinned for DMA
// (folio_maybe_dma_pinned): a pin count on a large folio, a refcount at or
// above PinBias on a small one. Like Linux, it can report a small folio
// with very many ordinary references as pinned.
func (m *Memory) MaybeDMAPinned(f Folio) bool {
	if p := m.tail(f, tailPincount); p != nil {
		return *p > 0
	}
	return m.Refcount(f) >= PinBias
}

// Test reports whether the folio's head has every flag bit of flags.
func (m *Memory) Test(f Folio, flags uint32) bool { return m.head(f).Has(flags) }

// SetFlags sets flag bits on the folio's head.
func (m *Memory) SetFlags(f Folio, flags uint32) { m.head(f).Set(flags) }

// ClearFlags clears flag bits on the folio's head.
func (m *Memory) ClearFlags(f Folio, flags uint32) { m.head(f).Clear(flags) }

// Content returns the content value of page pfn.
func (m *Memory) Content(pfn PFN) uint64 { return m.Page(pfn).Content() }

// SetContent sets the content value of page pfn.
func (m *Memory) SetContent(pfn PFN, v uint64) { m.Page(pfn).SetContent(v) }

// CopyContent copies the content values of n pages from src to dst, as
// copy_user_highpage does for each page.
func (m *Memory) CopyContent(dst, src PFN, n uint64) {
	d, s := m.pages(dst, n), m.pages(src, n)
	for i := range d {
		d[i].lo, d[i].hi = s[i].lo, s[i].hi
	}
}

// Pages returns the metadata of the folio's pages as one slice, for loops
// over a folio.
func (m *Memory) Pages(f Folio) []Page { return m.pages(f.PFN, f.NrPages()) }
