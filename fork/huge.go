package fork

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// copyHugePMD shares the THP mapped by the parent's huge PMD at sp with
// the child (copy_huge_pmd): one reference and one entire mapping, the
// parent's PMD write-protected, the child's written protected and old,
// and a preallocated PTE table deposited in the child for a later split.
// A THP that may be pinned is not shared: the parent's PMD is split and
// copyHugePMD returns EAGAIN, so that the caller copies its PTEs (the
// pinned pages are then copied one by one). A file THP is left for the
// child to refault. A special huge PMD (a huge PFN map, no struct page
// to count) is copied as it is, made old, whatever the VMA (Linux 6.12's
// huge pfnmap fork). ENOMEM when a table cannot be allocated.
func (c *copier) copyHugePMD(dst, src *mmu.VMA, addr uint64, sp pgtable.Ptr) error {
	haddr := addr &^ (c.geo.Size(pgtable.PMD) - 1)
	if pmd := sp.Peek(); c.fm.Special(pmd, pgtable.PMD) {
		dp, err := c.dpt.WalkAlloc(haddr, pgtable.PMD)
		if err != nil {
			return err
		}
		c.meter.Add(cost.PTLocks, 2)
		pmd = c.spt.RawGet(sp)
		if src.IsCOW() && c.fm.Write(pmd, pgtable.PMD) {
			// Linux warns: a COW mapping must not map raw frames
			// writable. Keep both sides read-only, as a COW copy.
			c.spt.ExchangeLeaf(haddr, sp, c.fm.Wrprotect(pmd, pgtable.PMD))
			pmd = c.fm.Wrprotect(pmd, pgtable.PMD)
		}
		return c.dpt.SetLeaf(haddr, dp, c.fm.MkOld(pmd, pgtable.PMD))
	}
	if !dst.Anonymous() {
		return nil // refilled on fault
	}
	dp, err := c.dpt.WalkAlloc(haddr, pgtable.PMD)
	if err != nil {
		return err
	}
	dep, err := c.dpt.AllocTable(pgtable.PTE) // pte_alloc_one
	if err != nil {
		return err
	}
	fm := c.fm
	c.meter.Add(cost.PTLocks, 2)
	pmd := c.spt.RawGet(sp)
	folio := c.mem.FolioOf(fm.PFN(pmd, pgtable.PMD))
	c.meter.Add(cost.FolioLookups, 1)
	c.src.RefAdd(folio, 1)
	c.step(folio)
	if err := c.src.TryDupAnonRmapPMD(c.src, folio); err != nil {
		// Maybe pinned: split it and let the PTE level copy the pages.
		c.src.RefSub(folio, 1)
		c.step(folio)
		if ferr := c.dpt.FreeTable(dep); ferr != nil {
			return ferr
		}
		if err := c.src.SplitHugePMD(src, haddr, sp); err != nil {
			return err
		}
		return errAgain
	}
	c.step(folio)
	c.dst.AddRSS(mmu.MMAnonPages, int64(folio.NrPages()))
	c.dst.DepositTable(dep)
	// pmdp_set_wrprotect: an atomic update of the live entry (an IDTE
	// exchange on s390).
	c.spt.ExchangeLeaf(haddr, sp, fm.Wrprotect(pmd, pgtable.PMD))
	if dst.Flags&mmu.VMUffdWP == 0 {
		pmd = fm.ClearUffdWP(pmd, pgtable.PMD)
	}
	pmd = fm.MkOld(fm.Wrprotect(pmd, pgtable.PMD), pgtable.PMD)
	return c.dpt.SetLeaf(haddr, dp, pmd)
}

// copyHugeUpper shares a leaf above the PMD level (a PUD leaf) with the
// child (copy_huge_pud): one reference and one entire mapping, the parent
// write-protected for a COW mapping, the child's copy old. Linux has no
// anonymous PUD THP, so there is no split to fall back on: an anonymous
// one that may be pinned makes the fork fail (EBUSY, reported as ENOMEM
// by the fork, as copy_page_range reports every error).
func (c *copier) copyHugeUpper(dst, src *mmu.VMA, addr uint64, sp pgtable.Ptr) error {
	fm := c.fm
	l := sp.Level()
	base := addr &^ (c.geo.Size(l) - 1)
	dp, err := c.dpt.WalkAlloc(base, l)
	if err != nil {
		return err
	}
	if dp.Level() != l || !fm.IsNone(dp.Peek(), l) {
		return fmt.Errorf("copy %s leaf at %#x: child entry in use: %w", l, base, mmu.EEXIST)
	}
	c.meter.Add(cost.PTLocks, 2)
	e := c.spt.RawGet(sp)
	if fm.Present(e, l) && !fm.Special(e, l) {
		folio := c.mem.FolioOf(fm.PFN(e, l))
		c.meter.Add(cost.FolioLookups, 1)
		c.src.RefAdd(folio, 1)
		if c.mem.Test(folio, phys.FlagAnon) {
			if err := c.src.TryDupAnonRmapPMD(c.src, folio); err != nil {
				c.src.RefSub(folio, 1)
				return fmt.Errorf("copy %s leaf at %#x: %w", l, base, err)
			}
			c.dst.AddRSS(mmu.MMAnonPages, int64(folio.NrPages()))
		} else {
			c.src.AddEntireRmap(folio, false, false)
			c.dst.AddRSS(fileRSS(src), int64(folio.NrPages()))
		}
	}
	if src.IsCOW() && fm.Write(e, l) {
		c.spt.ExchangeLeaf(base, sp, fm.Wrprotect(e, l))
		e = fm.Wrprotect(e, l)
	}
	if dst.Flags&mmu.VMUffdWP == 0 {
		e = fm.ClearUffdWP(e, l)
	}
	return c.dpt.SetLeaf(base, dp, fm.MkOld(e, l))
}
