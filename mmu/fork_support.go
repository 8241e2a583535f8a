package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// The helpers below serve package fork, whose dup_mmap and copy_page_range
// live inside mm/ in Linux and so reach a few mm internals: the meter
// that pays for the child's creation, the child's deposit of a PTE table
// under a shared THP, and the PMD-level rmap dup.

// ChargeCountsTo moves every count on mm's meter to dst's meter and
// zeroes mm's. Fork uses it to charge the parent with everything done to
// build the child (its root table, VMAs, copied tables and entries, RSS
// updates), as SCENARIOS.md wants: "fork's copying to the parent; a new
// child starts at zero". Linux does all of that work in the parent's
// task. The steps were traced, if tracing is on, when they happened; the
// move itself traces nothing. Simulated time is unchanged: the counts
// only change owner. Cost: one add per event.
func (mm *MM) ChargeCountsTo(dst *MM) {
	if dst == nil || dst == mm {
		return
	}
	c := mm.meter.Counts()
	dst.meter.SetTracer(nil)
	for e := range c {
		if c[e] != 0 {
			dst.meter.Add(cost.Event(e), c[e])
		}
	}
	dst.meter.SetTracer(mm.m.tracer)
	mm.meter.Reset()
}

// DepositTable deposits a preallocated, empty PTE table for a huge PMD
// mapping of this address space (pgtable_trans_huge_deposit), so that a
// later split or zap of that PMD finds one. copy_huge_pmd deposits one in
// the child for every THP it shares. It counts nothing: the allocation
// was counted.
func (mm *MM) DepositTable(t *pgtable.Table) {
	if t != nil {
		mm.deposits = append(mm.deposits, t)
	}
}

// TryDupAnonRmapPMD records one more PMD mapping of an anonymous THP for a
// fork (folio_try_dup_anon_rmap_pmd). As TryDupAnonRmap does for PTEs, it
// fails with EBUSY, changing nothing, when src has ever pinned, the folio
// may be pinned for DMA and its head page is exclusive: the caller must
// not share it (copy_huge_pmd splits it and copies at the PTE level).
// Otherwise the folio stops being exclusive and gains an entire mapping.
// Cost: the entire and folio-wide mapcount atomics.
func (mm *MM) TryDupAnonRmapPMD(src *MM, f phys.Folio) error {
	mem := mm.m.mem
	head := mem.Page(f.PFN)
	if src.hasPinned && mem.MaybeDMAPinned(f) && head.Has(phys.FlagAnonExclusive) {
		return fmt.Errorf("dup anon rmap of pinned THP %#x: %w", f.PFN, EBUSY)
	}
	head.Clear(phys.FlagAnonExclusive)
	mem.AddEntireMap(f)
	mm.meter.Add(cost.MapcountAtomics, 2)
	return nil
}
