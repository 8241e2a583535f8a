package contpte

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// EINVAL is returned by New for a bad configuration.
const EINVAL = errno.EINVAL

// Switches are the kernel switches the Ops read at every call.
type Switches struct {
	// ContPTE: manage contiguous blocks (CONFIG_ARM64_CONTPTE). Off, the
	// Ops are pgtable.GenericOps.
	ContPTE bool
	// BBML2: the CPUs have BBML2 without conflict aborts
	// (system_supports_bbml2_noabort), so contpte_convert skips its flush.
	BBML2 bool
}

// Config describes the Ops of one user address space.
type Config struct {
	// ContPTEs is CONT_PTES, the entries of one block: a power of two of
	// at least 2 (16, 128 or 32 on arm64's 4K, 16K and 64K granules).
	ContPTEs int
	// TLB is the machine's TLB system and Context the address space in
	// it; contpte_convert flushes the block through them. A nil TLB or
	// Context means nothing can be cached, so no flush is issued.
	TLB     *tlb.System
	Context *tlb.Context
	// Memory is physical memory: __contpte_try_fold asks it which folio a
	// frame belongs to. Required.
	Memory *phys.Memory
	// Meter counts contpte_folds, contpte_unfolds and contpte_converts;
	// nil counts them on the page table's own meter.
	Meter *cost.Meter
	// Switches reports the switches as they are now; nil means contpte on
	// and BBML2 off.
	Switches func() Switches
}

// Ops is arm64's implementation of the public PTE functions for one user
// address space: pgtable.ArchOps with contpte. The embedded GenericOps
// serve the lazy-MMU hooks and every call while contpte is off.
type Ops struct {
	pgtable.GenericOps
	// n is CONT_PTES.
	n int
	// sys and ctx are where the convert's flush goes.
	sys *tlb.System
	ctx *tlb.Context
	// mem answers which folio covers a block.
	mem *phys.Memory
	// meter counts folds, unfolds and converts (nil: the table's meter).
	meter *cost.Meter
	// switches reads contpte and bbml2 at call time.
	switches func() Switches
}

// New returns the Ops for cfg. It fails with EINVAL when ContPTEs is not
// a power of two of at least 2 or Memory is missing.
func New(cfg Config) (*Ops, error) {
	n := cfg.ContPTEs
	if n < 2 || n&(n-1) != 0 {
		return nil, fmt.Errorf("contpte: CONT_PTES %d is not a power of two >= 2: %w", n, EINVAL)
	}
	if cfg.Memory == nil {
		return nil, fmt.Errorf("contpte: no physical memory: %w", EINVAL)
	}
	return &Ops{n: n, sys: cfg.TLB, ctx: cfg.Context, mem: cfg.Memory, meter: cfg.Meter, switches: cfg.Switches}, nil
}

// ContPTEs returns CONT_PTES.
func (o *Ops) ContPTEs() int { return o.n }

// sw returns the switches as they are now.
func (o *Ops) sw() Switches {
	if o.switches == nil {
		return Switches{ContPTE: true}
	}
	return o.switches()
}

// meterFor returns where folds, unfolds and converts count.
func (o *Ops) meterFor(pt *pgtable.PageTable) *cost.Meter {
	if o.meter != nil {
		return o.meter
	}
	return pt.Meter()
}

// validCont reports pte_valid_cont: a valid entry with PTE_CONT.
func validCont(f *pgtable.Format, e pgtable.Entry) bool {
	return f.HWValidBits(e, pgtable.PTE) && f.Cont(e, pgtable.PTE)
}

// manages reports whether the contpte paths must run for the nr entries
// from p: never for init_mm (mm_is_user); always with contpte on; with
// contpte off only when one of them is still a folded block, looked at
// without counting (a script switched contpte off under live blocks).
// Never for entries outside one table either: the generic functions then
// refuse them (pgtable.PageTable.Misused).
func (o *Ops) manages(pt *pgtable.PageTable, p pgtable.Ptr, nr int) bool {
	if pt.Kernel() || !p.In(nr) {
		return false
	}
	if o.sw().ContPTE {
		return true
	}
	f := pt.Format()
	for i := 0; i < nr; i++ {
		if validCont(f, p.Add(i).Peek()) {
			return true
		}
	}
	return false
}

// alignDown returns the pointer to the first entry of p's block
// (contpte_align_down).
func (o *Ops) alignDown(p pgtable.Ptr) pgtable.Ptr {
	return pgtable.Ptr{T: p.T, I: p.I &^ (o.n - 1)}
}

// blockSize returns CONT_PTE_SIZE for pt.
func (o *Ops) blockSize(pt *pgtable.PageTable) uint64 {
	return uint64(o.n) << pt.Format().PageShift
}

// ---------------------------------------------------------------------
// The public functions (pgtable.ArchOps).

// SetPTEs is arm64's set_ptes. It strips PTE_CONT from e. For nr == 1 it
// unfolds the block the old entry belongs to, writes, then tries to fold
// (contpte_try_fold); for nr > 1 (targets not present) it is
// contpte_set_ptes. Costs: one more entry read than the generic set_ptes
// for nr == 1, plus a convert when the block is unfolded or folded.
// Precondition: for nr > 1 every target is not present.
func (o *Ops) SetPTEs(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry, nr int) {
	f := pt.Format()
	// Every setter strips PTE_CONT, which getters may let show: even with
	// contpte off, a leftover block's gathered entry may carry it.
	e = f.MkNonCont(e)
	if !o.manages(pt, p, nr) {
		o.GenericOps.SetPTEs(pt, addr, p, e, nr)
		return
	}
	if nr == 1 {
		o.tryUnfold(pt, addr, p, pt.RawGet(p))
		pt.RawSetPTEs(addr, p, e, 1)
		if o.sw().ContPTE {
			o.tryFold(pt, addr, p, e)
		}
		return
	}
	o.setPTEs(pt, addr, p, e, nr)
}

// setPTEs is contpte_set_ptes: in pte_cont_addr_end chunks, a chunk that
// is a whole block with a block-aligned physical address is written with
// PTE_CONT, any other without. There is no folio check: the caller maps
// one folio. With contpte off (only a leftover block in range brought us
// here) nothing is written contiguous.
func (o *Ops) setPTEs(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry, nr int) {
	f := pt.Format()
	ps := uint64(1) << f.PageShift
	size := o.blockSize(pt)
	on := o.sw().ContPTE
	end := addr + uint64(nr)*ps
	for addr != end {
		next := (addr + size) &^ (size - 1)
		if next-1 >= end-1 {
			next = end
		}
		k := int((next - addr) >> f.PageShift)
		pa := uint64(f.PFN(e, pgtable.PTE)) << f.PageShift
		chunk := f.MkNonCont(e)
		if on && (addr|next|pa)&(size-1) == 0 {
			chunk = f.MkCont(e)
		}
		pt.RawSetPTEs(addr, p, chunk, k)
		addr = next
		p = p.Add(k)
		e = f.AdvancePFN(e, pgtable.PTE, uint64(k))
	}
}

// Get is arm64's ptep_get: the raw entry, or for a valid contiguous entry
// the entry with the access and dirty bits of its whole block ORed in
// (contpte_ptep_get). PTE_CONT shows through. Costs one entry read, plus
// for a block the reads of Linux 6.16's loop (gather).
func (o *Ops) Get(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr) pgtable.Entry {
	if !o.manages(pt, p, 1) {
		return o.GenericOps.Get(pt, addr, p)
	}
	e := pt.RawGet(p)
	if !validCont(pt.Format(), e) {
		return e
	}
	e, _ = o.gather(pt, p, e, nil)
	return e
}

// gather ORs the access and dirty bits of p's block into orig with
// contpte_ptep_get's loop since Linux 6.16 ("arm64/mm: Optimize loop to
// reduce redundant operations of contpte_ptep_get"): scan until the first
// entry that is dirty or young; after a dirty one, scan from that same
// entry (read again) for a young one; after a young one, scan on from the
// next for a dirty one; stop at the first found. So a block with neither
// bit costs CONT_PTES reads, and finding dirty first one read more than
// the entries scanned. ok, when not nil, checks each entry read
// (ptep_get_lockless's consistency test, with its index); gather stops
// and reports false at the first entry that fails it.
func (o *Ops) gather(pt *pgtable.PageTable, p pgtable.Ptr, orig pgtable.Entry, ok func(i int, e pgtable.Entry) bool) (pgtable.Entry, bool) {
	f := pt.Format()
	q := o.alignDown(p)
	read := func(i int) (pgtable.Entry, bool) {
		e := pt.RawGet(q.Add(i))
		return e, ok == nil || ok(i, e)
	}
	for i := 0; i < o.n; i++ {
		e, good := read(i)
		if !good {
			return orig, false
		}
		if f.Dirty(e, pgtable.PTE) {
			orig = f.MkDirty(orig, pgtable.PTE)
			for ; i < o.n; i++ {
				e, good := read(i)
				if !good {
					return orig, false
				}
				if f.Young(e, pgtable.PTE) {
					orig = f.MkYoung(orig, pgtable.PTE)
					break
				}
			}
			break
		}
		if f.Young(e, pgtable.PTE) {
			orig = f.MkYoung(orig, pgtable.PTE)
			for i++; i < o.n; i++ {
				e, good := read(i)
				if !good {
					return orig, false
				}
				if f.Dirty(e, pgtable.PTE) {
					orig = f.MkDirty(orig, pgtable.PTE)
					break
				}
			}
			break
		}
	}
	return orig, true
}

// maxLocklessRetries bounds contpte_ptep_get_lockless's retry loop. Linux
// loops until the block is stable, which another CPU's convert makes it;
// the model runs one operation at a time, so a block that is inconsistent
// now stays so, and looping would never end.
const maxLocklessRetries = 2

// GetLockless is arm64's ptep_get_lockless: as Get, but every entry the
// gathering loop reads must be valid-contiguous, map the next frame and
// have the target's bits apart from access and dirty
// (contpte_is_consistent), else it starts again
// (contpte_ptep_get_lockless; since Linux 6.16 it stops as Get does, so
// entries after the last one it needs go unchecked). Costs one read plus
// the loop's reads per pass. A block that stays inconsistent (a bug in
// the model, as nothing runs concurrently) gives the raw entry.
func (o *Ops) GetLockless(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr) pgtable.Entry {
	if !o.manages(pt, p, 1) {
		return o.GenericOps.GetLockless(pt, addr, p)
	}
	f := pt.Format()
	var orig pgtable.Entry
	for try := 0; try < maxLocklessRetries; try++ {
		orig = pt.RawGet(p)
		if !validCont(f, orig) {
			return orig
		}
		prot := f.MkOld(f.MkClean(orig, pgtable.PTE), pgtable.PTE)
		off := p.I - o.alignDown(p).I
		first := f.PFN(orig, pgtable.PTE) - phys.PFN(off)
		consistent := func(i int, e pgtable.Entry) bool {
			return validCont(f, e) && f.MkOld(f.MkClean(e, pgtable.PTE), pgtable.PTE) == f.SetPFN(prot, pgtable.PTE, first+phys.PFN(i))
		}
		if out, stable := o.gather(pt, p, orig, consistent); stable {
			return out
		}
	}
	return orig
}

// GetAndClear is arm64's get_and_clear_full_ptes (and, for nr == 1,
// ptep_get_and_clear): for one entry it unfolds its block first; for more
// it unfolds only the blocks cut at the start or end of the range
// (contpte_try_unfold_partial) and clears fully covered blocks raw. It
// returns the first entry with the access and dirty bits of all ORed in.
func (o *Ops) GetAndClear(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int, full bool) pgtable.Entry {
	if !o.manages(pt, p, nr) {
		return o.GenericOps.GetAndClear(pt, addr, p, nr, full)
	}
	o.unfoldFor(pt, addr, p, nr)
	return rawGetAndClear(pt, addr, p, nr)
}

// Clear is arm64's clear_full_ptes (and pte_clear for nr == 1), unfolding
// as GetAndClear does.
func (o *Ops) Clear(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int, full bool) {
	if !o.manages(pt, p, nr) {
		o.GenericOps.Clear(pt, addr, p, nr, full)
		return
	}
	o.unfoldFor(pt, addr, p, nr)
	ps := uint64(1) << pt.Format().PageShift
	for i := 0; i < nr; i++ {
		pt.RawClear(addr+uint64(i)*ps, p.Add(i))
	}
}

// unfoldFor unfolds what a change of nr entries from p must: the one
// entry's block for nr == 1 (contpte_try_unfold), the partially covered
// edge blocks otherwise.
func (o *Ops) unfoldFor(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int) {
	if nr == 1 {
		o.tryUnfold(pt, addr, p, pt.RawGet(p))
		return
	}
	o.tryUnfoldPartial(pt, addr, p, nr)
}

// rawGetAndClear is __get_and_clear_full_ptes: raw get-and-clear of nr
// entries, the first returned with the others' access and dirty ORed in.
func rawGetAndClear(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int) pgtable.Entry {
	f := pt.Format()
	ps := uint64(1) << f.PageShift
	first := pt.RawGetAndClear(addr, p)
	for i := 1; i < nr; i++ {
		e := pt.RawGetAndClear(addr+uint64(i)*ps, p.Add(i))
		if f.Dirty(e, pgtable.PTE) {
			first = f.MkDirty(first, pgtable.PTE)
		}
		if f.Young(e, pgtable.PTE) {
			first = f.MkYoung(first, pgtable.PTE)
		}
	}
	return first
}

// Wrprotect is arm64's wrprotect_ptes (and ptep_set_wrprotect for
// nr == 1). One contiguous entry: unfold its block, then write-protect
// the entry. More: unfold the partially covered edge blocks, then
// write-protect every entry in place, so fully covered blocks stay
// folded and nothing is flushed (contpte_wrprotect_ptes; the caller's
// mmu_gather or flush_tlb_mm flush makes the protection certain, as the
// Arm ARM's tightened rules for misprogrammed contiguous bits allow).
func (o *Ops) Wrprotect(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int) {
	if !o.manages(pt, p, nr) {
		o.GenericOps.Wrprotect(pt, addr, p, nr)
		return
	}
	f := pt.Format()
	if nr == 1 {
		e := pt.RawGet(p)
		if f.Cont(e, pgtable.PTE) {
			o.unfold(pt, addr, p, e)
			// ___ptep_set_wrprotect's cmpxchg against the value read
			// before the unfold fails (the convert spread access and
			// dirty) and returns the entry as it is now.
			e = pt.RawGet(p)
		}
		pt.RawSet(addr, p, f.Wrprotect(e, pgtable.PTE))
		return
	}
	o.tryUnfoldPartial(pt, addr, p, nr)
	ps := uint64(1) << f.PageShift
	for i := 0; i < nr; i++ {
		q := p.Add(i)
		pt.RawSet(addr+uint64(i)*ps, q, f.Wrprotect(pt.RawGet(q), pgtable.PTE))
	}
}

// TestAndClearYoung is arm64's test_and_clear_young_ptes (and
// ptep_test_and_clear_young for nr == 1): when the first or the last
// entry is contiguous the range is widened to whole blocks and the access
// flag cleared in every entry, without unfolding: Linux tracks access per
// folio, and a block lies in one folio. It reports whether any entry was
// young.
func (o *Ops) TestAndClearYoung(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int) bool {
	if !o.manages(pt, p, nr) {
		return o.GenericOps.TestAndClearYoung(pt, addr, p, nr)
	}
	f := pt.Format()
	if nr == 1 {
		if !validCont(f, pt.RawGet(p)) {
			return testAndClearYoung(pt, addr, p)
		}
		return o.blockTestAndClearYoung(pt, addr, p)
	}
	ps := uint64(1) << f.PageShift
	size := o.blockSize(pt)
	start, end := addr, addr+uint64(nr)*ps
	if f.Cont(pt.RawGet(p.Add(nr-1)), pgtable.PTE) {
		end = (end + size - 1) &^ (size - 1)
	}
	if f.Cont(pt.RawGet(p), pgtable.PTE) {
		start &^= size - 1
		p = o.alignDown(p)
	}
	young := false
	for i := 0; start < end; i, start = i+1, start+ps {
		if testAndClearYoung(pt, start, p.Add(i)) {
			young = true
		}
	}
	return young
}

// blockTestAndClearYoung is contpte_ptep_test_and_clear_young: the access
// flag of every entry of p's block cleared, reporting whether any was set.
func (o *Ops) blockTestAndClearYoung(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr) bool {
	ps := uint64(1) << pt.Format().PageShift
	start := addr &^ (o.blockSize(pt) - 1)
	q := o.alignDown(p)
	young := false
	for i := 0; i < o.n; i++ {
		if testAndClearYoung(pt, start+uint64(i)*ps, q.Add(i)) {
			young = true
		}
	}
	return young
}

// testAndClearYoung is __ptep_test_and_clear_young on one entry.
func testAndClearYoung(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr) bool {
	f := pt.Format()
	e := pt.RawGet(p)
	if !f.Young(e, pgtable.PTE) {
		return false
	}
	pt.RawSet(addr, p, f.MkOld(e, pgtable.PTE))
	return true
}

// SetAccessFlags is arm64's ptep_set_access_flags. A non-contiguous entry
// is relaxed to e as the generic function does. For a contiguous one
// (contpte_ptep_set_access_flags as fixed in Linux 7.0, "arm64: contpte:
// fix set_access_flags() no-op check for SMMU/ATS faults"): it is a no-op
// only when every entry of the block, read raw, already has e's
// read-only, access, write and dirty bits (the gathered ptep_get view
// hid a target entry a sibling's bits made look updated, and a walker
// that reads each descriptor on its own, an SMMU without HTTU or a CPU
// without hardware access flags, faulted on it for ever); then, with the
// target's own raw write permission unchanged, every entry of the block
// gets e's access, dirty and write bits (each keeping its own frame) and,
// when dirty, the block is flushed once; a change of write permission
// unfolds the block first and then updates the one entry.
//
// Not modelled: the raw __ptep_set_access_flags' flush_tlb_page of a
// dirty update (the model drops a stale read-only TLB entry on the
// spurious fault instead, as the generic function assumes), and Linux
// 6.18's local (non-broadcast) TLBI for the block flush of a dirty
// update (local_flush_tlb_contpte): the model's block flush reaches
// every CPU and counts as a broadcast range flush.
func (o *Ops) SetAccessFlags(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry, dirty bool) bool {
	f := pt.Format()
	e = f.MkNonCont(e)
	if !o.manages(pt, p, 1) {
		return o.GenericOps.SetAccessFlags(pt, addr, p, e, dirty)
	}
	orig := pt.RawGet(p)
	if !validCont(f, orig) {
		return o.GenericOps.SetAccessFlags(pt, addr, p, e, dirty)
	}
	if o.allSubPTEsMatchAccessFlags(pt, p, e) {
		return false
	}
	// The raw target entry, not the gathered one, decides the unfold.
	orig = f.MkNonCont(orig)
	if f.Write(orig, pgtable.PTE) == f.Write(e, pgtable.PTE) {
		q := o.alignDown(p)
		start := addr &^ (o.blockSize(pt) - 1)
		ps := uint64(1) << f.PageShift
		for i := 0; i < o.n; i++ {
			setAccessFlags(pt, start+uint64(i)*ps, q.Add(i), e)
		}
		if dirty {
			o.flushBlock(pt, start)
		}
		return true
	}
	o.unfold(pt, addr, p, orig)
	setAccessFlags(pt, addr, p, e)
	return true
}

// allSubPTEsMatchAccessFlags is contpte_all_subptes_match_access_flags:
// every raw entry of p's block has e's bits among those
// __ptep_set_access_flags consumes (PTE_RDONLY, PTE_AF, PTE_WRITE,
// PTE_DIRTY). Costs one entry read per entry until one differs.
func (o *Ops) allSubPTEsMatchAccessFlags(pt *pgtable.PageTable, p pgtable.Ptr, e pgtable.Entry) bool {
	b := &pt.Format().PTE
	mask := b.RdOnly | b.Young | b.Write | b.Dirty | b.HWWrite
	want := e & mask
	q := o.alignDown(p)
	for i := 0; i < o.n; i++ {
		if pt.RawGet(q.Add(i))&mask != want {
			return false
		}
	}
	return true
}

// setAccessFlags is __ptep_set_access_flags without its flush: unless the
// entry equals e already, it gets e's access, write and dirty bits ORed
// in and the read-only bit of the more permissive of the two, keeping its
// own frame and other bits.
func setAccessFlags(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) {
	b := &pt.Format().PTE
	cur := pt.RawGet(p)
	if cur == e {
		return
	}
	n := cur | e&(b.Young|b.Write|b.Dirty|b.HWWrite)
	n = n&^b.RdOnly | cur&e&b.RdOnly
	pt.RawSet(addr, p, n)
}

// BatchHint is arm64's pte_batch_hint: for a valid contiguous entry the
// entries left in its block, else 1.
func (o *Ops) BatchHint(pt *pgtable.PageTable, p pgtable.Ptr, e pgtable.Entry) int {
	if pt.Kernel() || !p.Valid() || !validCont(pt.Format(), e) {
		return 1
	}
	return o.n - p.I&(o.n-1)
}

// ---------------------------------------------------------------------
// Public functions core code reaches other than through pgtable.ArchOps.

// ClearFlushYoung is arm64's ptep_clear_flush_young: the access flag of
// one entry cleared (of its whole block, without unfolding, if it is
// contiguous) and, if it was set, a flush of the page or of the block
// (__flush_tlb_page_nosync, contpte_ptep_clear_flush_young's
// __flush_tlb_range_nosync; the model's policy completes every flush with
// its DSB). The flush counts as the convert's does: not as a flush API
// call. It reports whether the entry (block) was young.
func (o *Ops) ClearFlushYoung(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr) bool {
	ps := uint64(1) << pt.Format().PageShift
	if !o.manages(pt, p, 1) || !validCont(pt.Format(), pt.RawGet(p)) {
		// With contpte off there is no __ptep_get to check the
		// contiguous bit: the condition stops before it.
		young := testAndClearYoung(pt, addr, p)
		if young {
			o.flush(pt, addr&^(ps-1), 1)
		}
		return young
	}
	young := o.blockTestAndClearYoung(pt, addr, p)
	if young {
		o.flushBlock(pt, addr&^(o.blockSize(pt)-1))
	}
	return young
}

// ClearYoungDirtyPTEs is clear_young_dirty_ptes (MADV_FREE's
// madvise_free_pte_range): it marks nr entries old (young set) and/or
// clean (dirty set). Blocks cut by the range are widened to whole blocks
// instead of unfolded: every entry of a block must keep the same access
// and dirty state.
func (o *Ops) ClearYoungDirtyPTEs(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int, young, dirty bool) {
	f := pt.Format()
	ps := uint64(1) << f.PageShift
	start, end := addr, addr+uint64(nr)*ps
	if o.manages(pt, p, nr) {
		size := o.blockSize(pt)
		if f.Cont(pt.RawGet(p.Add(nr-1)), pgtable.PTE) {
			end = (end + size - 1) &^ (size - 1)
		}
		if f.Cont(pt.RawGet(p), pgtable.PTE) {
			start &^= size - 1
			p = o.alignDown(p)
		}
	}
	for i := 0; start < end; i, start = i+1, start+ps {
		q := p.Add(i)
		e := pt.RawGet(q)
		n := e
		if young {
			n = f.MkOld(n, pgtable.PTE)
		}
		if dirty {
			n = f.MkClean(n, pgtable.PTE)
		}
		if n != e {
			pt.RawSet(start, q, n)
		}
	}
}

// SetPTE is arm64's set_pte, which has no mm or address to unfold with:
// it writes e without PTE_CONT and reports whether it found a valid
// contiguous entry there (Linux's WARN_ON_ONCE). Core code never calls it.
func (o *Ops) SetPTE(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) (warned bool) {
	f := pt.Format()
	warned = validCont(f, pt.RawGet(p))
	pt.RawSet(addr, p, f.MkNonCont(e))
	return warned
}

// ---------------------------------------------------------------------
// Folding and unfolding.

// tryUnfold is contpte_try_unfold: unfold e's block if e, read from p, is
// valid and contiguous.
func (o *Ops) tryUnfold(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) {
	if validCont(pt.Format(), e) {
		o.unfold(pt, addr, p, e)
	}
}

// unfold is __contpte_try_unfold: convert p's block to non-contiguous
// entries. Counts contpte_unfolds and contpte_converts.
func (o *Ops) unfold(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) {
	if pt.Kernel() {
		return
	}
	o.meterFor(pt).Note(cost.ContpteUnfolds, 1, addr&^(o.blockSize(pt)-1), 0)
	o.convert(pt, addr, p, pt.Format().MkNonCont(e))
}

// tryUnfoldPartial is contpte_try_unfold_partial: unfold the block the
// range [p, p+nr) starts in unless the range starts it and covers it, and
// the block it ends in unless the range ends with it.
func (o *Ops) tryUnfoldPartial(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, nr int) {
	if p.I&(o.n-1) != 0 || nr < o.n {
		o.tryUnfold(pt, addr, p, pt.RawGet(p))
	}
	if (p.I+nr)&(o.n-1) != 0 {
		last := p.Add(nr - 1)
		lastAddr := addr + uint64(nr-1)<<pt.Format().PageShift
		o.tryUnfold(pt, lastAddr, last, pt.RawGet(last))
	}
}

// tryFold is contpte_try_fold, run by set_ptes(nr == 1) after writing e at
// p: only the last entry of a block, virtually and physically, valid, not
// contiguous and not special, goes on to __contpte_try_fold.
func (o *Ops) tryFold(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) {
	f := pt.Format()
	mask := uint64(o.n - 1)
	if (addr>>f.PageShift)&mask != mask {
		return
	}
	if uint64(f.PFN(e, pgtable.PTE))&mask != mask {
		return
	}
	if !f.HWValidBits(e, pgtable.PTE) || f.Cont(e, pgtable.PTE) || f.Special(e, pgtable.PTE) {
		return
	}
	o.fold(pt, addr, p, e)
}

// fold is __contpte_try_fold: fold p's block when one folio covers it and
// every entry, made old and clean, is pfn_pte of the next frame with e's
// protection. Counts contpte_folds and contpte_converts when it folds.
func (o *Ops) fold(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) {
	if pt.Kernel() {
		return
	}
	f := pt.Format()
	pfn := f.PFN(e, pgtable.PTE)
	if !o.mem.IsAllocated(pfn) {
		return
	}
	folio := o.mem.FolioOf(pfn)
	ps := uint64(1) << f.PageShift
	size := o.blockSize(pt)
	folioStart := addr - uint64(pfn-folio.PFN)*ps
	folioEnd := folioStart + folio.NrPages()*ps
	contStart := addr &^ (size - 1)
	if folioStart > contStart || folioEnd < contStart+size {
		return
	}
	aligned := pfn &^ phys.PFN(o.n-1)
	expect := f.SetPFN(f.MkOld(f.MkClean(e, pgtable.PTE), pgtable.PTE), pgtable.PTE, aligned)
	q := o.alignDown(p)
	for i := 0; i < o.n; i++ {
		sub := f.MkOld(f.MkClean(pt.RawGet(q.Add(i)), pgtable.PTE), pgtable.PTE)
		if sub != expect {
			return
		}
		expect = f.AdvancePFN(expect, pgtable.PTE, 1)
	}
	o.meterFor(pt).Note(cost.ContpteFolds, 1, contStart, 0)
	o.convert(pt, addr, p, f.MkCont(e))
}

// convert is contpte_convert: clear every entry of p's block with the raw
// get-and-clear, ORing their access and dirty bits into e; flush the block
// on every CPU unless BBML2 (with it, old and new translations may sit in
// the TLBs side by side until the caller's flush, which BBML2 without
// conflict aborts allows); repaint all CONT_PTES entries from e, the
// block's first frame, with the same access and dirty bits. Counts
// contpte_converts.
func (o *Ops) convert(pt *pgtable.PageTable, addr uint64, p pgtable.Ptr, e pgtable.Entry) {
	f := pt.Format()
	ps := uint64(1) << f.PageShift
	start := addr &^ (o.blockSize(pt) - 1)
	q := o.alignDown(p)
	e = f.SetPFN(e, pgtable.PTE, f.PFN(e, pgtable.PTE)&^phys.PFN(o.n-1))
	o.meterFor(pt).Note(cost.ContpteConverts, 1, start, uint64(e))
	for i := 0; i < o.n; i++ {
		old := pt.RawGetAndClear(start+uint64(i)*ps, q.Add(i))
		if f.Dirty(old, pgtable.PTE) {
			e = f.MkDirty(e, pgtable.PTE)
		}
		if f.Young(old, pgtable.PTE) {
			e = f.MkYoung(e, pgtable.PTE)
		}
	}
	if !o.sw().BBML2 {
		o.flushBlock(pt, start)
	}
	pt.RawSetPTEs(start, q, e, o.n)
}

// flushBlock is __flush_tlb_range(vma, start, start + CONT_PTE_SIZE,
// PAGE_SIZE, true, 3): the block's last-level entries on every CPU.
func (o *Ops) flushBlock(pt *pgtable.PageTable, start uint64) {
	o.flush(pt, start, o.n)
}

// flush hands a last-level range flush of pages pages from start, with a
// page stride, to the TLB policy directly: arm64's internal
// __flush_tlb_range, not a flush API call, so no tlb_flush_* counter
// moves; the policy counts the TLBIs, the DSB and the entries dropped on
// the address space's meter.
func (o *Ops) flush(pt *pgtable.PageTable, start uint64, pages int) {
	if o.sys == nil || o.ctx == nil || o.ctx.Released() {
		return
	}
	sh := pt.Format().PageShift
	o.sys.Policy().Flush(o.sys, &tlb.Request{
		Kind:        tlb.FlushRange,
		Ctx:         o.ctx,
		Start:       start,
		End:         start + uint64(pages)<<sh,
		StrideShift: sh,
		LastLevel:   true,
		Meter:       o.ctx.Meter(),
	})
}

// Compile-time check that Ops is a pgtable.ArchOps.
var _ pgtable.ArchOps = (*Ops)(nil)
