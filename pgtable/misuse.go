package pgtable

import (
	"errors"
	"fmt"
)

// maxMisuses bounds the misuses a page table remembers in detail.
const maxMisuses = 8

// misuses records calls of the entry primitives with a pointer that
// points at no entry of a table (see Misused).
type misuses struct {
	first []error
	count int
}

// Misused records a call of entry primitive op with a pointer p whose nr
// entries are not entries of one table (Ptr.In is false), for Misuse, and
// returns true. The primitives (set_pte and friends) then do nothing,
// where Linux would scribble on memory that is not a page table: the
// simulator refuses the store and Misuse, which the machine's invariant
// checker reads, names the call. The primitives, and the ArchOps
// implementations, test p.In themselves, which inlines, and call this out
// of line: `if !p.In(nr) && pt.Misused("set_ptes", addr, p, nr) { return }`.
//
//go:noinline
func (pt *PageTable) Misused(op string, addr uint64, p Ptr, nr int) bool {
	pt.misuse.count++
	if len(pt.misuse.first) == maxMisuses {
		return true
	}
	var err error
	switch {
	case p.T == nil:
		err = fmt.Errorf("pgtable: %s at %#x: pointer to no table: %w", op, addr, EINVAL)
	case p.In(nr):
		err = fmt.Errorf("pgtable: %s at %#x: %w", op, addr, EINVAL)
	default:
		err = fmt.Errorf("pgtable: %s at %#x: entries %d+%d outside a %s table of %d: %w",
			op, addr, p.I, nr, p.T.level, len(p.T.entries), EINVAL)
	}
	pt.misuse.first = append(pt.misuse.first, err)
	return true
}

// Misuse reports the calls of entry primitives (RawGet, SetPTEs,
// ClearFullPTEs, WrprotectPTEs, Populate...) made with a pointer to no
// entry, or with a count reaching past the table's end: each did nothing
// (a read gave 0). It is nil when there were none. The invariant checker
// of the machine model reports it, so a program that computes a pointer
// wrongly finds out at its next check rather than from a corrupted model.
func (pt *PageTable) Misuse() error {
	if pt.misuse.count == 0 {
		return nil
	}
	errs := append([]error(nil), pt.misuse.first...)
	if more := pt.misuse.count - len(pt.misuse.first); more > 0 {
		errs = append(errs, fmt.Errorf("pgtable: %d more calls with a bad entry pointer", more))
	}
	return errors.Join(errs...)
}
