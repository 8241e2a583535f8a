package fork

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// errAgain is copy_huge_pmd's -EAGAIN: the THP was split, copy its PTEs.
var errAgain = fmt.Errorf("fork: huge PMD split: %w", mmu.EAGAIN)

// copier holds what copy_page_range needs for one fork.
type copier struct {
	// src is the parent, dst the child.
	src, dst *mmu.MM
	// spt and dpt are their page tables.
	spt, dpt *pgtable.PageTable
	// fm and geo describe the arch's entries and tables.
	fm  *pgtable.Format
	geo *pgtable.Geometry
	// mem is physical memory.
	mem *phys.Memory
	// meter is the parent's: fork's work is charged to it.
	meter *cost.Meter
	// zero is the shared zero page, which vm_normal_page does not return.
	zero phys.PFN
	// batch is fork_batch: copy runs of PTEs of one large folio at once.
	batch bool
	// pageShift and pageSize give the base page.
	pageShift uint
	pageSize  uint64
	// genericHint is set when the parent's PTE ops are pgtable's generic
	// ones, whose pte_batch_hint is always 1 (a shortcut for counting
	// folio_pte_batch's steps).
	genericHint bool
	// afterStep is Options.afterStep.
	afterStep func(phys.Folio)

	// Per VMA (setVMAs): the child's and the parent's VMA, whether the
	// mapping is COW or shared, whether the child keeps uffd-wp marks,
	// and the folio_pte_batch flags.
	dv, sv   *mmu.VMA
	cow      bool
	shared   bool
	keepUffd bool
	fpb      mmu.FPB
	// childIn and childOut remember childPTE's last flags and result
	// (childValid: since setVMAs); addrMask selects a PTE's address bits.
	childIn, childOut pgtable.Entry
	childValid        bool
	addrMask          pgtable.Entry

	// Per copy_pte_range pass: the child's RSS deltas (added once per
	// pass), the counts of the per-PTE steps (added to the meter once per
	// pass, in one add per event) and the preallocated folio, if any.
	rss          [4]int64
	pass         passCounts
	prealloc     phys.Folio
	havePrealloc bool
	// runs is set while runs of small anonymous folios may be copied
	// in one step (copySmallAnonRun): no test hook, and no page of the
	// parent was ever pinned, so no dup of one can fail. children holds
	// a run's child PTEs.
	runs     bool
	children []pgtable.Entry
}

func newCopier(src, dst *mmu.MM) *copier {
	m := src.Machine()
	a := m.Arch()
	_, generic := src.PageTable().Ops().(pgtable.GenericOps)
	return &copier{
		src: src, dst: dst,
		spt: src.PageTable(), dpt: dst.PageTable(),
		fm: &a.Format, geo: &a.Geometry,
		mem:         m.Memory(),
		meter:       src.Meter(),
		zero:        m.ZeroPage(),
		batch:       m.Knobs().ForkBatch,
		pageShift:   a.Geometry.PageShift,
		pageSize:    a.Geometry.PageSize(),
		genericHint: generic,
		addrMask:    a.Format.PTE.AddrMask,
	}
}

// vmaNeedsCopy reports whether the child's page tables must be copied
// now (vma_needs_copy): the child's VMA is uffd-wp (the marks cannot be
// rebuilt by faults), the VMA maps raw frames, or it has anonymous pages.
// Elsewhere the child refaults from the page cache.
func vmaNeedsCopy(dst, src *mmu.VMA) bool {
	return dst.Flags&mmu.VMUffdWP != 0 || src.Flags&mmu.VMPFNMap != 0 || src.AnonVMA
}

// softDirtyTracking reports whether soft-dirty tracking is on for v
// (vma_soft_dirty_enabled): the arch has the bit and the VMA tracks it.
// Linux tests !(vm_flags & VM_SOFTDIRTY); the model's VMSoftDirty is the
// armed state, the opposite sense (see mmu.VMSoftDirty).
func (c *copier) softDirtyTracking(v *mmu.VMA) bool {
	return c.fm.PTE.SoftDirty != 0 && v.Flags&mmu.VMSoftDirty != 0
}

// fileRSS returns the RSS counter of a file VMA's pages (mm_counter_file).
func fileRSS(v *mmu.VMA) mmu.RSSKind {
	if v.File != nil && v.File.Shmem {
		return mmu.MMShmemPages
	}
	return mmu.MMFilePages
}

// copyPageRange copies the page tables of src into the child's VMA dst
// (copy_page_range): level by level, huge leaves whole, PTE tables by
// copy_pte_range. Every failure is ENOMEM.
func (c *copier) copyPageRange(dst, src *mmu.VMA) error {
	if !vmaNeedsCopy(dst, src) {
		return nil
	}
	// For a COW mapping Linux brackets the walk with an MMU-notifier range
	// and raw_write_seqcount_begin(&src_mm->write_protect_seq), so that
	// GUP-fast backs off while PTEs lose write permission. The model has
	// no GUP-fast and no notifiers: nothing to count.
	for addr := src.Start; addr < src.End; {
		p, ok := c.spt.Walk(addr, pgtable.PMD)
		if !ok {
			// An empty entry or a huge leaf above the PMD level
			// (copy_p4d_range, copy_pud_range).
			l := p.Level()
			next := c.geo.AddrEnd(l, addr, src.End)
			if e := p.Peek(); !c.fm.IsNone(e, l) && c.fm.IsLeaf(e, l) {
				if err := c.copyHugeUpper(dst, src, addr, p); err != nil {
					return err
				}
			}
			addr = next
			continue
		}
		next := c.geo.AddrEnd(pgtable.PMD, addr, src.End)
		if p.Child() == nil {
			pmd := c.spt.RawGet(p)
			if c.fm.IsNone(pmd, pgtable.PMD) || !c.fm.IsLeaf(pmd, pgtable.PMD) {
				addr = next
				continue
			}
			err := c.copyHugePMD(dst, src, addr, p)
			if err == nil {
				addr = next
				continue
			}
			if !errors.Is(err, mmu.EAGAIN) {
				return err
			}
			// A pinned THP was split: copy its PTEs.
			if p.Child() == nil {
				addr = next
				continue
			}
		}
		if err := c.copyPTERange(dst, src, p.Child(), addr, next); err != nil {
			return err
		}
		addr = next
	}
	return nil
}

// copyPTERange copies the PTEs of [addr, end), which lie in the parent's
// PTE table st, into the child (copy_pte_range). A pass runs under both
// page-table locks in lazy-MMU mode and adds the child's RSS once; a pass
// that needs a preallocated page ends early, allocates it with the locks
// dropped, and the next pass starts at the same address.
func (c *copier) copyPTERange(dst, src *mmu.VMA, st *pgtable.Table, addr, end uint64) error {
	c.setVMAs(dst, src)
	c.havePrealloc = false
	defer func() {
		// A preallocated page that was not used is freed, never kept for
		// a later one ("strictly follow mempolicy").
		c.dropPrealloc()
	}()
	for {
		dp, err := c.dpt.WalkAlloc(addr, pgtable.PTE)
		if err != nil {
			return err
		}
		sp := pgtable.Ptr{T: st, I: c.spt.IndexOf(st, addr)}
		// Destination lock, then the source lock nested.
		c.meter.Add(cost.PTLocks, 2)
		c.spt.EnterLazyMMU()
		c.dpt.EnterLazyMMU()
		c.rss = [4]int64{}
		again := false
		progress := 0
		for addr < end {
			// Every 32 progress units Linux breaks out if the CPU must
			// reschedule or a lock is contended; a simulated CPU never
			// must, so the count only mirrors the loop's bookkeeping.
			if progress >= 32 {
				progress = 0
			}
			c.pass.iters++
			e := c.spt.PtepGet(addr, sp)
			nr := 1
			switch {
			case c.fm.IsNone(e, pgtable.PTE):
				progress++
			case !c.fm.Present(e, pgtable.PTE):
				c.copyNonPresentPTE(dp, addr, e)
				progress += 8
			default:
				if c.runs && !c.havePrealloc {
					if n := c.copySmallAnonRun(dp, sp, e, addr, int((end-addr)>>c.pageShift)); n > 0 {
						nr = n
						progress += 8 * nr
						break
					}
				}
				n, ok := c.copyPresentPTEs(dp, sp, e, addr, int((end-addr)>>c.pageShift))
				if !ok {
					again = true
					break
				}
				nr = n
				// Only if a pinned PTE changed under us.
				c.dropPrealloc()
				progress += 8 * nr
			}
			if again {
				break
			}
			addr += uint64(nr) << c.pageShift
			sp.I += nr
			dp.I += nr
		}
		c.dpt.LeaveLazyMMU()
		c.spt.LeaveLazyMMU()
		c.flushPass()
		// add_mm_rss_vec(dst_mm, rss): once per pass.
		for k, n := range c.rss {
			c.dst.AddRSS(mmu.RSSKind(k), n)
		}
		if !again {
			return nil
		}
		if err := c.preallocFolio(); err != nil {
			return err
		}
	}
}

// passCounts are per-PTE steps of one copy_pte_range pass, counted
// locally and added to the meter when the pass ends.
type passCounts struct {
	// iters, lookups, dups and ptes count copy_pte_iters,
	// folio_lookups, rmap_page_dups and fork_ptes.
	iters, lookups, dups, ptes uint64
}

// flushPass adds the pass's counts to the meter.
func (c *copier) flushPass() {
	p := &c.pass
	for _, x := range [...]struct {
		e cost.Event
		n uint64
	}{{cost.CopyPTEIters, p.iters}, {cost.FolioLookups, p.lookups}, {cost.RmapPageDups, p.dups}, {cost.ForkPTEs, p.ptes}} {
		if x.n != 0 {
			c.meter.Add(x.e, x.n)
		}
	}
	*p = passCounts{}
}

// setVMAs records the VMAs being copied and what their flags decide.
func (c *copier) setVMAs(dst, src *mmu.VMA) {
	c.dv, c.sv = dst, src
	c.childValid = false
	c.cow = src.IsCOW()
	c.shared = src.Flags&mmu.VMShared != 0
	c.keepUffd = dst.Flags&mmu.VMUffdWP != 0
	c.fpb = mmu.FPBMergeWrite
	if !c.shared {
		c.fpb |= mmu.FPBRespectDirty
	}
	if c.softDirtyTracking(src) {
		c.fpb |= mmu.FPBRespectSoftDirty
	}
	c.runs = c.afterStep == nil && !c.src.HasPinned()
}

// preallocFolio allocates the order-0 folio a pinned page is copied into
// (folio_prealloc without zeroing: the copy overwrites it).
func (c *copier) preallocFolio() error {
	pfn, err := c.mem.Alloc(0, phys.KindFolio)
	if err != nil {
		return err
	}
	c.meter.Add(cost.FolioAllocs, 1)
	c.prealloc, c.havePrealloc = phys.Folio{PFN: pfn}, true
	return nil
}

// dropPrealloc frees an unused preallocated folio (folio_put).
func (c *copier) dropPrealloc() {
	if c.havePrealloc {
		c.src.RefSub(c.prealloc, 1)
		c.havePrealloc = false
	}
}

// copyNonPresentPTE copies a PTE that is neither empty nor present, one at
// a time (copy_nonpresent_pte). The model has no swap, migration or
// device entries, so nothing else needs duplicating.
func (c *copier) copyNonPresentPTE(dp pgtable.Ptr, addr uint64, e pgtable.Entry) {
	if !c.keepUffd {
		e = c.fm.ClearUffdWP(e, pgtable.PTE)
	}
	c.dpt.SetPTEAt(addr, dp, e)
	c.meter.Add(cost.ForkPTEs, 1)
}

// copyPresentPTEs copies the present PTE e at addr and, when batching, the
// PTEs after it that map consecutive pages of the same large folio, at
// most maxNr (copy_present_ptes). It returns how many it copied, or false
// (Linux's -EAGAIN) when a pinned page must be copied and no page is
// preallocated.
func (c *copier) copyPresentPTEs(dp, sp pgtable.Ptr, e pgtable.Entry, addr uint64, maxNr int) (int, bool) {
	fm := c.fm
	pfn := fm.PFN(e, pgtable.PTE)
	// vm_normal_page and page_folio.
	c.pass.lookups++
	if fm.Special(e, pgtable.PTE) || pfn == c.zero {
		// No struct page to account: the zero page, a special mapping.
		c.copyPTEs(dp, sp, e, addr, 1)
		return 1, true
	}
	// One metadata lookup serves a small folio, the common case.
	folio := phys.Folio{PFN: pfn}
	var anon bool
	if pg := c.mem.Page(pfn); pg.Order() == 0 {
		anon = pg.Has(phys.FlagAnon)
	} else {
		folio = c.mem.FolioOf(pfn)
		anon = c.mem.Test(folio, phys.FlagAnon)
	}
	// If we likely have to copy, do not bother batching; keep the small
	// folio case on the short path.
	if c.batch && !c.havePrealloc && folio.Large() && maxNr != 1 {
		return c.copyBatch(dp, sp, e, addr, maxNr, folio, pfn, anon)
	}
	c.src.RefAdd(folio, 1) // folio_get
	c.step(folio)
	if anon {
		if err := c.src.TryDupAnonRmap(c.src, folio, pfn, 1); err != nil {
			// The page may be pinned: the child gets a copy now.
			c.src.RefSub(folio, 1)
			c.step(folio)
			return 1, c.copyPresentPage(dp, sp, addr, pfn)
		}
		c.rss[mmu.MMAnonPages]++
	} else {
		c.src.DupFileRmap(folio, pfn, 1)
		c.rss[fileRSS(c.sv)]++
	}
	c.pass.dups++
	c.step(folio)
	c.copyPTEs(dp, sp, e, addr, 1)
	return 1, true
}

// copySmallAnonRun copies, from the present PTE e at addr (read and
// counted by the caller), the run of PTEs that copy_present_ptes would
// copy one at a time, each mapping a small anonymous folio, with the
// same write bit, at most maxNr: the same steps in the same numbers —
// per PTE a ptep_get, a folio lookup, folio_get, the rmap dup, the
// parent's write-protect (for a writable COW PTE) and the child's
// set_pte_at — taken page by page for the references and the rmap, and
// in one pass for the PTE reads and writes. Only for generic, quiet
// tables (Quiet, QuietPTEs) while c.runs holds, so no dup can fail and
// no tracer, observer or hook watches the steps in between. It returns
// how many PTEs it copied; 0 when e does not start such a run (the
// caller copies it).
func (c *copier) copySmallAnonRun(dp, sp pgtable.Ptr, e pgtable.Entry, addr uint64, maxNr int) int {
	fm := c.fm
	// Large folios go to copy_present_ptes' batch path: check e's folio
	// before setting up.
	if pfn := fm.PFN(e, pgtable.PTE); pfn == c.zero || c.mem.Page(pfn).Order() != 0 {
		return 0
	}
	// The run writes the parent's PTEs, then the child's: only when no
	// tracer or observer can see that order.
	if !c.spt.Quiet() || !c.dpt.Quiet() {
		return 0
	}
	maxNr = min(maxNr, sp.T.Len()-sp.I)
	es, ok := c.spt.QuietPTEs(sp, maxNr)
	if !ok {
		return 0
	}
	if cap(c.children) < maxNr {
		c.children = make([]pgtable.Entry, 0, sp.T.Len())
	}
	children := c.children[:0]
	write := fm.Write(e, pgtable.PTE)
	for _, pte := range es {
		if fm.IsNone(pte, pgtable.PTE) || !fm.Present(pte, pgtable.PTE) || fm.Special(pte, pgtable.PTE) ||
			fm.Write(pte, pgtable.PTE) != write {
			break
		}
		pfn := fm.PFN(pte, pgtable.PTE)
		if pfn == c.zero {
			break
		}
		if pg := c.mem.Page(pfn); pg.Order() != 0 || !pg.Has(phys.FlagAnon) {
			break
		}
		folio := phys.Folio{PFN: pfn}
		c.src.RefAdd(folio, 1) // folio_get
		if err := c.src.TryDupAnonRmap(c.src, folio, pfn, 1); err != nil {
			// Cannot happen while c.runs holds (nothing pinned).
			panic(fmt.Sprintf("fork: dup of small anon page %#x failed in a run: %v", pfn, err))
		}
		children = append(children, c.childPTE(pte))
	}
	n := len(children)
	if n == 0 {
		return 0
	}
	// ptep_get of every PTE after the first, which the caller read.
	c.spt.CountReads(n - 1)
	c.pass.iters += uint64(n - 1)
	c.pass.lookups += uint64(n)
	c.pass.dups += uint64(n)
	c.pass.ptes += uint64(n)
	c.rss[mmu.MMAnonPages] += int64(n)
	if c.cow && write {
		c.spt.WrprotectPTEs(addr, sp, n)
	}
	if !c.dpt.SetEachPTE(dp, children) {
		for i, ce := range children {
			c.dpt.SetPTEs(addr+uint64(i)<<c.pageShift, dp.Add(i), ce, 1)
		}
	}
	c.children = children
	return n
}

// copyBatch is copy_present_ptes' batch path: folio_pte_batch finds how
// many PTEs from e map consecutive pages of folio, then one reference add,
// one rmap dup of them all (or none) and one write-protect and set_ptes.
func (c *copier) copyBatch(dp, sp pgtable.Ptr, e pgtable.Entry, addr uint64, maxNr int, folio phys.Folio, pfn phys.PFN, anon bool) (int, bool) {
	c.meter.Add(cost.PTEBatchCalls, 1)
	nr, pte := c.src.FolioPTEBatch(addr, sp, e, folio, maxNr, c.fpb)
	c.countBatchSteps(sp, e, folio, pfn, maxNr, nr)
	// Refcount first, then the mapcount: refcount >= mapcount at every
	// step.
	c.src.RefAdd(folio, nr)
	c.step(folio)
	if anon {
		if err := c.src.TryDupAnonRmap(c.src, folio, pfn, nr); err != nil {
			// All or nothing: the references go, and the caller
			// preallocates and retries unbatched.
			c.src.RefSub(folio, nr)
			c.step(folio)
			return 0, false
		}
		c.rss[mmu.MMAnonPages] += int64(nr)
	} else {
		c.src.DupFileRmap(folio, pfn, nr)
		c.rss[fileRSS(c.sv)] += int64(nr)
	}
	c.pass.dups += uint64(nr)
	c.step(folio)
	c.copyPTEs(dp, sp, pte, addr, nr)
	return nr, true
}

// childPTE returns the child's copy of the parent's (merged) PTE e: for a
// COW mapping write-protected, for a shared one clean, always old, and
// without uffd-wp unless the child's VMA is uffd-wp. The rules read flag
// bits only, so the result for one set of flags is remembered: the PTEs
// of a mapping mostly share theirs.
func (c *copier) childPTE(e pgtable.Entry) pgtable.Entry {
	if c.childValid && e&^c.addrMask == c.childIn {
		return e&c.addrMask | c.childOut
	}
	return c.childPTESlow(e)
}

// childPTESlow is childPTE for flags not seen last.
func (c *copier) childPTESlow(e pgtable.Entry) pgtable.Entry {
	fm := c.fm
	flags := e &^ c.addrMask
	out := flags
	if c.cow && fm.Write(out, pgtable.PTE) {
		out = fm.Wrprotect(out, pgtable.PTE)
	}
	if c.shared {
		out = fm.MkClean(out, pgtable.PTE)
	}
	out = fm.MkOld(out, pgtable.PTE)
	if !c.keepUffd {
		out = fm.ClearUffdWP(out, pgtable.PTE)
	}
	c.childIn, c.childOut, c.childValid = flags, out&^c.addrMask, true
	return e&c.addrMask | c.childOut
}

// step reports a refcount or mapcount change of f to the test hook.
func (c *copier) step(f phys.Folio) {
	if c.afterStep != nil {
		c.afterStep(f)
	}
}

// countBatchSteps counts folio_pte_batch's comparisons: one per PTE (or,
// where pte_batch_hint skips a contiguous block, per block) it read after
// the first, including the one that ended the batch before its limit.
func (c *copier) countBatchSteps(sp pgtable.Ptr, e pgtable.Entry, folio phys.Folio, pfn phys.PFN, maxNr, nr int) {
	limit := maxNr
	if left := int(folio.End() - pfn); left < limit {
		limit = left
	}
	if left := sp.T.Len() - sp.I; left < limit {
		limit = left
	}
	steps := 0
	if c.genericHint {
		steps = nr - 1
	} else {
		for i := c.spt.PteBatchHint(sp, e); i < nr; steps++ {
			q := sp.Add(i)
			i += c.spt.PteBatchHint(q, q.Peek())
		}
	}
	if nr < limit {
		steps++
	}
	if steps > 0 {
		c.meter.Add(cost.PTEBatchCompares, uint64(steps))
	}
}

// copyPresentPage gives the child a copy of the parent's page pfn now
// (copy_present_page): the preallocated folio gets the content, becomes an
// exclusive anonymous page of the child, mapped writable and dirty. The
// parent's PTE is untouched: it stays writable and exclusive. Without a
// preallocated folio it reports false (-EAGAIN).
func (c *copier) copyPresentPage(dp, sp pgtable.Ptr, addr uint64, pfn phys.PFN) bool {
	if !c.havePrealloc {
		return false
	}
	nf := c.prealloc
	c.havePrealloc = false
	c.mem.CopyContent(nf.PFN, pfn, 1)
	c.meter.Add(cost.PageCopies, 1)
	c.meter.Add(cost.ForkPageCopies, 1)
	c.src.AddNewAnonRmap(nf, nf.PFN, 1, true)
	c.rss[mmu.MMAnonPages]++
	fm := c.fm
	pte := fm.MkDirty(fm.MkPTE(nf.PFN, c.dv.Flags.Prot()), pgtable.PTE)
	if c.dv.Flags&mmu.VMWrite != 0 { // maybe_mkwrite
		pte = fm.MkWrite(pte, pgtable.PTE)
	}
	if c.keepUffd && fm.UffdWP(c.spt.PtepGet(addr, sp), pgtable.PTE) {
		// The uffd-wp mark goes to the child's copy too.
		pte = fm.MkUffdWP(pte, pgtable.PTE)
	}
	c.dpt.SetPTEAt(addr, dp, pte)
	c.meter.Add(cost.ForkPTEs, 1)
	return true
}

// copyPTEs writes nr PTEs into the child, the first being pte (the
// parent's, with the batch's write bits merged), and write-protects the
// parent's for a COW mapping (__copy_present_ptes). No TLB flush: the
// parent's is flushed once at the end of the fork.
func (c *copier) copyPTEs(dp, sp pgtable.Ptr, pte pgtable.Entry, addr uint64, nr int) {
	fm := c.fm
	if c.cow && fm.Write(pte, pgtable.PTE) {
		c.spt.WrprotectPTEs(addr, sp, nr)
	}
	c.dpt.SetPTEs(addr, dp, c.childPTE(pte), nr)
	c.pass.ptes += uint64(nr)
	if nr > 1 {
		c.meter.Add(cost.ForkBatches, 1)
	}
}
