package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/phys"
)

// The rmap and refcount helpers below change folio state and charge the
// atomics to the address space doing the work. Ordering rule, as David
// Hildenbrand put it in review: take references before adding mappings and
// drop mappings before references, so refcount >= mapcount at every step.

// folioRefs is a number of references on one folio.
type folioRefs struct {
	f phys.Folio
	n int
}

// Folio returns the folio that frame pfn belongs to.
func (mm *MM) Folio(pfn phys.PFN) phys.Folio { return mm.m.mem.FolioOf(pfn) }

// RefAdd takes n references on f with one atomic (folio_ref_add).
func (mm *MM) RefAdd(f phys.Folio, n int) {
	mm.m.mem.RefAdd(f, n)
	mm.meter.Add(cost.RefAtomics, 1)
}

// RefSub drops n references with one atomic and frees the folio when none
// are left (folio_put_refs); it reports whether it freed it.
func (mm *MM) RefSub(f phys.Folio, n int) bool {
	mm.meter.Add(cost.RefAtomics, 1)
	if mm.m.mem.RefSub(f, n) {
		mm.meter.Add(cost.FolioFrees, 1)
		return true
	}
	return false
}

// AddNewAnonRmap maps nr pages of a new anonymous folio from first
// (folio_add_new_anon_rmap), marking them exclusive to this address space
// when exclusive is set (RMAP_EXCLUSIVE).
func (mm *MM) AddNewAnonRmap(f phys.Folio, first phys.PFN, nr int, exclusive bool) {
	mem := mm.m.mem
	mem.SetFlags(f, phys.FlagAnon)
	mem.AddPTEMaps(f, first, nr)
	if exclusive {
		for i := 0; i < nr; i++ {
			mem.Page(first + phys.PFN(i)).Set(phys.FlagAnonExclusive)
		}
	}
	mm.chargeMapcount(f, nr)
}

// AddFileRmap maps nr pages of a page-cache folio (folio_add_file_rmap_ptes).
func (mm *MM) AddFileRmap(f phys.Folio, first phys.PFN, nr int) {
	mm.m.mem.AddPTEMaps(f, first, nr)
	mm.chargeMapcount(f, nr)
}

// DupFileRmap records nr more mappings of file pages, as fork does
// (folio_dup_file_rmap_ptes).
func (mm *MM) DupFileRmap(f phys.Folio, first phys.PFN, nr int) { mm.AddFileRmap(f, first, nr) }

// TryDupAnonRmap records nr more mappings of anonymous pages for a fork
// (folio_try_dup_anon_rmap_ptes). If the folio may be pinned for DMA and
// the source mm has ever pinned, and any of the pages is exclusive, it
// fails with EBUSY and changes nothing: the caller must copy instead.
// Otherwise the pages stop being exclusive: parent and child must both
// map them read-only.
func (mm *MM) TryDupAnonRmap(src *MM, f phys.Folio, first phys.PFN, nr int) error {
	mem := mm.m.mem
	if nr == 1 {
		// One page, fork's common case: one lookup.
		pg := mem.Page(first)
		if src.hasPinned && mem.MaybeDMAPinned(f) && pg.Has(phys.FlagAnonExclusive) {
			return fmt.Errorf("dup anon rmap of pinned page %#x: %w", first, EBUSY)
		}
		pg.Clear(phys.FlagAnonExclusive)
	} else {
		// The pages' metadata, looked up once for the loops below.
		pages := mem.Pages(f)[first-f.PFN:][:nr]
		if src.hasPinned && mem.MaybeDMAPinned(f) {
			for i := range pages {
				if pages[i].Has(phys.FlagAnonExclusive) {
					return fmt.Errorf("dup anon rmap of pinned page %#x: %w", first+phys.PFN(i), EBUSY)
				}
			}
		}
		for i := range pages {
			pages[i].Clear(phys.FlagAnonExclusive)
		}
	}
	mem.AddPTEMaps(f, first, nr)
	mm.chargeMapcount(f, nr)
	return nil
}

// RemoveRmap drops nr PTE mappings of pages from first
// (folio_remove_rmap_ptes).
func (mm *MM) RemoveRmap(f phys.Folio, first phys.PFN, nr int) {
	mm.m.mem.RemovePTEMaps(f, first, nr)
	mm.chargeMapcount(f, nr)
}

// AddEntireRmap records one PMD or PUD mapping of the whole folio.
func (mm *MM) AddEntireRmap(f phys.Folio, anon, exclusive bool) {
	mem := mm.m.mem
	if anon {
		mem.SetFlags(f, phys.FlagAnon)
		if exclusive {
			mem.Page(f.PFN).Set(phys.FlagAnonExclusive)
		}
	}
	mem.AddEntireMap(f)
	mm.meter.Add(cost.MapcountAtomics, 2)
}

// RemoveEntireRmap drops one PMD or PUD mapping of the whole folio.
func (mm *MM) RemoveEntireRmap(f phys.Folio) {
	mm.m.mem.RemoveEntireMap(f)
	mm.meter.Add(cost.MapcountAtomics, 2)
}

// chargeMapcount charges the atomics of nr per-page mapcount updates plus
// the folio-wide counter of a large folio.
func (mm *MM) chargeMapcount(f phys.Folio, nr int) {
	n := uint64(nr)
	if f.Large() {
		n++
	}
	mm.meter.Add(cost.MapcountAtomics, n)
}

// deferPut queues n references on f to drop after the gather's flush, as
// tlb_remove_folio_pages does: a page may not be reused while a TLB can
// still reach it.
func (mm *MM) deferPut(f phys.Folio, n int) {
	mm.pendingPuts = append(mm.pendingPuts, folioRefs{f: f, n: n})
}

// dropPending drops every queued reference.
func (mm *MM) dropPending() {
	for _, r := range mm.pendingPuts {
		mm.RefSub(r.f, r.n)
	}
	mm.pendingPuts = mm.pendingPuts[:0]
}
