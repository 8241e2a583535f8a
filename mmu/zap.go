package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// FPB flags steer FolioPTEBatch (Linux's fpb_t).
type FPB uint8

const (
	// FPBRespectDirty: PTEs must agree on dirty to batch.
	FPBRespectDirty FPB = 1 << iota
	// FPBRespectSoftDirty: PTEs must agree on soft-dirty.
	FPBRespectSoftDirty
	// FPBRespectWrite: PTEs must agree on write.
	FPBRespectWrite
	// FPBMergeWrite: OR the write bits of the batch into the result.
	FPBMergeWrite
	// FPBMergeYoungDirty: OR the young and dirty bits into the result.
	FPBMergeYoungDirty
)

// clearIgnored normalises e for batch comparison
// (__pte_batch_clear_ignored): access always ignored, dirty, soft-dirty and
// write unless respected.
func clearIgnored(fm *pgtable.Format, e pgtable.Entry, fl FPB) pgtable.Entry {
	if fl&FPBRespectDirty == 0 {
		e = fm.MkClean(e, pgtable.PTE)
	}
	if fl&FPBRespectSoftDirty == 0 {
		e = fm.ClearSoftDirty(e, pgtable.PTE)
	}
	if fl&FPBRespectWrite == 0 {
		e = fm.Wrprotect(e, pgtable.PTE)
	}
	return fm.MkOld(e, pgtable.PTE)
}

// FolioPTEBatch returns how many consecutive PTEs from p, the first being
// e, map consecutive pages of folio and agree in every bit the flags do
// not ignore, at most maxNr and never past the folio's end
// (folio_pte_batch_flags). It also returns e with the write, young and
// dirty bits of the batch merged in as the flags ask. It reads PTEs with
// ptep_get and skips ahead by pte_batch_hint (a whole arm64 contpte block
// in one read).
func (mm *MM) FolioPTEBatch(addr uint64, p pgtable.Ptr, e pgtable.Entry, folio phys.Folio, maxNr int, fl FPB) (int, pgtable.Entry) {
	fm := &mm.m.arch.Format
	pfn := fm.PFN(e, pgtable.PTE)
	if left := int(folio.End() - pfn); left < maxNr {
		maxNr = left
	}
	if left := p.T.Len() - p.I; left < maxNr {
		maxNr = left
	}
	nr := mm.pt.PteBatchHint(p, e)
	expected := clearIgnored(fm, fm.AdvancePFN(e, pgtable.PTE, uint64(nr)), fl)
	// raw is the entry before, advanced to the next frame. A PTE equal to
	// it matches and merges nothing new (clearIgnored and the merges read
	// flag bits only, and the entry before was taken in), so the common
	// run of identical PTEs skips both.
	raw := fm.AdvancePFN(e, pgtable.PTE, uint64(nr))
	merged := e
	ps := mm.pageSize()
	// With generic, untraced PTE reads the entries are read straight
	// from the table and the reads counted once at the end: the same
	// count, one add instead of one per entry.
	es, quiet := mm.pt.QuietPTEs(p, max(maxNr, 0))
	reads := 0
	for nr < maxNr {
		if quiet && es[nr] == raw {
			// A run of PTEs each equal to the one before advanced
			// by a frame: they match and merge nothing new (see
			// raw), so they are read and skipped in one scan.
			var k int
			k, raw = fm.PTERun(es[nr:maxNr], raw)
			reads += k
			expected = fm.AdvancePFN(expected, pgtable.PTE, uint64(k))
			nr += k
			continue
		}
		q := p.Add(nr)
		var cur pgtable.Entry
		if quiet {
			cur = es[nr]
			reads++
		} else {
			cur = mm.pt.PtepGet(addr+uint64(nr)*ps, q)
		}
		if cur != raw {
			if clearIgnored(fm, cur, fl) != expected {
				break
			}
			if fl&FPBMergeWrite != 0 && fm.Write(cur, pgtable.PTE) {
				merged = fm.MkWrite(merged, pgtable.PTE)
			}
			if fl&FPBMergeYoungDirty != 0 {
				if fm.Young(cur, pgtable.PTE) {
					merged = fm.MkYoung(merged, pgtable.PTE)
				}
				if fm.Dirty(cur, pgtable.PTE) {
					merged = fm.MkDirty(merged, pgtable.PTE)
				}
			}
		}
		n := 1
		if !quiet {
			n = mm.pt.PteBatchHint(q, cur)
		}
		expected = fm.AdvancePFN(expected, pgtable.PTE, uint64(n))
		raw = fm.AdvancePFN(cur, pgtable.PTE, uint64(n))
		nr += n
	}
	mm.pt.CountReads(reads)
	if nr > maxNr {
		nr = maxNr
	}
	return nr, merged
}

// FinishGather finishes an mmu_gather (tlb_finish_mmu): the one flush,
// then the freed tables, then the folio references the zap queued.
func (mm *MM) FinishGather(g *tlb.Gather) {
	if g == nil {
		return
	}
	g.Finish()
	mm.dropPending()
}

// ZapRange unmaps the pages of [start, end) inside v (unmap_page_range):
// PTEs cleared in batches per folio, huge PMDs cleared whole (or split
// when only partly covered), mappings and RSS dropped, the flush ranges
// and the folio references handed to the gather.
func (mm *MM) ZapRange(g *tlb.Gather, v *VMA, start, end uint64) {
	geo := &mm.m.arch.Geometry
	fm := &mm.m.arch.Format
	for addr := start; addr < end; {
		next := geo.AddrEnd(pgtable.PMD, addr, end)
		pmdp, ok := mm.pt.Walk(addr, pgtable.PMD)
		if !ok {
			if l := pmdp.Level(); fm.IsLeaf(pmdp.Peek(), l) {
				mm.zapHugeUpper(g, v, addr, pmdp)
			}
			addr = geo.AddrEnd(pmdp.Level(), addr, end)
			continue
		}
		if t := pmdp.T; t.Used() == 0 && !mm.pt.Meter().Tracing() {
			// The whole PMD table is empty (mremap moved its PTE
			// tables away): the loop would read this entry, then
			// walk to and read each later one of the table in the
			// range, finding them all none. Count those reads at
			// once and skip the table.
			stop := min(end, t.Base()+uint64(t.Len())*mm.pt.EntrySize(t))
			if stop <= addr { // the table ends at the top of the space
				stop = end
			}
			shift := geo.Shifts[pgtable.PMD]
			k := ((stop-1)>>shift - addr>>shift) + 1
			mm.pt.CountReads(int(1 + (k-1)*(mm.pt.Depth(t)+1)))
			addr = stop
			continue
		}
		if pmdp.Child() == nil {
			pmd := mm.pt.RawGet(pmdp)
			if fm.IsNone(pmd, pgtable.PMD) {
				addr = next
				continue
			}
			if next-addr == geo.Size(pgtable.PMD) {
				mm.zapHugePMD(g, v, addr, pmdp)
				addr = next
				continue
			}
			if err := mm.SplitHugePMD(v, addr&geo.Mask(pgtable.PMD), pmdp); err != nil {
				addr = next
				continue
			}
		}
		ptep := pgtable.Ptr{T: pmdp.Child(), I: mm.pt.IndexOf(pmdp.Child(), addr)}
		mm.zapPTERange(g, v, addr, next, ptep)
		addr = next
	}
}

// zapPTERange clears the PTEs of [addr, end), one PTE table (zap_pte_range).
func (mm *MM) zapPTERange(g *tlb.Gather, v *VMA, addr, end uint64, p pgtable.Ptr) {
	fm := &mm.m.arch.Format
	ps := mm.pageSize()
	var rss [numRSS]int64
	mm.meter.Add(cost.PTLocks, 1)
	mm.pt.EnterLazyMMU()
	if p.T.Used() == 0 {
		// Every entry is none (a table emptied by mremap's PTE moves):
		// the loop below would read each and skip it. Where those reads
		// can be counted at once, they are.
		n := int((end - addr) / ps)
		if _, ok := mm.pt.QuietPTEs(p, n); ok {
			mm.pt.CountReads(n)
			addr = end
		}
	}
	for addr < end {
		e := mm.pt.PtepGet(addr, p)
		if fm.IsNone(e, pgtable.PTE) || !fm.Present(e, pgtable.PTE) {
			addr += ps
			p = p.Add(1)
			continue
		}
		pfn := fm.PFN(e, pgtable.PTE)
		if fm.Special(e, pgtable.PTE) || pfn == mm.m.zero {
			mm.pt.GetAndClearFullPTEs(addr, p, 1, false)
			g.AddRange(addr, addr+ps, mm.pageShift())
			addr += ps
			p = p.Add(1)
			continue
		}
		folio := mm.Folio(pfn)
		nr := 1
		if folio.Large() {
			nr, _ = mm.FolioPTEBatch(addr, p, e, folio, int((end-addr)/ps), 0)
		}
		ent := mm.pt.GetAndClearFullPTEs(addr, p, nr, false)
		anon := mm.m.mem.Test(folio, phys.FlagAnon)
		switch {
		case anon:
			rss[MMAnonPages] -= int64(nr)
		default:
			if fm.Dirty(ent, pgtable.PTE) {
				mm.m.mem.SetFlags(folio, phys.FlagDirty)
			}
			rss[mm.fileRSS(v)] -= int64(nr)
		}
		g.AddRange(addr, addr+uint64(nr)*ps, mm.pageShift())
		mm.RemoveRmap(folio, pfn, nr)
		mm.deferPut(folio, nr)
		addr += uint64(nr) * ps
		p = p.Add(nr)
	}
	mm.pt.LeaveLazyMMU()
	for k, n := range rss {
		mm.AddRSS(RSSKind(k), n)
	}
}

// zapHugePMD clears a huge PMD that the range covers whole (zap_huge_pmd)
// and frees its deposited PTE table. A special leaf (a huge PFN map) has
// no folio, deposit or RSS to drop.
func (mm *MM) zapHugePMD(g *tlb.Gather, v *VMA, addr uint64, pmdp pgtable.Ptr) {
	fm := &mm.m.arch.Format
	mm.meter.Add(cost.PTLocks, 1)
	old := mm.pt.ExchangeLeaf(addr, pmdp, fm.None[pgtable.PMD])
	g.AddRange(addr, addr+mm.m.arch.Geometry.Size(pgtable.PMD), mm.m.arch.Geometry.Shift(pgtable.PMD))
	if !fm.Present(old, pgtable.PMD) || fm.Special(old, pgtable.PMD) {
		return
	}
	mm.withdrawDeposit(true)
	folio := mm.Folio(fm.PFN(old, pgtable.PMD))
	if mm.m.mem.Test(folio, phys.FlagAnon) {
		mm.AddRSS(MMAnonPages, -int64(folio.NrPages()))
	} else {
		mm.AddRSS(mm.fileRSS(v), -int64(folio.NrPages()))
	}
	mm.RemoveEntireRmap(folio)
	mm.deferPut(folio, 1)
}

// zapHugeUpper clears a leaf above the PMD level that the zap reaches.
func (mm *MM) zapHugeUpper(g *tlb.Gather, v *VMA, addr uint64, p pgtable.Ptr) {
	fm := &mm.m.arch.Format
	l := p.Level()
	size := mm.m.arch.Geometry.Size(l)
	base := addr &^ (size - 1)
	old := mm.pt.ExchangeLeaf(base, p, fm.None[l])
	g.AddRange(base, base+size, mm.m.arch.Geometry.Shift(l))
	if !fm.Present(old, l) || fm.Special(old, l) {
		return
	}
	folio := mm.Folio(fm.PFN(old, l))
	if mm.m.mem.Test(folio, phys.FlagAnon) {
		mm.AddRSS(MMAnonPages, -int64(folio.NrPages()))
	} else {
		mm.AddRSS(mm.fileRSS(v), -int64(folio.NrPages()))
	}
	mm.RemoveEntireRmap(folio)
	mm.deferPut(folio, 1)
}

// withdrawDeposit takes a deposited PTE table back
// (pgtable_trans_huge_withdraw); with free set it frees it
// (zap_deposited_table). It returns nil when none is deposited.
func (mm *MM) withdrawDeposit(free bool) *pgtable.Table {
	n := len(mm.deposits)
	if n == 0 {
		return nil
	}
	t := mm.deposits[n-1]
	mm.deposits = mm.deposits[:n-1]
	if free {
		_ = mm.pt.FreeTable(t)
		return nil
	}
	return t
}

// Deposits returns the number of PTE tables deposited for huge PMDs.
func (mm *MM) Deposits() int { return len(mm.deposits) }

// SplitHugePMD splits the huge PMD at haddr into a PTE table mapping the
// same pages (__split_huge_pmd): the deposited table is used, the PMD is
// invalidated and flushed before the table goes in, every page gets its
// own mapping and reference, and exclusivity passes to every page. A
// special leaf (a huge PFN map) is cleared instead, to refault. It fails
// with ENOMEM when no table is deposited and none can be allocated.
func (mm *MM) SplitHugePMD(v *VMA, haddr uint64, pmdp pgtable.Ptr) error {
	fm := &mm.m.arch.Format
	geo := &mm.m.arch.Geometry
	pmd := mm.pt.RawGet(pmdp)
	if !fm.IsLeaf(pmd, pgtable.PMD) {
		return fmt.Errorf("split huge pmd at %#x: not a huge leaf: %w", haddr, EINVAL)
	}
	if fm.Special(pmd, pgtable.PMD) {
		// A huge PFN map has no folio to map by PTEs: the leaf is
		// cleared and refaults (__split_huge_pmd_locked for
		// vma_is_special_huge).
		mm.meter.Add(cost.PTLocks, 1)
		mm.pt.ExchangeLeaf(haddr, pmdp, fm.None[pgtable.PMD])
		mm.m.tlb.FlushTLBMMRange(mm.tlb, haddr, haddr+geo.Size(pgtable.PMD), geo.Shift(pgtable.PMD), false)
		return nil
	}
	table := mm.withdrawDeposit(false)
	if table == nil {
		t, err := mm.pt.AllocTable(pgtable.PTE)
		if err != nil {
			return fmt.Errorf("split huge pmd at %#x: %w", haddr, err)
		}
		table = t
	}
	mm.meter.Add(cost.PTLocks, 1)
	old := mm.pt.ExchangeLeaf(haddr, pmdp, fm.None[pgtable.PMD])
	mm.m.tlb.FlushTLBMMRange(mm.tlb, haddr, haddr+geo.Size(pgtable.PMD), geo.Shift(pgtable.PMD), false)
	folio := mm.Folio(fm.PFN(old, pgtable.PMD))
	nr := int(folio.NrPages())
	mem := mm.m.mem
	excl := mem.Page(folio.PFN).Has(phys.FlagAnonExclusive)
	anon := mem.Test(folio, phys.FlagAnon)
	mm.RefAdd(folio, nr-1)
	mem.AddPTEMaps(folio, folio.PFN, nr)
	mm.chargeMapcount(folio, nr)
	mm.RemoveEntireRmap(folio)
	if anon && excl {
		pages := mem.Pages(folio)
		for i := 1; i < len(pages); i++ {
			pages[i].Set(phys.FlagAnonExclusive)
		}
	}
	mm.pt.SetPTEs(haddr, pgtable.Ptr{T: table, I: 0}, fm.HugeToPTE(old), nr)
	mm.pt.Populate(haddr, pmdp, table)
	return nil
}

// permsShrank reports whether going from old to new takes away a
// permission or changes the frame, so that a TLB may hold too much
// (pte_needs_flush).
func permsShrank(fm *pgtable.Format, old, new pgtable.Entry, l pgtable.Level) bool {
	if !fm.Present(old, l) {
		return false
	}
	return !fm.Present(new, l) || fm.PFN(old, l) != fm.PFN(new, l) ||
		(fm.HWWritable(old, l) && !fm.HWWritable(new, l)) ||
		(fm.HWReadable(old, l) && !fm.HWReadable(new, l)) ||
		(fm.Exec(old, l) && !fm.Exec(new, l))
}

// changeProtection rewrites the present entries of v with the protection
// of flags nf (change_protection), making PTEs writable at once where the
// page may be written without a fault (MM_CP_TRY_CHANGE_WRITABLE), and
// gathering a flush where permissions shrank.
func (mm *MM) changeProtection(g *tlb.Gather, v *VMA, nf VMFlags) {
	fm := &mm.m.arch.Format
	geo := &mm.m.arch.Geometry
	ps := mm.pageSize()
	prot := nf.Prot()
	tryWritable := nf&VMWrite != 0
	for addr := v.Start; addr < v.End; {
		next := geo.AddrEnd(pgtable.PMD, addr, v.End)
		pmdp, ok := mm.pt.Walk(addr, pgtable.PMD)
		if !ok {
			addr = geo.AddrEnd(pmdp.Level(), addr, v.End)
			continue
		}
		if pmdp.Child() == nil {
			pmd := mm.pt.RawGet(pmdp)
			if fm.IsNone(pmd, pgtable.PMD) {
				addr = next
				continue
			}
			if next-addr == geo.Size(pgtable.PMD) {
				n := fm.Modify(pmd, pgtable.PMD, prot)
				if n != pmd {
					mm.pt.ExchangeLeaf(addr, pmdp, n)
					if permsShrank(fm, pmd, n, pgtable.PMD) {
						g.AddRange(addr, next, geo.Shift(pgtable.PMD))
					}
				}
				addr = next
				continue
			}
			if err := mm.SplitHugePMD(v, addr&geo.Mask(pgtable.PMD), pmdp); err != nil {
				addr = next
				continue
			}
		}
		t := pmdp.Child()
		mm.meter.Add(cost.PTLocks, 1)
		mm.pt.EnterLazyMMU()
		for ; addr < next; addr += ps {
			p := pgtable.Ptr{T: t, I: mm.pt.IndexOf(t, addr)}
			old := mm.pt.PtepGet(addr, p)
			if !fm.Present(old, pgtable.PTE) {
				continue
			}
			n := fm.Modify(old, pgtable.PTE, prot)
			if tryWritable && !fm.Write(n, pgtable.PTE) && mm.canChangeWritable(v, nf, n) {
				n = fm.MkWrite(n, pgtable.PTE)
			}
			if n == old {
				continue
			}
			mm.pt.PtepGetAndClear(addr, p)
			mm.pt.SetPTEAt(addr, p, n)
			if permsShrank(fm, old, n, pgtable.PTE) {
				g.AddRange(addr, addr+ps, mm.pageShift())
			}
		}
		mm.pt.LeaveLazyMMU()
	}
}

// canChangeWritable reports whether a PTE may become writable at once
// (can_change_pte_writable): an exclusive anonymous page of a private
// mapping, or a dirty page of a shared one.
func (mm *MM) canChangeWritable(v *VMA, nf VMFlags, e pgtable.Entry) bool {
	fm := &mm.m.arch.Format
	if nf&VMShared != 0 {
		return fm.Dirty(e, pgtable.PTE)
	}
	pfn := fm.PFN(e, pgtable.PTE)
	if fm.Special(e, pgtable.PTE) || pfn == mm.m.zero {
		return false
	}
	folio := mm.Folio(pfn)
	return mm.m.mem.Test(folio, phys.FlagAnon) && mm.m.mem.Page(pfn).Has(phys.FlagAnonExclusive)
}
