package pgtable

import "github.com/ptsim/ptsim/cost"

// QuietObserver is an Observer that can tell when it would ignore entry
// writes: a tlb.Context whose arch policy has no write hook (x86, for
// one). Loops that write many PTEs then skip telling it entry by entry.
type QuietObserver interface {
	Observer
	// QuietFlag returns a flag that is true while Written would do
	// nothing; it stays valid, and current, as long as the observer is
	// installed.
	QuietFlag() *bool
}

// quiet reports whether PTE writes need no per-entry notice now: nobody
// traces the meter and the observer, if any, ignores writes. The bulk
// loops below then count their reads and writes with one add per event,
// which gives exactly the counts the entry-by-entry path gives; the
// entries, use counts and observer see the same end state.
func (pt *PageTable) quiet() bool {
	return !pt.meter.Tracing() && (pt.observer == nil || pt.quietFlag != nil && *pt.quietFlag)
}

// Quiet reports whether PTE writes need no per-entry notice now: nobody
// traces the table's meter and its observer, if any, ignores writes. A
// caller that reorders independent writes (fork's runs) may do so only
// then, when no one can see the order.
func (pt *PageTable) Quiet() bool { return pt.quiet() }

// bulkSetPTEs is RawSetPTEs for a quiet table.
// Precondition: p.T is a PTE table, p.I+nr <= p.T.Len().
func (pt *PageTable) bulkSetPTEs(p Ptr, e Entry, nr int) {
	f := pt.fmt
	t := p.T
	w := pt.newTally(t)
	step := Entry(1) << f.PageShift
	mask := f.PTE.AddrMask
	always := f.SetAlways // a local: the stores below may alias f
	es := t.entries[p.I : p.I+nr]
	if (e|always)&^mask&^w.ignore != w.none&^mask {
		// The entries written differ from none in their flag bits,
		// which the run does not change: none of them is none, so
		// each is a set, and the use count grows by the empty slots
		// filled. The common case (a fresh child table at fork).
		t.used += setLiveRun(es, e, always, mask, step, w.ignore, w.none)
		pt.meter.Add(cost.PTESets, uint64(nr))
		return
	}
	for i := range es {
		n := e | always
		w.write(es[i], n)
		es[i] = n
		e = e&^mask | (e&mask+step)&mask // AdvancePFN by one page
	}
	w.apply(t, pt.meter)
}

// writeTally accumulates what a loop of PTE writes does to its table's
// use count and to the counters, applied once at the end: the same use
// count and the same counts as writing the entries one by one.
type writeTally struct {
	// ignore and none are Format.NoneIgnore and None[PTE] without it.
	ignore, none Entry
	// used is the table's use count as the writes leave it.
	used int32
	// sets and clears count the writes of non-empty and empty entries.
	sets, clears uint64
}

// newTally starts a tally of writes into t.
func (pt *PageTable) newTally(t *Table) writeTally {
	ignore := pt.fmt.NoneIgnore
	return writeTally{ignore: ignore, none: pt.fmt.None[PTE] &^ ignore, used: t.used}
}

// write accounts one write from old to n.
func (w *writeTally) write(old, n Entry) {
	oldNone, newNone := old&^w.ignore == w.none, n&^w.ignore == w.none
	switch {
	case oldNone && !newNone:
		w.used++
	case !oldNone && newNone:
		w.used--
	}
	if newNone {
		w.clears++
	} else {
		w.sets++
	}
}

// apply stores the use count in t and adds the counts to m.
func (w *writeTally) apply(t *Table, m *cost.Meter) {
	t.used = w.used
	if w.sets != 0 {
		m.Add(cost.PTESets, w.sets)
	}
	if w.clears != 0 {
		m.Add(cost.PTEClears, w.clears)
	}
}

// bulkWrprotect is the generic wrprotect_ptes for a quiet table: each
// entry read and written back write-protected.
// Precondition: p.T is a PTE table, p.I+nr <= p.T.Len().
func (pt *PageTable) bulkWrprotect(p Ptr, nr int) {
	f := pt.fmt
	t := p.T
	w := pt.newTally(t)
	addr := f.PTE.AddrMask
	es := t.entries[p.I : p.I+nr]
	// pte_wrprotect changes flag bits only and reads no address bit: a
	// run of entries with the same flags (one folio's PTEs) is computed
	// once, and written in a loop of its own.
	for i := 0; i < len(es); {
		in := es[i] &^ addr
		out := f.Wrprotect(in, PTE) | f.SetAlways
		j := i
		if in&^w.ignore != w.none&^addr && out&^w.ignore != w.none&^addr {
			// Neither the entries nor their write-protected values
			// are none, whatever their frames: sets that leave the
			// use count alone.
			j += wrprotectLiveRun(es[i:], in, out, addr)
			w.sets += uint64(j - i)
			i = j
			continue
		}
		for j < len(es) && es[j]&^addr == in {
			n := es[j]&addr | out
			w.write(es[j], n)
			es[j] = n
			j++
		}
		i = j
	}
	pt.meter.Add(cost.EntryReads, uint64(nr))
	w.apply(t, pt.meter)
}

// setLiveRun stores e|always into every slot of es, e advancing by one
// frame (step, in the address bits mask) from slot to slot, and returns
// how many slots were none (ignoring the bits ignore) before. A leaf of
// its own (not inlined into its caller, whose calls would make the
// loop spill), so that its loop keeps everything in registers.
//
//go:noinline
func setLiveRun(es []Entry, e, always, mask, step, ignore, none Entry) int32 {
	filled := int32(0)
	for i := range es {
		if es[i]&^ignore == none {
			filled++
		}
		es[i] = e | always
		e = e&^mask | (e&mask+step)&mask // AdvancePFN by one page
	}
	return filled
}

// wrprotectLiveRun gives out as flags to the leading entries of es whose
// flags (the bits outside addr) are in, and returns how many it changed.
// A leaf of its own, like setLiveRun.
//
//go:noinline
func wrprotectLiveRun(es []Entry, in, out, addr Entry) int {
	j := 0
	for j < len(es) && es[j]&^addr == in {
		es[j] = es[j]&addr | out
		j++
	}
	return j
}

// SetEachPTE writes es[i] into the PTE at p+i for every i, as len(es)
// set_pte_at calls would (SetPTEs of one entry each: the same entries,
// use count and counts), in one loop. It does so only for a quiet table
// with the generic PTE operations and reports whether it did; otherwise
// it writes nothing and the caller writes the entries one by one.
// Precondition: p.I+len(es) <= p.T.Len().
func (pt *PageTable) SetEachPTE(p Ptr, es []Entry) bool {
	if !pt.generic || !p.In(len(es)) || p.T.level != PTE || !pt.quiet() {
		return false
	}
	t := p.T
	always := pt.fmt.SetAlways
	w := pt.newTally(t)
	dst := t.entries[p.I : p.I+len(es)]
	for i, e := range es {
		n := e | always
		w.write(dst[i], n)
		dst[i] = n
	}
	w.apply(t, pt.meter)
	return true
}

// PTERun returns how many leading PTEs of es equal e, e advanced by one
// frame (AdvancePFN) from each to the next — a run mapping consecutive
// frames with the same flags — and e advanced past them. It reads es
// directly and counts nothing (see QuietPTEs).
func (f *Format) PTERun(es []Entry, e Entry) (int, Entry) {
	return advancingRun(es, e, f.PTE.AddrMask, Entry(1)<<f.PageShift)
}

// advancingRun is PTERun as a leaf whose loop stays in registers (not
// inlined, for the same reason as setLiveRun).
//
//go:noinline
func advancingRun(es []Entry, e, mask, step Entry) (int, Entry) {
	n := 0
	for n < len(es) && es[n] == e {
		e = e&^mask | (e&mask+step)&mask
		n++
	}
	return n, e
}

// setOnePTE is bulkSetPTEs for one entry, without the loop's set-up.
// Precondition: p.T is a PTE table.
func (pt *PageTable) setOnePTE(p Ptr, e Entry) {
	f := pt.fmt
	t := p.T
	n := e | f.SetAlways
	old := t.entries[p.I]
	t.entries[p.I] = n
	pt.countOne(t, old, n)
}

// wrprotectOnePTE is bulkWrprotect for one entry.
// Precondition: p.T is a PTE table.
func (pt *PageTable) wrprotectOnePTE(p Ptr) {
	f := pt.fmt
	t := p.T
	old := t.entries[p.I]
	n := f.Wrprotect(old, PTE) | f.SetAlways
	t.entries[p.I] = n
	pt.meter.Add(cost.EntryReads, 1)
	pt.countOne(t, old, n)
}

// countOne keeps t's use count and counts one PTE write from old to n.
func (pt *PageTable) countOne(t *Table, old, n Entry) {
	f := pt.fmt
	ignore := f.NoneIgnore
	none := f.None[PTE] &^ ignore
	oldNone, newNone := old&^ignore == none, n&^ignore == none
	switch {
	case oldNone && !newNone:
		t.used++
	case !oldNone && newNone:
		t.used--
	}
	if newNone {
		pt.meter.Add(cost.PTEClears, 1)
	} else {
		pt.meter.Add(cost.PTESets, 1)
	}
}

// QuietPTEs returns the n PTEs from p, uncounted, to a loop that would
// read them one by one with ptep_get and that counts what it read itself
// with CountReads. It only does so when ptep_get is the generic read of
// one entry (pte_batch_hint is 1) and nobody traces the meter: one add
// of the number read then gives exactly the counts of the entry-by-entry
// reads. Otherwise ok is false and the caller reads entry by entry.
// Precondition: p.I+n <= p.T.Len().
func (pt *PageTable) QuietPTEs(p Ptr, n int) (es []Entry, ok bool) {
	if !pt.generic || !p.In(n) || p.T.level != PTE || pt.meter.Tracing() {
		return nil, false
	}
	return p.T.entries[p.I : p.I+n], true
}

// CountReads counts n entry reads: the ptep_get calls a QuietPTEs loop
// stood in for.
func (pt *PageTable) CountReads(n int) {
	if n > 0 {
		pt.meter.Add(cost.EntryReads, uint64(n))
	}
}
