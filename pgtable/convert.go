package pgtable

// fields lists the logical flag masks of a Bits, in a fixed order, so that
// an entry can be carried from one layout to another flag by flag.
func (b *Bits) fields() [16]Entry {
	return [16]Entry{b.Valid, b.Invalid, b.Read, b.Write, b.HWWrite, b.RdOnly, b.SavedDirty,
		b.User, b.NoExec, b.Exec, b.Young, b.Dirty, b.Special, b.SoftDirty, b.UffdWP, b.Global}
}

// presentBit returns the bit a converted entry sets to stay present.
func (b *Bits) presentBit(e Entry, from *Bits) Entry {
	if e&from.Present == 0 {
		return 0
	}
	if b.Valid != 0 && e&from.Valid != 0 {
		return b.Valid
	}
	// The lowest present bit: x86 P, s390 _PAGE_PRESENT.
	return b.Present & -b.Present
}

// convert carries e from layout from to layout to. Where the two layouts
// put every flag in the same place (x86, arm64, sparc64) only the leaf
// marker changes and every other bit is kept; otherwise (s390's segment
// entries) each logical flag is carried across.
func convert(e Entry, from, to *Bits, sameLayout bool) Entry {
	if sameLayout {
		e = e&^from.LeafSet | from.LeafClear
		return e&^to.LeafClear | to.LeafSet
	}
	out := e & from.AddrMask & to.AddrMask
	ff, tf := from.fields(), to.fields()
	for i := range ff {
		if ff[i] != 0 && e&ff[i] != 0 {
			out |= tf[i]
		}
	}
	out |= to.presentBit(e, from)
	return out | to.LeafSet
}

// sameLayout reports whether PTE and huge leaves differ only in the leaf
// marker.
func (f *Format) sameLayout() bool {
	a, b := f.PTE, f.Huge
	a.LeafSet, a.LeafClear, b.LeafSet, b.LeafClear = 0, 0, 0, 0
	return a == b
}

// HugeToPTE converts an upper-level leaf into the PTE that maps its first
// page with the same protection and state (the conversion a split does).
func (f *Format) HugeToPTE(e Entry) Entry { return convert(e, &f.Huge, &f.PTE, f.sameLayout()) }

// PTEToHuge converts a PTE into an upper-level leaf with the same
// protection and state.
func (f *Format) PTEToHuge(e Entry) Entry { return convert(e, &f.PTE, &f.Huge, f.sameLayout()) }
