package mremap

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// Move describes one move_page_tables call: Linux's
// pagetable_move_control. The caller fills the inputs; MovePageTables
// fills Stats.
type Move struct {
	// Old and New are the source and destination VMAs (pmc->old,
	// pmc->new). They are the same VMA for exec's stack move, which
	// expands the stack VMA downwards and moves its pages into the new
	// bottom part.
	Old, New *mmu.VMA
	// OldAddr and NewAddr are where the move starts; Len is how many
	// bytes to move (len_in). The addresses are page-aligned.
	OldAddr, NewAddr, Len uint64
	// NeedRmapLocks makes every per-PTE and huge-entry move take the
	// rmap locks (i_mmap, anon_vma), as copy_vma decides when the
	// destination merged into a VMA that rmap walks may visit before the
	// source; a rollback always sets it. Whole-table moves take them
	// regardless (since 2021, a stale-TLB race with reclaim).
	NeedRmapLocks bool
	// ForStack marks exec's stack move (relocate_vma_down): realignment
	// may then align down inside the VMA.
	ForStack bool
	// Stats report what the move did.
	Stats MoveStats
}

// MoveStats reports the decisions one move_page_tables call made.
type MoveStats struct {
	// Realigned is set when try_realign_addr aligned both addresses down
	// to a PMD boundary (the 2023 mutual-alignment optimisation).
	Realigned bool
	// DstNotNone counts whole-table moves refused because the
	// destination entry was not empty (WARN_ON_ONCE in move_normal_pmd and
	// move_normal_pud): the extent falls back to moving PTEs, never
	// overwriting the destination.
	DstNotNone int
	// Splits counts huge PMDs split because the extent did not cover
	// them whole or their move was refused.
	Splits int
	// Extents counts loop iterations (extents visited, empty ones
	// included).
	Extents int
}

// pmc is the state of one move_page_tables call.
type pmc struct {
	// mv is the caller's description; mm the address space, pt its page
	// table, a its arch and fm the arch's entry format.
	mv *Move
	mm *mmu.MM
	pt *pgtable.PageTable
	a  *arch.Arch
	fm *pgtable.Format
	// geo is the arch's geometry; pmdSize and pudSize are PMD_SIZE and
	// PUD_SIZE.
	geo              *pgtable.Geometry
	pmdSize, pudSize uint64
	// pageShift is PAGE_SHIFT.
	pageShift uint
	// readsToPUD and readsToPMD are how many entries a walk from the
	// root reads before it reaches the table holding PUD (PMD) entries.
	readsToPUD, readsToPMD uint64
	// oldPUDT and newPUDT are the tables holding the PUD entries of the
	// last source and destination addresses walked to (nil before).
	oldPUDT, newPUDT *pgtable.Table
	// oldAddr and newAddr advance together; oldEnd is fixed; lenIn is
	// the length asked for (pmc->len_in).
	oldAddr, newAddr, oldEnd, lenIn uint64
	// movePMD, movePUD are HAVE_MOVE_PMD/PUD as configured.
	movePMD, movePUD bool
	// latency is mremap_latency_limit in pages (0: today's behaviour).
	// When set, the kernel before 4.18/4.19 is modelled: per-PTE extents
	// are capped at latency pages, move_ptes flushes its extent only if
	// it moved a dirty present PTE and otherwise leaves a flush for the
	// end, and table moves leave their flush for the end (needFlush).
	latency   uint64
	needFlush bool
	// meter counts the work; tlbs and ctx flush.
	meter *cost.Meter
	tlbs  *tlb.System
	ctx   *tlb.Context
}

// MovePageTables moves the page-table entries mapping
// [mv.OldAddr, mv.OldAddr+mv.Len) to mv.NewAddr, as Linux's
// move_page_tables does today, and returns how many bytes of the
// original range it moved; less than mv.Len means it ran out of memory
// for a destination table (the caller rolls back).
//
// Per extent, in Linux's order: a huge PUD moves whole when the extent
// covers it; a PUD entry moves whole (a PMD table with everything below
// it) when HAVE_MOVE_PUD is on and the extent is PUD_SIZE on both sides;
// a huge PMD moves whole when the extent covers it, else it is split; a
// PMD entry moves whole (a PTE table) when HAVE_MOVE_PMD is on and the
// extent is PMD_SIZE on both sides; otherwise move_ptes moves the PTEs of
// the extent one by one (in folio batches where pte_batch_hint allows).
// A whole-table move is refused, falling back to the level below, when
// the destination entry is not empty: nothing is ever overwritten.
// Empty source extents are skipped and allocate nothing.
//
// TLB: each table move flushes the old range of its entry
// (flush_tlb_range, which also drops the walk caches holding the moved
// table); each move_ptes extent flushes its old range only if it moved a
// present PTE; a huge PMD move flushes only if the PMD was present.
//
// Precondition: the caller holds mmap_lock for writing, mv.Old maps the
// source range and mv.New covers the destination, which holds no
// mappings. Cost: per extent a few walks and, by path, one entry move
// and one flush, or one PTE move per page and one flush.
func MovePageTables(mm *mmu.MM, mv *Move) uint64 {
	if mv == nil || mm == nil {
		return 0
	}
	mv.Stats = MoveStats{}
	if mv.Len == 0 || mv.Old == nil || mv.New == nil {
		return 0
	}
	if mv.Old.Flags&mmu.VMHugeTLB != 0 {
		return moveHugetlbPageTables(mm, mv)
	}
	p := newPMC(mm, mv)
	p.tryRealign()
	for p.oldAddr < p.oldEnd {
		mv.Stats.Extents++
		ext, ok := p.step()
		if !ok {
			break
		}
		p.oldAddr += ext
		p.newAddr += ext
	}
	if p.needFlush && p.latency > 0 {
		start := p.oldEnd - p.lenIn
		if p.oldAddr > start {
			p.tlbs.FlushTLBRange(p.ctx, start, p.oldAddr)
		}
	}
	return p.progress()
}

// newPMC sets up the move state.
func newPMC(mm *mmu.MM, mv *Move) *pmc {
	m := mm.Machine()
	a := m.Arch()
	k := m.Knobs()
	p := &pmc{
		mv: mv, mm: mm, pt: mm.PageTable(), a: a, fm: &a.Format, geo: &a.Geometry,
		pageShift: a.Geometry.PageShift,
		oldAddr:   mv.OldAddr, newAddr: mv.NewAddr, oldEnd: mv.OldAddr + mv.Len, lenIn: mv.Len,
		movePMD: k.MovePMD, movePUD: k.MovePUD,
		meter: mm.Meter(), tlbs: m.TLB(), ctx: mm.TLBContext(),
	}
	p.pmdSize = p.geo.Size(pgtable.PMD)
	p.pudSize = p.geo.Size(pgtable.PUD)
	tables := p.geo.Tables[len(p.geo.Tables)-p.pt.Levels():]
	for _, tg := range tables {
		if tg.Level < pgtable.PMD {
			p.readsToPMD++
		}
		if tg.Level < pgtable.PUD {
			p.readsToPUD++
		}
	}
	if k.MremapLatencyLimit > 0 {
		p.latency = uint64(k.MremapLatencyLimit)
	}
	return p
}

// progress is pmc_progress: bytes of the original range done, 0 when a
// realigned first extent failed.
func (p *pmc) progress() uint64 {
	orig := p.oldEnd - p.lenIn
	if p.oldAddr < orig {
		return 0
	}
	return p.oldAddr - orig
}

// getExtent is get_extent: the bytes from the current addresses to the
// next boundary of an entry of the given size, on both sides, and never
// past the end. extent == size iff both addresses are aligned and at
// least size bytes remain.
func (p *pmc) getExtent(size uint64) uint64 {
	mask := ^(size - 1)
	next := (p.oldAddr + size) & mask
	// Even if next overflowed, the extent below is right.
	ext := next - p.oldAddr
	if left := p.oldEnd - p.oldAddr; ext > left {
		ext = left
	}
	next = (p.newAddr + size) & mask
	if n := next - p.newAddr; ext > n {
		ext = n
	}
	return ext
}

// step runs one iteration of move_page_tables' loop and returns the
// extent it covered; ok is false when a destination table could not be
// allocated (the loop's break).
func (p *pmc) step() (ext uint64, ok bool) {
	pt, fm := p.pt, p.fm
	ext = p.getExtent(p.pudSize)
	oldPUD, ok := p.slotIn(p.oldPUDT, p.oldAddr, p.readsToPUD)
	found := false
	if ok {
		e := pt.RawGet(oldPUD)
		found = oldPUD.Child() != nil || !fm.IsNone(e, oldPUD.Level())
	} else {
		oldPUD, found = p.oldEntry(pgtable.PUD)
		if oldPUD.Level() >= pgtable.PUD {
			p.oldPUDT = oldPUD.T
		}
	}
	if !found {
		return ext, true
	}
	newPUD, ok := p.slotIn(p.newPUDT, p.newAddr, p.readsToPUD)
	var err error
	if !ok {
		if newPUD, err = pt.WalkAlloc(p.newAddr, pgtable.PUD); err != nil {
			return ext, false
		}
		p.newPUDT = newPUD.T
	}
	if newPUD.Level() < oldPUD.Level() {
		return ext, false
	}
	pud := oldPUD.Peek()
	switch {
	case oldPUD.Child() == nil && oldPUD.Level() == pgtable.PUD && fm.IsLeaf(pud, pgtable.PUD):
		// pud_trans_huge: only a whole-entry move exists. The model
		// maps no transparent huge PUDs in user VMAs, and VMA edges
		// would have split one, so a partial extent cannot happen: it
		// stops the move like a failure rather than lose the mapping.
		if ext != p.pudSize {
			return ext, false
		}
		p.moveEntry(hugePUD, oldPUD, newPUD)
		return ext, true
	case p.movePUD && ext == p.pudSize && oldPUD.Level() == pgtable.PUD:
		if p.moveEntry(normalPUD, oldPUD, newPUD) {
			return ext, true
		}
	}

	ext = p.getExtent(p.pmdSize)
	oldPMD, ok := p.pmdIn(oldPUD, p.oldAddr)
	if ok {
		e := pt.RawGet(oldPMD)
		found = oldPMD.Child() != nil || !fm.IsNone(e, pgtable.PMD)
	} else {
		oldPMD, found = p.oldEntry(pgtable.PMD)
	}
	if !found {
		return ext, true
	}
	newPMD, ok := p.pmdIn(newPUD, p.newAddr)
	if !ok {
		if newPMD, err = pt.WalkAlloc(p.newAddr, pgtable.PMD); err != nil {
			return ext, false
		}
	}
	if newPMD.Level() != oldPMD.Level() {
		return ext, false
	}
	if oldPMD.Child() == nil && fm.IsLeaf(oldPMD.Peek(), oldPMD.Level()) {
		// is_swap_pmd || pmd_trans_huge.
		if ext == p.pmdSize && p.moveEntry(hugePMD, oldPMD, newPMD) {
			return ext, true
		}
		haddr := p.oldAddr &^ (p.pmdSize - 1)
		if err := p.mm.SplitHugePMD(p.mv.Old, haddr, oldPMD); err != nil {
			return ext, false
		}
		p.mv.Stats.Splits++
	} else if p.movePMD && ext == p.pmdSize {
		if p.moveEntry(normalPMD, oldPMD, newPMD) {
			return ext, true
		}
	}
	if oldPMD.Child() == nil && fm.IsNone(pt.RawGet(oldPMD), oldPMD.Level()) {
		return ext, true
	}
	if p.latency > 0 {
		// Before 4.18: LATENCY_LIMIT capped each move_ptes call.
		if lim := p.latency << p.pageShift; ext > lim {
			ext = lim
		}
	}
	if !p.pteAlloc(newPMD) {
		return ext, false
	}
	p.movePTEs(ext, oldPMD, newPMD)
	return ext, true
}

// oldEntry is get_old_pud and get_old_pmd: the source entry at level l
// for oldAddr, or false when it (or a level above it) is empty.
func (p *pmc) oldEntry(l pgtable.Level) (pgtable.Ptr, bool) { return p.oldEntryAt(p.oldAddr, l) }

// oldEntryAt is oldEntry for any address.
func (p *pmc) oldEntryAt(addr uint64, l pgtable.Level) (pgtable.Ptr, bool) {
	ptr, ok := p.pt.Walk(addr, l)
	if !ok {
		return ptr, false
	}
	e := p.pt.RawGet(ptr)
	if ptr.Child() == nil && p.fm.IsNone(e, ptr.Level()) {
		return ptr, false
	}
	return ptr, true
}

// slotIn returns addr's slot in table t, the table the walk of an earlier
// iteration reached, when t maps addr, counting the reads of the walk
// from the root that get_old_pud and alloc_new_pud repeat every time
// (reads). Tables above the PUD level never change during a move (a
// PUD move clears an entry, not the table holding it), so the table a
// walk reached stays right for every address it maps.
func (p *pmc) slotIn(t *pgtable.Table, addr, reads uint64) (pgtable.Ptr, bool) {
	if t == nil || t.Freed() || addr-t.Base() >= uint64(t.Len())*p.pt.EntrySize(t) {
		return pgtable.Ptr{}, false
	}
	p.meter.Add(cost.EntryReads, reads)
	return pgtable.Ptr{T: t, I: p.pt.IndexOf(t, addr)}, true
}

// pmdIn returns addr's slot in the PMD table that the PUD entry pud
// (found by the same iteration) points to, counting the reads the walk
// from the root would make: get_old_pmd and alloc_new_pmd walk again from
// the PGD, the model skips the descent. It reports false when pud holds
// no PMD table (a folded PUD, an empty entry), and the caller walks.
func (p *pmc) pmdIn(pud pgtable.Ptr, addr uint64) (pgtable.Ptr, bool) {
	t := pud.Child()
	if pud.Level() != pgtable.PUD || t == nil || t.Level() != pgtable.PMD {
		return pgtable.Ptr{}, false
	}
	p.meter.Add(cost.EntryReads, p.readsToPMD)
	return pgtable.Ptr{T: t, I: p.pt.IndexOf(t, addr)}, true
}

// pteAlloc is pte_alloc on the destination PMD: a PTE table is allocated
// and populated (under the PMD lock) when the entry is empty. It reports
// false when memory runs out or the entry holds a huge leaf.
func (p *pmc) pteAlloc(pmd pgtable.Ptr) bool {
	if pmd.Child() != nil {
		return true
	}
	if !p.fm.IsNone(p.pt.RawGet(pmd), pmd.Level()) {
		return false
	}
	t, err := p.pt.AllocTable(pgtable.PTE)
	if err != nil {
		return false
	}
	p.meter.Add(cost.PTLocks, 1)
	p.pt.Populate(p.newAddr, pmd, t)
	return true
}

// entryKind names what move_pgt_entry moves.
type entryKind uint8

const (
	normalPMD entryKind = iota
	hugePMD
	normalPUD
	hugePUD
)

// moveEntry is move_pgt_entry: the rmap locks around one entry move,
// always for whole-table moves and as need_rmap_locks says for huge
// entries (should_take_rmap_locks). It reports whether the entry moved.
func (p *pmc) moveEntry(kind entryKind, oldp, newp pgtable.Ptr) bool {
	if kind == normalPMD || kind == normalPUD || p.mv.NeedRmapLocks {
		p.takeRmapLocks()
	}
	switch kind {
	case normalPMD:
		return p.moveNormalTable(oldp, newp, pgtable.PMD)
	case normalPUD:
		return p.moveNormalTable(oldp, newp, pgtable.PUD)
	case hugePMD:
		return p.moveHuge(oldp, newp, pgtable.PMD)
	default:
		return p.moveHuge(oldp, newp, pgtable.PUD)
	}
}

// takeRmapLocks is take_rmap_locks: i_mmap_rwsem of a file VMA, then the
// anon_vma lock of a VMA with anonymous pages; one count each.
func (p *pmc) takeRmapLocks() {
	n := uint64(0)
	if p.mv.Old.File != nil {
		n++
	}
	if p.mv.Old.AnonVMA {
		n++
	}
	if n > 0 {
		p.meter.Add(cost.RmapLocks, n)
	}
}

// uffdBlocks reports vma_has_uffd_without_event_remap: the model's
// VM_UFFD_WP is armed without UFFD_FEATURE_EVENT_REMAP, so its uffd-wp
// bits must be cleared PTE by PTE.
func uffdBlocks(v *mmu.VMA) bool { return v.Flags&mmu.VMUffdWP != 0 }

// moveNormalTable is move_normal_pmd (l == PMD) and move_normal_pud
// (l == PUD): the table the source entry points to is detached with a
// plain clear and attached at the destination with pmd_populate, then
// the old range of the entry is flushed. It refuses when the arch must
// not clear a live entry with a plain store (s390 never opts in), when
// either VMA has uffd-wp without remap events, when the destination
// entry is not empty (Linux warns once and falls back), and when the
// source entry is not a table (a racing collapse).
func (p *pmc) moveNormalTable(oldp, newp pgtable.Ptr, l pgtable.Level) bool {
	pt, fm := p.pt, p.fm
	if p.a.Caps.LiveEntriesNeedInvalidate {
		return false
	}
	if uffdBlocks(p.mv.Old) || uffdBlocks(p.mv.New) {
		return false
	}
	if newp.Child() != nil || !fm.IsNone(pt.RawGet(newp), newp.Level()) {
		p.mv.Stats.DstNotNone++
		return false
	}
	// pmd_lock(old), then the new PMD's split lock if it is another
	// one; the PUD lock is mm->page_table_lock for both.
	locks := uint64(1)
	if l == pgtable.PMD && newp.T != oldp.T {
		locks++
	}
	p.meter.Add(cost.PTLocks, locks)
	pt.RawGet(oldp)
	if oldp.Child() == nil {
		return false // not a table any more (collapse); nothing moved
	}
	child := pt.ClearTable(p.oldAddr, oldp)
	pt.Populate(p.newAddr, newp, child)
	size := p.pmdSize
	ev := cost.PMDMoves
	if l == pgtable.PUD {
		size, ev = p.pudSize, cost.PUDMoves
	}
	p.meter.Note(ev, 1, p.newAddr, uint64(child.PFN()))
	if p.latency > 0 {
		p.needFlush = true
	} else {
		p.tlbs.FlushTLBRange(p.ctx, p.oldAddr, p.oldAddr+size)
	}
	return true
}

// moveHuge is move_huge_pmd (l == PMD) and move_huge_pud (l == PUD): the
// leaf is taken with an invalidating get-and-clear
// (pmdp_huge_get_and_clear), for a PMD marked soft-dirty and stripped of
// uffd-wp when the VMA needs it, and set at the destination; a THP's
// deposited PTE table goes with it. The old range is flushed with a PMD
// (PUD) stride, for a PMD only if it was present. It refuses when the
// destination is not empty.
func (p *pmc) moveHuge(oldp, newp pgtable.Ptr, l pgtable.Level) bool {
	pt, fm := p.pt, p.fm
	if newp.Child() != nil || !fm.IsNone(pt.RawGet(newp), newp.Level()) {
		return false
	}
	locks := uint64(1)
	if l == pgtable.PMD && newp.T != oldp.T {
		locks++
	}
	p.meter.Add(cost.PTLocks, locks)
	e := pt.ExchangeLeaf(p.oldAddr, oldp, fm.None[l])
	present := fm.Present(e, l)
	// A special leaf (a huge PFN map) has no deposited table to carry.
	if l == pgtable.PMD && present && !fm.Special(e, l) {
		if _, err := p.mm.MoveHugePMDDeposit(oldp, newp, p.mv.Old.Anonymous()); err != nil {
			// A THP without its deposit is a model bug; put the leaf
			// back and let the caller split or fall back.
			pt.ExchangeLeaf(p.oldAddr, oldp, e)
			return false
		}
	}
	if l == pgtable.PMD {
		// move_huge_pmd marks the moved leaf soft-dirty and drops its
		// uffd-wp bit; move_huge_pud does neither (no PUD-level
		// soft-dirty or uffd-wp support).
		e = fm.MkSoftDirty(e, l)
		if uffdBlocks(p.mv.Old) {
			e = fm.ClearUffdWP(e, l)
		}
	}
	if err := pt.SetLeaf(p.newAddr, newp, e); err != nil {
		pt.ExchangeLeaf(p.oldAddr, oldp, e)
		return false
	}
	size, shift := p.pmdSize, p.geo.Shift(pgtable.PMD)
	ev := cost.HugePMDMoves
	if l == pgtable.PUD {
		size, shift, ev = p.pudSize, p.geo.Shift(pgtable.PUD), cost.PUDMoves
	}
	p.meter.Note(ev, 1, p.newAddr, uint64(e))
	switch {
	case p.latency > 0 && present && fm.Dirty(e, l):
		p.tlbs.FlushTLBMMRange(p.ctx, p.oldAddr, p.oldAddr+size, shift, false)
	case p.latency > 0:
		p.needFlush = true
	case present || l == pgtable.PUD:
		p.tlbs.FlushTLBMMRange(p.ctx, p.oldAddr, p.oldAddr+size, shift, false)
	}
	return true
}

// movePTEs is move_ptes for one extent inside one PTE table: under both
// PTE locks and in lazy-MMU mode, every non-empty PTE (a folio batch at
// a time where pte_batch_hint allows) is cleared with
// get_and_clear_full_ptes, passed through the arch's move_pte (sparc64's
// D-cache flush), marked soft-dirty, stripped of uffd-wp when the VMA
// needs it, and set at the destination. Then, still under the locks, the
// extent's old range is flushed if a present PTE moved (today), or if a
// dirty present PTE moved (with mremap_latency_limit; otherwise the
// flush is left for the end of the move).
func (p *pmc) movePTEs(ext uint64, oldPMD, newPMD pgtable.Ptr) {
	pt, fm := p.pt, p.fm
	if p.mv.NeedRmapLocks {
		p.takeRmapLocks()
	}
	oldT, newT := oldPMD.Child(), newPMD.Child()
	locks := uint64(1)
	if oldT != newT {
		locks++
	}
	p.meter.Add(cost.PTLocks, locks)
	clearUffd := uffdBlocks(p.mv.Old)
	movePTE := p.a.MovePTE
	ps := uint64(1) << p.pageShift
	oldAddr, newAddr := p.oldAddr, p.newAddr
	end := oldAddr + ext
	op := pgtable.Ptr{T: oldT, I: pt.IndexOf(oldT, oldAddr)}
	np := pgtable.Ptr{T: newT, I: pt.IndexOf(newT, newAddr)}
	force := false
	moved := uint64(0)
	pt.EnterLazyMMU()
	if movePTE == nil && p.latency == 0 {
		// Generic PTE operations on a quiet table: one pass, same
		// entries and counts (pgtable.MovePTEsQuiet).
		var clear pgtable.Entry
		if clearUffd {
			clear = fm.PTE.UffdWP
		}
		if n, present, ok := pt.MovePTEsQuiet(op, np, int(ext>>p.pageShift), fm.PTE.SoftDirty, clear); ok {
			moved, force = uint64(n), present
			oldAddr = end
		}
	}
	for oldAddr < end {
		nr := 1
		e := pt.PtepGet(oldAddr, op)
		if fm.IsNone(e, pgtable.PTE) {
			oldAddr, newAddr = oldAddr+ps, newAddr+ps
			op.I++
			np.I++
			continue
		}
		present := fm.Present(e, pgtable.PTE)
		if present {
			nr = p.batch(oldAddr, op, e, int((end-oldAddr)>>p.pageShift))
			if p.latency == 0 {
				force = true
			}
		}
		e = pt.GetAndClearFullPTEs(oldAddr, op, nr, false)
		if movePTE != nil {
			e = movePTE(p.meter, e, oldAddr, newAddr)
		}
		if present {
			e = fm.MkSoftDirty(e, pgtable.PTE)
			if p.latency > 0 && fm.Dirty(e, pgtable.PTE) {
				force = true
			}
		}
		if clearUffd {
			e = fm.ClearUffdWP(e, pgtable.PTE)
		}
		pt.SetPTEs(newAddr, np, e, nr)
		moved += uint64(nr)
		step := uint64(nr) << p.pageShift
		oldAddr, newAddr = oldAddr+step, newAddr+step
		op.I += nr
		np.I += nr
	}
	pt.LeaveLazyMMU()
	if moved > 0 {
		p.meter.Note(cost.PTEMoves, moved, p.newAddr, 0)
	}
	switch {
	case force:
		p.tlbs.FlushTLBRange(p.ctx, p.oldAddr, p.oldAddr+ext)
	case p.latency > 0:
		p.needFlush = true
	}
}

// batch is mremap_folio_pte_batch: how many PTEs from op map consecutive
// pages of one large folio and can move as one. Only arches whose
// pte_batch_hint exceeds 1 (arm64 contpte blocks) ever batch; the batch
// respects the write bit, so it never widens a PTE's permissions.
func (p *pmc) batch(addr uint64, op pgtable.Ptr, e pgtable.Entry, maxNr int) int {
	if maxNr <= 1 || p.pt.PteBatchHint(op, e) <= 1 {
		return 1
	}
	fm := p.fm
	if fm.Special(e, pgtable.PTE) {
		return 1
	}
	pfn := fm.PFN(e, pgtable.PTE)
	mem := p.mm.Machine().Memory()
	if !mem.IsAllocated(pfn) || pfn == p.mm.Machine().ZeroPage() {
		return 1
	}
	folio := mem.FolioOf(pfn)
	if !folio.Large() {
		return 1
	}
	nr, _ := p.mm.FolioPTEBatch(addr, op, e, folio, maxNr, mmu.FPBRespectWrite)
	return nr
}

// tryRealign is try_realign_addr with PMD_MASK: when the range reaches
// the next PMD boundary, the old address is not aligned, both addresses
// have the same offset in their PMD, and aligning each down grabs no
// other mapping (can_align_down), both start at their PMD boundary, so
// the first PMD moves whole. Progress is still counted from the original
// start.
func (p *pmc) tryRealign() {
	mask := ^(p.pmdSize - 1)
	oldAlign := p.oldAddr &^ mask
	newAlign := p.newAddr &^ mask
	switch {
	case p.lenIn < p.pmdSize-oldAlign:
		return // the range does not reach the next boundary
	case oldAlign == 0:
		return // already aligned
	case oldAlign != newAlign:
		return // not mutually aligned
	case !p.canAlignDown(p.mv.Old, p.oldAddr, mask) || !p.canAlignDown(p.mv.New, p.newAddr, mask):
		return
	}
	p.oldAddr &= mask
	p.newAddr &= mask
	p.mv.Stats.Realigned = true
}

// canAlignDown is can_align_down: the address must start its VMA (else
// aligning down would move part of the same mapping, the
// |DDDDddddSSSSssss| case) unless this is the stack move, and nothing may
// be mapped between the aligned-down address and the address.
func (p *pmc) canAlignDown(v *mmu.VMA, addr, mask uint64) bool {
	masked := addr & mask
	if !p.mv.ForStack && v.Start != addr {
		return false
	}
	if p.mv.ForStack && masked >= v.Start {
		return true
	}
	return len(p.mm.VMAsIn(masked, addr)) == 0
}

// moveHugetlbPageTables is move_hugetlb_page_tables: every hugetlb leaf
// of the range moves with an invalidating get-and-clear and a set at the
// destination (its uffd-wp bit cleared when the VMA needs it), under the
// rmap locks, and the whole old range is flushed once at the end, as
// Linux does whatever moved. The range and both addresses are aligned to
// the VMA's huge page size (mremap checked). It returns the bytes moved:
// all of them, or fewer when a destination table cannot be allocated.
func moveHugetlbPageTables(mm *mmu.MM, mv *Move) uint64 {
	pt := mm.PageTable()
	fm := &mm.Machine().Arch().Format
	geo := &mm.Machine().Arch().Geometry
	size := uint64(1) << mv.Old.HugeShift
	l := pgtable.PMD
	if size >= geo.Size(pgtable.PUD) {
		l = pgtable.PUD
	}
	p := &pmc{mv: mv, meter: mm.Meter()}
	p.takeRmapLocks()
	moved := uint64(0)
	for ; moved < mv.Len; moved += size {
		src, ok := pt.Walk(mv.OldAddr+moved, l)
		if !ok || src.Child() != nil || fm.IsNone(pt.RawGet(src), src.Level()) {
			continue
		}
		dst, err := pt.WalkAlloc(mv.NewAddr+moved, l)
		if err != nil || dst.Level() != src.Level() || dst.Child() != nil {
			break
		}
		mm.Meter().Add(cost.PTLocks, 1)
		orig := pt.ExchangeLeaf(mv.OldAddr+moved, src, fm.None[src.Level()])
		e := orig
		if uffdBlocks(mv.Old) {
			e = fm.ClearUffdWP(e, src.Level())
		}
		if err := pt.SetLeaf(mv.NewAddr+moved, dst, e); err != nil {
			pt.ExchangeLeaf(mv.OldAddr+moved, src, orig)
			break
		}
	}
	// flush_hugetlb_tlb_range(vma, old_end - len, old_end).
	mm.Machine().TLB().FlushTLBMMRange(mm.TLBContext(), mv.OldAddr, mv.OldAddr+mv.Len, geo.Shift(l), false)
	return moved
}
