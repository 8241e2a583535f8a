package vmemmap

import (
	"fmt"

	"github.com/ptsim/ptsim/phys"
)

// vmemmapRange returns the vmemmap of folio f as Linux's callers compute
// it: reuse is the head vmemmap page (kept, HUGETLB_VMEMMAP_RESERVE_SIZE),
// [reuse+PAGE_SIZE, end) the pages HVO frees.
func (p *Pool) vmemmapRange(f phys.Folio) (reuse, end uint64) {
	reuse = p.h.m.VmemmapAddr(f.PFN)
	return reuse, reuse + p.VmemmapSize()
}

// splitFolio is hugetlb_vmemmap_split_folio: split the vmemmap PMDs of a
// folio that should be optimised, without flushing.
func (p *Pool) splitFolio(f phys.Folio) error {
	if !p.shouldOptimize(f) {
		return nil
	}
	reuse, end := p.vmemmapRange(f)
	return p.h.remapSplit(reuse+p.h.pageSize(), end, reuse)
}

// optimizeFolio is __hugetlb_vmemmap_optimize_folio (Linux 6.7 on): the
// old vmemmap pages go onto pages for the caller to free.
func (p *Pool) optimizeFolio(f phys.Folio, pages *pageList, flags Flags) error {
	if !p.shouldOptimize(f) {
		return nil
	}
	// Very subtle (Linux's comment): with REMAP_NO_TLB_FLUSH other CPUs
	// may go on using the old struct pages until the flush. The flag is
	// set before the remap so the new head page copies it, keeping old
	// and new in step; on error it is cleared again.
	if err := p.h.setFolioFlag(f, phys.FlagVmemmapOptimized, true); err != nil {
		return err
	}
	reuse, end := p.vmemmapRange(f)
	err := p.h.remapFree(reuse+p.h.pageSize(), end, reuse, pages, flags)
	if err != nil {
		if e := p.h.setFolioFlag(f, phys.FlagVmemmapOptimized, false); e != nil {
			return e
		}
	}
	return err
}

// optimizeFolios is hugetlb_vmemmap_optimize_folios, the batched flow of
// Linux 6.7: split every folio's vmemmap PMDs, stopping at the first
// ENOMEM (the rest split lazily in the remap, with memory the dedup gives
// back); flush_tlb_all; remap every folio without flushing, and on ENOMEM
// with pages pending, flush_tlb_all, free them and retry that folio once;
// flush_tlb_all and free the pages. Folios that still fail stay
// unoptimised. It errs only on a model bug.
//
// Since Linux 6.14 (pre-HVO of bootmem folios) the first loop counts the
// folios it tries (nr_to_optimize, before the split, so a split that
// fails still counts) and an empty count jumps to the final flush: an
// empty list flushes once, not twice. With HVO compiled in but off every
// folio still counts, so a non-empty list flushes twice.
func (p *Pool) optimizeFolios(list []phys.Folio) error {
	h := p.h
	nrToOptimize := 0
	for _, f := range list {
		nrToOptimize++
		if err := p.splitFolio(f); err != nil {
			if isENOMEM(err) {
				break
			}
			return err
		}
	}
	var pages pageList
	if nrToOptimize == 0 {
		h.flushTLBAll()
		h.freeVmemmapPageList(&pages)
		return nil
	}
	h.flushTLBAll()
	for _, f := range list {
		err := p.optimizeFolio(f, &pages, RemapNoTLBFlush)
		if isENOMEM(err) && pages.len() > 0 {
			h.flushTLBAll()
			h.freeVmemmapPageList(&pages)
			err = p.optimizeFolio(f, &pages, RemapNoTLBFlush)
		}
		if err != nil && !isENOMEM(err) {
			return err
		}
	}
	h.flushTLBAll()
	h.freeVmemmapPageList(&pages)
	return nil
}

// optimizeFolioV66 is hugetlb_vmemmap_optimize before Linux 6.7: one
// folio, the split and the remap each flushing, the pages freed at once,
// and the optimised flag set only after success (nothing is deferred).
// Precondition: p.shouldOptimize(f).
func (p *Pool) optimizeFolioV66(f phys.Folio) error {
	reuse, end := p.vmemmapRange(f)
	var pages pageList
	err := p.h.remapFree(reuse+p.h.pageSize(), end, reuse, &pages, 0)
	p.h.freeVmemmapPageList(&pages)
	if err != nil {
		return err
	}
	return p.h.setFolioFlag(f, phys.FlagVmemmapOptimized, true)
}

// restoreFolio is __hugetlb_vmemmap_restore_folio (Linux 6.7 on):
// allocate the folio's vmemmap pages again, remap them, clear the flag.
func (p *Pool) restoreFolio(f phys.Folio, flags Flags) error {
	if !p.optimized(f) {
		return nil
	}
	reuse, end := p.vmemmapRange(f)
	if err := p.h.remapAlloc(reuse+p.h.pageSize(), end, reuse, flags); err != nil {
		return err
	}
	return p.h.setFolioFlag(f, phys.FlagVmemmapOptimized, false)
}

// restoreFolioV66 is hugetlb_vmemmap_restore before Linux 6.7: the same
// with its own flush.
func (p *Pool) restoreFolioV66(f phys.Folio) error { return p.restoreFolio(f, 0) }

// restoreFolios is hugetlb_vmemmap_restore_folios: restore each optimised
// folio of list without flushing and move every folio processed onto
// nonHVO; stop at the first error; one flush_tlb_all if anything was
// restored. It returns the folios not processed (the failed one first),
// nonHVO, how many it restored, and the error.
func (p *Pool) restoreFolios(list, nonHVO []phys.Folio) (rest, moved []phys.Folio, restored int, err error) {
	i := 0
	for ; i < len(list); i++ {
		f := list[i]
		if p.optimized(f) {
			if err = p.restoreFolio(f, RemapNoTLBFlush); err != nil {
				break
			}
			restored++
		}
		nonHVO = append(nonHVO, f)
	}
	if restored > 0 {
		p.h.flushTLBAll()
	}
	return list[i:], nonHVO, restored, err
}

// OptimizeFolio optimises the vmemmap of one pool folio with its own
// flushes (hugetlb_vmemmap_optimize_folio): split if needed (flushing the
// PMD range), remap (flushing the folio's vmemmap), free the pages. A
// folio already optimised, or one HVO cannot or may not optimise (knob
// off, nothing to free), is left alone. It fails with EINVAL for a folio
// not in the pool and with ENOMEM when the split cannot allocate its
// table; then the folio stays unoptimised.
func (p *Pool) OptimizeFolio(f phys.Folio) error {
	if err := p.lookup(f); err != nil {
		return err
	}
	var pages pageList
	err := p.optimizeFolio(f, &pages, 0)
	p.h.freeVmemmapPageList(&pages)
	if err != nil {
		return fmt.Errorf("hugetlb: optimize folio %#x: %w", f.PFN, err)
	}
	return nil
}

// OptimizeFolios optimises the vmemmap of the listed pool folios in one
// batch (hugetlb_vmemmap_optimize_folios): two flush_tlb_all, plus one per
// ENOMEM retry; one for an empty list. Folios that run out of memory stay unoptimised; that is
// not an error. It fails with EINVAL, changing nothing, when a folio is
// not in the pool or is listed twice.
func (p *Pool) OptimizeFolios(list []phys.Folio) error {
	if err := p.checkList(list); err != nil {
		return err
	}
	if !p.compiledIn() {
		return nil
	}
	return p.optimizeFolios(list)
}

// RestoreFolio restores the vmemmap of one optimised pool folio with its
// own flush (hugetlb_vmemmap_restore_folio). It fails with EINVAL for a
// folio not in the pool and with ENOMEM, changing nothing, when the
// vmemmap pages cannot all be allocated.
func (p *Pool) RestoreFolio(f phys.Folio) error {
	if err := p.lookup(f); err != nil {
		return err
	}
	if err := p.restoreFolio(f, 0); err != nil {
		return fmt.Errorf("hugetlb: restore folio %#x: %w", f.PFN, err)
	}
	return nil
}

// RestoreFolios restores the vmemmap of the listed pool folios in one
// batch (hugetlb_vmemmap_restore_folios): one flush_tlb_all if anything
// was restored. It returns how many folios it restored; on ENOMEM it
// stops at the folio that failed, leaving it and the rest as they were.
// It fails with EINVAL, changing nothing, when a folio is not in the pool
// or is listed twice.
func (p *Pool) RestoreFolios(list []phys.Folio) (int, error) {
	if err := p.checkList(list); err != nil {
		return 0, err
	}
	_, _, n, err := p.restoreFolios(list, nil)
	if err != nil {
		return n, fmt.Errorf("hugetlb: restore folios: %d restored: %w", n, err)
	}
	return n, nil
}

// checkList validates a caller's folio list.
func (p *Pool) checkList(list []phys.Folio) error {
	seen := make(map[phys.PFN]bool, len(list))
	for _, f := range list {
		if err := p.lookup(f); err != nil {
			return err
		}
		if seen[f.PFN] {
			return fmt.Errorf("hugetlb: folio %#x listed twice: %w", f.PFN, EINVAL)
		}
		seen[f.PFN] = true
	}
	return nil
}
