package tlb

import (
	"fmt"
	"math/bits"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// slot is one TLB entry. An entry is live while its generations match the
// CPU's: that is how flushes of everything, of an ASID and of global
// entries cost O(1).
type slot struct {
	// key is the first address translated, ORed with the shift (the
	// address is aligned to at least 4 KiB, so the low bits are free):
	// one compare matches address and size.
	key uint64
	// pfn is the frame that holds the first address.
	pfn phys.PFN
	// lru is the CPU's tick at the last use.
	lru uint64
	// cpuGen is the CPU's gen when the entry was filled.
	cpuGen uint64
	// gen is the ASID's gen (or the CPU's globalGen for a global entry)
	// when the entry was filled.
	gen uint64
	// asid is the tag of the context that filled the entry.
	asid uint32
	// perm is the access granted.
	perm Perm
	// level is the page-table level of the source entry.
	level pgtable.Level
	// flags holds slotGlobal and slotCont.
	flags uint8
}

// Slot flags.
const (
	slotGlobal = 1 << iota
	slotCont
)

// walkSlot is one walk-cache entry: the table that holds level's entries
// for the addresses of one table span.
type walkSlot struct {
	// tag is the first address of the span >> the span shift.
	tag uint64
	// table is the cached table.
	table *pgtable.Table
	// lru, cpuGen and gen are as in slot; walkGen is the ASID's walkGen.
	lru, cpuGen, gen, walkGen uint64
	// asid is the tag of the context.
	asid uint32
	// level is the level whose entries table holds.
	level pgtable.Level
}

// asidState is one CPU's view of one ASID.
type asidState struct {
	// gen is bumped to drop every entry of the ASID (TLB and walk cache).
	gen uint64
	// walkGen is bumped to drop the ASID's walk-cache entries only (x86
	// INVLPG drops all paging-structure caches of the PCID).
	walkGen uint64
	// live counts the ASID's live non-global TLB entries; it is valid
	// only while liveGen equals the CPU's gen (reset lazily after a
	// flush of everything).
	live    int32
	liveGen uint64
}

// asidLive returns the live count of asid, resetting it if the CPU was
// flushed whole since it was last touched.
func (c *CPU) asidLive(asid uint32) *int32 {
	st := &c.asids[asid]
	if st.liveGen != c.gen {
		st.live, st.liveGen = 0, c.gen
	}
	return &st.live
}

// alive reports whether a TLB slot is live.
func (c *CPU) alive(e *slot) bool {
	if e.cpuGen != c.gen {
		return false
	}
	if e.flags&slotGlobal != 0 {
		return e.gen == c.globalGen
	}
	return e.gen == c.asids[e.asid].gen
}

// walkAlive reports whether a walk-cache slot is live.
func (c *CPU) walkAlive(w *walkSlot) bool {
	if w.cpuGen != c.gen || w.table == nil {
		return false
	}
	st := &c.asids[w.asid]
	return w.gen == st.gen && w.walkGen == st.walkGen
}

// kill drops a live slot, keeping the counts.
func (c *CPU) kill(e *slot) {
	c.live--
	if e.flags&slotGlobal != 0 {
		c.liveGlobal--
	} else {
		*c.asidLive(e.asid)--
	}
	e.cpuGen = 0
}

// entry returns the Entry a slot holds.
func (e *slot) entry() Entry {
	sh := uint8(e.key & 63)
	out := Entry{VA: e.key &^ 63, Shift: sh, PFN: e.pfn, Perm: e.perm, Level: e.level, Cont: e.flags&slotCont != 0}
	return out
}

// size returns the bytes a slot translates.
func (e *slot) size() uint64 { return 1 << (e.key & 63) }

// va returns the first address a slot translates.
func (e *slot) va() uint64 { return e.key &^ 63 }

// set returns the slots of the set that holds page number pn.
func (c *CPU) set(pn uint64) []slot {
	w := c.sys.ways
	i := int(pn&c.sys.setMask) * w
	return c.tlb[i : i+w : i+w]
}

// probe finds the live entry that translates va for asid (or a global
// one), smallest size first, without counting or touching LRU.
func (c *CPU) probe(asid uint32, va uint64) *slot {
	if c.tlb == nil {
		return nil
	}
	agen := c.asids[asid].gen
	for m := c.sys.shiftMask; m != 0; m &= m - 1 {
		sh := uint(bits.TrailingZeros64(m))
		key := va>>sh<<sh | uint64(sh)
		set := c.set(va >> sh)
		for i := range set {
			e := &set[i]
			if e.key != key || e.cpuGen != c.gen {
				continue
			}
			if e.flags&slotGlobal != 0 {
				if e.gen == c.globalGen {
					return e
				}
			} else if e.asid == asid && e.gen == agen {
				return e
			}
		}
	}
	return nil
}

// Lookup translates va for ctx from the TLB: an entry of ctx's ASID or a
// global entry that covers va, smallest page size first. It counts
// tlb_hits or tlb_misses on ctx's meter and, on a hit, makes the entry
// the most recently used. A policy with an AccessHook runs first (UML
// resyncs the host mappings). Cost: one probe of Ways entries per page
// size in use; no allocation.
func (c *CPU) Lookup(ctx *Context, va uint64) (Entry, bool) {
	if ctx == nil || ctx.released {
		return Entry{}, false
	}
	if h := c.sys.accessHook; h != nil {
		h.BeforeAccess(c.sys, c, ctx, va)
	}
	if e := c.probe(ctx.asid, va); e != nil {
		c.tick++
		e.lru = c.tick
		ctx.meter.Note(cost.TLBHits, 1, va, uint64(e.pfn))
		return e.entry(), true
	}
	ctx.meter.Note(cost.TLBMisses, 1, va, 0)
	return Entry{}, false
}

// Probe returns the live entry that translates va for ctx (or a global
// one) without counting, running hooks or touching LRU: the validator's
// and the policies' view.
func (c *CPU) Probe(ctx *Context, va uint64) (Entry, bool) {
	if ctx == nil || ctx.released {
		return Entry{}, false
	}
	if e := c.probe(ctx.asid, va); e != nil {
		return e.entry(), true
	}
	return Entry{}, false
}

// ensure allocates the CPU's arrays on first use.
func (c *CPU) ensure() {
	if c.tlb == nil {
		c.tlb = make([]slot, c.sys.entries)
	}
}

// Insert caches e for ctx (a fill after a page walk) and counts tlb_fills
// on ctx's meter. An entry for the same address, size, ASID and
// globalness is replaced in place; otherwise the set's first dead slot is
// used, or its least recently used entry is evicted. Entries with
// PermGlobal match every ASID. An entry whose Shift is below the base
// page shift or above 63 is ignored; VA is aligned down to the entry's
// size. Cost: one pass over the set; no allocation after the CPU's first
// fill.
func (c *CPU) Insert(ctx *Context, e Entry) {
	if ctx == nil || ctx.released || uint(e.Shift) < c.sys.pageShift || e.Shift > 63 {
		return
	}
	c.ensure()
	s := c.sys
	sh := uint(e.Shift)
	va := e.VA >> sh << sh
	key := va | uint64(sh)
	s.shiftMask |= 1 << sh
	var flags uint8
	if e.Perm&PermGlobal != 0 {
		flags |= slotGlobal
	}
	if e.Cont {
		flags |= slotCont
	}
	set := c.set(va >> sh)
	victim, dead := -1, -1
	for i := range set {
		x := &set[i]
		if !c.alive(x) {
			if dead < 0 {
				dead = i
			}
			continue
		}
		if x.key == key && x.asid == ctx.asid && x.flags&slotGlobal == flags&slotGlobal {
			victim = i
			break
		}
	}
	switch {
	case victim >= 0:
		c.kill(&set[victim])
	case dead >= 0:
		victim = dead
	default:
		victim = 0
		for i := 1; i < len(set); i++ {
			if set[i].lru < set[victim].lru {
				victim = i
			}
		}
		c.kill(&set[victim])
	}
	x := &set[victim]
	c.tick++
	*x = slot{key: key, pfn: e.PFN, lru: c.tick, cpuGen: c.gen, asid: ctx.asid, perm: e.Perm, level: e.Level, flags: flags}
	c.live++
	if flags&slotGlobal != 0 {
		x.gen = c.globalGen
		c.liveGlobal++
	} else {
		x.gen = c.asids[ctx.asid].gen
		*c.asidLive(ctx.asid)++
	}
	ctx.meter.Note(cost.TLBFills, 1, va, uint64(e.PFN))
}

// Drop drops the entries that translate va for ctx (and global ones), as
// the spurious-fault path refreshes a stale but harmless entry (a write
// through an entry cached read-only). No flush is counted.
func (c *CPU) Drop(ctx *Context, va uint64) {
	if ctx == nil || ctx.released {
		return
	}
	c.dropVA(ctx.asid, va, LeafOnly)
}

// Scope says what a drop by address removes besides the TLB entries that
// translate the address for the context's ASID and the global entries
// that do.
type Scope uint8

const (
	// LeafOnly drops TLB entries only, keeping the walk cache (arm64
	// TLBI VALE1: last level only).
	LeafOnly Scope = 0
	// WalkVA also drops the walk-cache entries whose span covers the
	// address (arm64 TLBI VAE1).
	WalkVA Scope = 1 << iota
	// WalkASID also drops every walk-cache entry of the ASID (x86
	// INVLPG invalidates all paging-structure caches of the current
	// PCID).
	WalkASID
	// AllASIDs matches the entries of every ASID, not only the context's
	// (arm64 TLBI VAAE1, by VA for all ASIDs).
	AllASIDs
)

// matches reports whether live slot e belongs to asid for a drop of
// scope sc.
func (e *slot) matches(asid uint32, sc Scope) bool {
	return e.flags&slotGlobal != 0 || sc&AllASIDs != 0 || e.asid == asid
}

// dropVA drops the entries covering va and returns how many TLB entries
// went.
func (c *CPU) dropVA(asid uint32, va uint64, sc Scope) int {
	n := 0
	if c.tlb != nil {
		for m := c.sys.shiftMask; m != 0; m &= m - 1 {
			sh := uint(bits.TrailingZeros64(m))
			key := va>>sh<<sh | uint64(sh)
			set := c.set(va >> sh)
			for i := range set {
				e := &set[i]
				if e.key == key && c.alive(e) && e.matches(asid, sc) {
					c.kill(e)
					n++
				}
			}
		}
	}
	c.dropWalk(asid, sc, func(lo, hi uint64) bool { return va >= lo && va-lo < hi-lo })
	return n
}

// dropWalk drops walk-cache entries for a drop of scope sc; covers says
// whether a span [lo, hi) is hit (hi 0 means the top of the space).
func (c *CPU) dropWalk(asid uint32, sc Scope, covers func(lo, hi uint64) bool) {
	if sc&WalkASID != 0 && sc&AllASIDs == 0 {
		c.asids[asid].walkGen++
		return
	}
	if sc&(WalkVA|WalkASID) == 0 || c.walk == nil {
		return
	}
	for i := range c.walk {
		w := &c.walk[i]
		if !c.walkAlive(w) || (sc&AllASIDs == 0 && w.asid != asid) {
			continue
		}
		if sc&WalkASID != 0 {
			w.table = nil
			continue
		}
		ctx := c.sys.ctxs[w.asid]
		sh := ctx.SpanShift(w.level)
		lo := w.tag << sh
		var hi uint64
		if sh < 64 {
			hi = lo + 1<<sh
		}
		if covers(lo, hi) {
			w.table = nil
		}
	}
}

// note counts n dropped entries on m for this CPU.
func (c *CPU) note(m *cost.Meter, n int, addr uint64) int {
	if n > 0 && m != nil {
		m.Note(cost.TLBInvalidated, uint64(n), addr, uint64(c.id))
	}
	return n
}

// DropVA drops the TLB entries that translate va for ctx's ASID and the
// global ones that do (and walk-cache entries as sc says), counts them as
// tlb_invalidated on m (trace: addr va, val the CPU) and returns how many
// TLB entries went. It is one invalidation instruction by address. A nil
// ctx matches global entries only (or, with AllASIDs, every entry).
func (c *CPU) DropVA(m *cost.Meter, ctx *Context, va uint64, sc Scope) int {
	return c.note(m, c.dropVA(asidOf(ctx), va, sc), va)
}

// asidOf returns ctx's ASID, or 0 (no context's) for nil.
func asidOf(ctx *Context) uint32 {
	if ctx == nil {
		return 0
	}
	return ctx.asid
}

// Strides returns the number of stride addresses in [start, end):
// ceil((end-start) / 1<<shift), without overflow; 0 when end <= start.
// It is the iteration count of Linux's "for (addr = start; addr < end;
// addr += 1 << shift)" loops.
func Strides(start, end uint64, shift uint) uint64 {
	if end <= start {
		return 0
	}
	d := end - start
	n := d >> shift
	if d&(1<<shift-1) != 0 {
		n++
	}
	return n
}

// clampShift bounds a stride shift to [page shift, 63].
func (s *System) clampShift(shift uint) uint {
	if shift < s.pageShift {
		return s.pageShift
	}
	if shift > 63 {
		return 63
	}
	return shift
}

// DropRange drops, for every stride address start, start+1<<strideShift,
// ... below end, what DropVA drops: one invalidation per stride, as
// flush_tlb_one_user in a loop or a run of TLBI VAE1. Entries that cover
// no stride address survive, exactly as on hardware. It counts the
// entries dropped as one tlb_invalidated record (addr start) and returns
// them. Cost: the cheaper of one probe per stride and one pass over the
// TLB, so huge ranges stay bounded. A stride shift outside
// [page shift, 63] is clamped. A nil ctx is as for DropVA.
func (c *CPU) DropRange(m *cost.Meter, ctx *Context, start, end uint64, strideShift uint, sc Scope) int {
	if end <= start {
		return 0
	}
	asid := asidOf(ctx)
	sh := c.sys.clampShift(strideShift)
	n := Strides(start, end, sh)
	probes := n * uint64(bits.OnesCount64(c.sys.shiftMask)) * uint64(c.sys.ways)
	if probes <= uint64(c.sys.entries) {
		dropped := 0
		a := start
		for i := uint64(0); i < n; i++ {
			dropped += c.dropVA(asid, a, sc&^WalkASID)
			a += 1 << sh
		}
		if sc&WalkASID != 0 {
			c.dropWalk(asid, sc, nil)
		}
		return c.note(m, dropped, start)
	}
	// hit reports whether [lo, hi) (hi 0: top of the space) contains a
	// stride address.
	hit := func(lo, hi uint64) bool {
		first := start
		if lo > start {
			first = start + Strides(start, lo, sh)<<sh
			if first < lo { // wrapped
				return false
			}
		}
		return first < end && (hi == 0 || first < hi)
	}
	return c.note(m, c.dropMatching(asid, sc, hit), start)
}

// DropOverlap drops every entry of ctx's ASID (and every global entry)
// that overlaps [start, end), with walk-cache entries as sc says, and
// counts them like DropRange: a range invalidation (arm64 TLBI RVAE1).
// Cost: one pass over the TLB. A nil ctx is as for DropVA.
func (c *CPU) DropOverlap(m *cost.Meter, ctx *Context, start, end uint64, sc Scope) int {
	if end <= start {
		return 0
	}
	overlap := func(lo, hi uint64) bool { return lo < end && (hi == 0 || hi > start) }
	return c.note(m, c.dropMatching(asidOf(ctx), sc, overlap), start)
}

// dropMatching drops the live entries of asid (or global) whose range
// hit accepts, in one pass, and the walk-cache entries sc asks for.
func (c *CPU) dropMatching(asid uint32, sc Scope, hit func(lo, hi uint64) bool) int {
	n := 0
	for i := range c.tlb {
		e := &c.tlb[i]
		if !c.alive(e) || !e.matches(asid, sc) {
			continue
		}
		lo := e.va()
		if hit(lo, lo+e.size()) {
			c.kill(e)
			n++
		}
	}
	c.dropWalk(asid, sc, hit)
	return n
}

// DropASID drops every non-global TLB entry and every walk-cache entry of
// ctx's ASID (a CR3 write without NOFLUSH, TLBI ASIDE1), counts them on
// m and returns how many TLB entries went. Cost: O(1).
func (c *CPU) DropASID(m *cost.Meter, ctx *Context) int {
	if ctx == nil || int(ctx.asid) >= len(c.asids) {
		return 0
	}
	live := c.asidLive(ctx.asid)
	n := int(*live)
	c.live -= n
	*live = 0
	st := &c.asids[ctx.asid]
	st.gen++
	st.walkGen++
	return c.note(m, n, 0)
}

// DropAll drops every entry of the CPU, global ones and the walk cache
// included (x86 __flush_tlb_all, TLBI VMALLE1), counts them on m and
// returns how many TLB entries went. Cost: O(1).
func (c *CPU) DropAll(m *cost.Meter) int {
	return c.note(m, c.dropAll(), 0)
}

// dropAll is DropAll without counting.
func (c *CPU) dropAll() int {
	n := c.live
	c.gen++
	c.live, c.liveGlobal = 0, 0
	return n
}

// DropGlobal drops every global TLB entry (kernel mappings), counts them
// on m and returns how many went. Cost: O(1).
func (c *CPU) DropGlobal(m *cost.Meter) int {
	n := c.liveGlobal
	c.globalGen++
	c.live -= n
	c.liveGlobal = 0
	return c.note(m, n, 0)
}

// forget drops everything tagged asid, global entries included, counting
// nothing (ReleaseContext).
func (c *CPU) forget(asid uint32) {
	if c.liveGlobal > 0 {
		for i := range c.tlb {
			e := &c.tlb[i]
			if e.asid == asid && e.flags&slotGlobal != 0 && c.alive(e) {
				c.kill(e)
			}
		}
	}
	live := c.asidLive(asid)
	c.live -= int(*live)
	*live = 0
	st := &c.asids[asid]
	st.gen++
	st.walkGen++
}

// WalkCacheLookup returns the cached table that holds level-l entries for
// va in ctx (a paging-structure cache hit lets the walker start there),
// making it the most recently used. It counts nothing: the walker counts
// the levels it skipped.
func (c *CPU) WalkCacheLookup(ctx *Context, va uint64, l pgtable.Level) (*pgtable.Table, bool) {
	w := c.findWalk(ctx, va, l)
	if w == nil {
		return nil, false
	}
	c.tick++
	w.lru = c.tick
	return w.table, true
}

// WalkCacheProbe is WalkCacheLookup without touching LRU: the checkers'
// and policies' view.
func (c *CPU) WalkCacheProbe(ctx *Context, va uint64, l pgtable.Level) (*pgtable.Table, bool) {
	if w := c.findWalk(ctx, va, l); w != nil {
		return w.table, true
	}
	return nil, false
}

// findWalk returns the live walk-cache entry for (ctx, va, l), or nil.
func (c *CPU) findWalk(ctx *Context, va uint64, l pgtable.Level) *walkSlot {
	if ctx == nil || ctx.released || c.walk == nil || l >= pgtable.NumLevels {
		return nil
	}
	tag := va >> ctx.SpanShift(l)
	for i := range c.walk {
		w := &c.walk[i]
		if w.tag == tag && w.level == l && w.asid == ctx.asid && c.walkAlive(w) {
			return w
		}
	}
	return nil
}

// SetWalkCacheEntries resizes every CPU's walk cache to n entries from
// now on, dropping what the walk caches hold (counting nothing). n == 0
// turns walk caches off, for machines whose MMU caches no intermediate
// tables: sparc64 refills its TLB from the TSB in a software trap
// handler, and UML's "TLB" is the host address space. A policy calls it
// from Attach. It fails with EINVAL for n outside [0, 1<<16], changing
// nothing.
func (s *System) SetWalkCacheEntries(n int) error {
	if n < 0 || n > 1<<16 {
		return fmt.Errorf("tlb: %d walk-cache entries: %w", n, EINVAL)
	}
	s.walkEntries = n
	for _, c := range s.cpus {
		c.walk = nil
	}
	return nil
}

// WalkCacheInsert caches t as the table that holds level-l entries for
// va in ctx, replacing the entry for the same span, else the first dead
// entry, else the least recently used. A nil table is ignored.
func (c *CPU) WalkCacheInsert(ctx *Context, va uint64, l pgtable.Level, t *pgtable.Table) {
	if ctx == nil || ctx.released || t == nil || l >= pgtable.NumLevels || c.sys.walkEntries == 0 {
		return
	}
	if c.walk == nil {
		c.walk = make([]walkSlot, c.sys.walkEntries)
	}
	tag := va >> ctx.SpanShift(l)
	victim, dead := -1, -1
	for i := range c.walk {
		w := &c.walk[i]
		if !c.walkAlive(w) {
			if dead < 0 {
				dead = i
			}
			continue
		}
		if w.tag == tag && w.level == l && w.asid == ctx.asid {
			victim = i
			break
		}
	}
	if victim < 0 {
		victim = dead
	}
	if victim < 0 {
		victim = 0
		for i := 1; i < len(c.walk); i++ {
			if c.walk[i].lru < c.walk[victim].lru {
				victim = i
			}
		}
	}
	st := &c.asids[ctx.asid]
	c.tick++
	c.walk[victim] = walkSlot{tag: tag, table: t, lru: c.tick, cpuGen: c.gen, gen: st.gen, walkGen: st.walkGen, asid: ctx.asid, level: l}
}

// WalkCached returns how many live walk-cache entries ctx has on the CPU.
func (c *CPU) WalkCached(ctx *Context) int {
	if ctx == nil {
		return 0
	}
	n := 0
	for i := range c.walk {
		w := &c.walk[i]
		if w.asid == ctx.asid && c.walkAlive(w) {
			n++
		}
	}
	return n
}
