package pgtable

import "github.com/ptsim/ptsim/cost"

// MovePTEsQuiet is mremap's move_ptes loop for a table that needs no
// per-entry work: Linux's generic PTE operations (no arch ops under
// ptep_get, get_and_clear_full_ptes and set_ptes, so every batch is one
// PTE) and a quiet table (nobody traces, and the observer ignores
// writes). Then it moves the n PTEs from src to dst in one pass and
// counts exactly what the entry-by-entry path counts: one read per slot
// (ptep_get), and per non-empty entry one more read and a clear
// (ptep_get_and_clear) and a set (set_ptes). A present entry is moved
// with the bits of setPresent added (soft-dirty); every moved entry loses
// the bits of clear (uffd-wp). It returns how many entries moved and
// whether one was present; ok is false, and nothing is done, when the
// table does not qualify, and the caller moves entry by entry.
//
// Precondition: src and dst are PTE slots of n entries each inside their
// tables, and the n destination slots are empty.
func (pt *PageTable) MovePTEsQuiet(src, dst Ptr, n int, setPresent, clear Entry) (moved int, present, ok bool) {
	if _, generic := pt.ops.(GenericOps); !generic || !pt.quiet() || !src.In(n) || !dst.In(n) {
		return 0, false, false
	}
	f := pt.fmt
	ignore := f.NoneIgnore
	noneCmp := f.None[PTE] &^ ignore
	none := f.None[PTE]
	presentBits := f.PTE.Present
	s := src.T.entries[src.I : src.I+n]
	d := dst.T.entries[dst.I : dst.I+n]
	sets := 0
	for i, e := range s {
		if e&^ignore == noneCmp {
			continue
		}
		s[i] = none
		moved++
		if e&presentBits != 0 {
			e |= setPresent
			present = true
		}
		e = e&^clear | f.SetAlways
		d[i] = e
		if e&^ignore != noneCmp {
			sets++
		}
	}
	src.T.used -= int32(moved)
	dst.T.used += int32(sets)
	pt.meter.Add(cost.EntryReads, uint64(n+moved))
	if moved > 0 {
		// Each moved entry is cleared at the source; a destination write
		// that leaves the slot empty counts as a clear too.
		pt.meter.Add(cost.PTEClears, uint64(2*moved-sets))
	}
	if sets > 0 {
		pt.meter.Add(cost.PTESets, uint64(sets))
	}
	return moved, present, true
}
