package pgtable

import "github.com/ptsim/ptsim/phys"

// Entry is the raw value of one page-table entry, encoded as the arch's
// Format says.
type Entry uint64

// Bits says where each logical flag lives in a leaf entry of one arch. A
// zero mask means the arch lacks the flag. Some hardware bits are derived
// from software bits, as Linux derives them (arm64's PTE_RDONLY, s390's
// _PAGE_INVALID and _PAGE_PROTECT, sparc64's _PAGE_W and _PAGE_VALID); the
// Mk* methods keep them consistent exactly as the arch's pte_mk* helpers do.
type Bits struct {
	// AddrMask selects the physical-address bits (PFN << PageShift).
	AddrMask Entry
	// Present is the set of bits any of which makes the entry present
	// (pte_present): x86 P|PROTNONE, arm64 VALID|PRESENT_INVALID.
	Present Entry
	// Valid is a hardware valid bit: the MMU may use the entry only when
	// it is set (x86 P, arm64 VALID, sparc64 VALID).
	Valid Entry
	// Invalid is a hardware invalid bit: the MMU may use the entry only
	// when it is clear (s390 _PAGE_INVALID); derived as !(young && read).
	Invalid Entry
	// YoungValid is set when the hardware valid bit doubles as the
	// reference bit (sparc64 _PAGE_R == _PAGE_VALID): mkold clears Valid.
	YoungValid bool
	// Read is a software read permission bit (s390, sparc64); zero means
	// every present entry is readable.
	Read Entry
	// Write is the software write permission (pte_write).
	Write Entry
	// HWWrite is a hardware write-enable bit derived as write && dirty
	// (sparc64 _PAGE_W); zero when Write itself is the hardware bit.
	HWWrite Entry
	// RdOnly is a hardware read-only bit derived as !(write && dirty)
	// (arm64 PTE_RDONLY, s390 _PAGE_PROTECT).
	RdOnly Entry
	// DBM means a writable entry with RdOnly clear is dirty even without
	// the software dirty bit: the hardware marks dirt by clearing RdOnly
	// (arm64 DBM).
	DBM bool
	// SavedDirty holds the dirty state while Write is clear (x86's
	// _PAGE_SAVED_DIRTY, so no entry looks like shadow stack).
	SavedDirty Entry
	// User marks a user-accessible entry.
	User Entry
	// Priv marks a privileged-only entry, the inverse of User (sparc64
	// _PAGE_P). An arch with neither bit (s390, whose kernel has an
	// address space of its own) has every entry user-accessible.
	Priv Entry
	// NoExec forbids instruction fetch when set (x86 NX, arm64 UXN, s390).
	NoExec Entry
	// Exec allows instruction fetch when set (sparc64 EXEC).
	Exec Entry
	// Young, Dirty, Special, SoftDirty, UffdWP, Global and Cont are the
	// flags of the same names (pte_young, pte_dirty...).
	Young, Dirty, Special, SoftDirty, UffdWP, Global, Cont Entry
	// DirtySetsSoftDirty is set when mkdirty also sets soft-dirty (x86,
	// s390).
	DirtySetsSoftDirty bool
	// MkWriteClearsRdOnly is set when mkwrite clears RdOnly whatever the
	// dirty state (arm64's pte_mkwrite_novma); otherwise mkwrite clears it
	// only for a dirty entry (s390).
	MkWriteClearsRdOnly bool
	// LeafSet and LeafClear mark a huge leaf at an upper level: a present
	// upper entry is a leaf when all of LeafSet are set and all of
	// LeafClear are clear (x86 PSE; arm64 a clear table bit).
	LeafSet, LeafClear Entry
}

// Prot selects an entry's protection, as a VMA's flags select
// vm_page_prot from Linux's protection_map.
type Prot uint8

// Protection bits.
const (
	ProtRead Prot = 1 << iota
	ProtWrite
	ProtExec
	// ProtShared selects the shared-mapping column of protection_map;
	// private writable mappings start read-only for COW.
	ProtShared
	// numProts is the size of a protection map.
	numProts = 16
)

// ProtNone is no access (PROT_NONE).
const ProtNone Prot = 0

// Format is how one architecture encodes page-table entries.
type Format struct {
	// PageShift is log2 of the base page size.
	PageShift uint
	// PTE describes leaf entries at the PTE level.
	PTE Bits
	// Huge describes leaf entries at upper levels (PMD and PUD leaves).
	Huge Bits
	// None gives the value an empty entry holds at each level, which is
	// what a clear stores (s390 uses invalid patterns, not zero).
	None [NumLevels]Entry
	// NoneIgnore masks bits that pte_none ignores (x86 ignores A/D for an
	// erratum; UML ignores _PAGE_NEEDSYNC).
	NoneIgnore Entry
	// SetAlways is ORed into every PTE written (UML _PAGE_NEEDSYNC).
	SetAlways Entry
	// ZeroFill makes new tables start zero-filled even where a clear
	// stores a non-zero None (UML: pte_alloc hands out zeroed pages, while
	// pte_clear stores _PAGE_NEEDSYNC). Otherwise new tables are filled
	// with None, as s390 fills them with its invalid patterns.
	ZeroFill bool
	// PfnYoung is set when pfn_pte makes the entry young (s390's
	// mk_pte_phys applies pte_mkyoung): MkPTE and MkKernel do the same.
	PfnYoung bool
	// TableBits are ORed with a child table's physical address to make a
	// table entry, per level, for user and kernel page tables.
	TableBits, KernelTableBits [NumLevels]Entry
	// TableAddrMask selects the child's physical address in a table entry.
	TableAddrMask Entry
	// Prots is the protection map for user pages (protection_map), indexed
	// by Prot; HugeProts the same for upper-level leaves.
	Prots, HugeProts [numProts]Entry
	// KernelRW and KernelRO are PAGE_KERNEL and PAGE_KERNEL_RO; HugeKernelRW
	// is the same for upper-level leaves.
	KernelRW, KernelRO, HugeKernelRW Entry
	// LeafLevels marks the upper levels that may hold huge leaves.
	LeafLevels [NumLevels]bool
	// HugeLevelBits are ORed into every huge leaf at level l besides the
	// Huge layout (s390 region-third leaves carry the region-3 table type,
	// 0x04, which segment leaves do not).
	HugeLevelBits [NumLevels]Entry
	// HWYoung is set when the MMU sets the young bit itself on access;
	// otherwise an old entry is not hardware-valid and faults.
	HWYoung bool
	// HWDirty is set when the MMU marks an entry dirty itself on write;
	// otherwise a clean writable entry faults on write.
	HWDirty bool
}

// bits returns the bit layout for leaf entries at level l.
func (f *Format) bits(l Level) *Bits {
	if l == PTE {
		return &f.PTE
	}
	return &f.Huge
}

// IsNone reports whether e is an empty entry at level l (pte_none). At a
// value that is no level only 0 is empty.
func (f *Format) IsNone(e Entry, l Level) bool {
	if !l.Valid() {
		return e == 0
	}
	return e&^f.NoneIgnore == f.None[l]&^f.NoneIgnore
}

// PFN returns the frame an entry maps or points to.
func (f *Format) PFN(e Entry, l Level) phys.PFN {
	return phys.PFN((e & f.bits(l).AddrMask) >> f.PageShift)
}

// TablePFN returns the frame of the table a table entry points to.
func (f *Format) TablePFN(e Entry) phys.PFN { return phys.PFN((e & f.TableAddrMask) >> f.PageShift) }

// MkTable returns a table entry at level l pointing at frame pfn
// (pmd_populate's value); at a value that is no level, the bare address.
func (f *Format) MkTable(l Level, pfn phys.PFN, kernel bool) Entry {
	if !l.Valid() {
		return Entry(uint64(pfn)<<f.PageShift) & f.TableAddrMask
	}
	bits := f.TableBits[l]
	if kernel {
		bits = f.KernelTableBits[l]
	}
	return Entry(uint64(pfn)<<f.PageShift)&f.TableAddrMask | bits
}

// MkPTE returns a PTE mapping pfn with protection prot (pfn_pte with
// vm_get_page_prot).
func (f *Format) MkPTE(pfn phys.PFN, prot Prot) Entry {
	e := Entry(uint64(pfn)<<f.PageShift)&f.PTE.AddrMask | f.Prots[prot&(numProts-1)]
	if f.PfnYoung {
		e = f.MkYoung(e, PTE)
	}
	return e
}

// MkHuge returns an upper-level leaf mapping pfn (pfn_pmd + pmd_mkhuge),
// without the level's HugeLevelBits (see MkHugeAt).
func (f *Format) MkHuge(pfn phys.PFN, prot Prot) Entry {
	return Entry(uint64(pfn)<<f.PageShift)&f.Huge.AddrMask | f.HugeProts[prot&(numProts-1)]
}

// MkHugeAt returns a leaf at upper level l mapping pfn: MkHuge with the
// level's HugeLevelBits (none at a value that is no level).
func (f *Format) MkHugeAt(l Level, pfn phys.PFN, prot Prot) Entry {
	return f.MkHuge(pfn, prot) | f.levelBits(l)
}

// levelBits returns HugeLevelBits[l], 0 for a value that is no level.
func (f *Format) levelBits(l Level) Entry {
	if !l.Valid() {
		return 0
	}
	return f.HugeLevelBits[l]
}

// MkKernel returns a kernel PTE mapping pfn, PAGE_KERNEL or PAGE_KERNEL_RO.
func (f *Format) MkKernel(pfn phys.PFN, writable bool) Entry {
	prot := f.KernelRO
	if writable {
		prot = f.KernelRW
	}
	e := Entry(uint64(pfn)<<f.PageShift)&f.PTE.AddrMask | prot
	if f.PfnYoung {
		e = f.MkYoung(e, PTE)
	}
	return e
}

// MkKernelHuge returns a kernel upper-level leaf mapping pfn (PAGE_KERNEL
// with a huge mapping, as vmemmap and the direct map use).
func (f *Format) MkKernelHuge(pfn phys.PFN) Entry {
	return Entry(uint64(pfn)<<f.PageShift)&f.Huge.AddrMask | f.HugeKernelRW
}

// IsLeaf reports whether an upper-level entry is a huge leaf (pmd_leaf).
func (f *Format) IsLeaf(e Entry, l Level) bool {
	if l == PTE {
		return f.Present(e, l)
	}
	if !l.Valid() || !f.LeafLevels[l] {
		return false // no huge leaves here (UML has none at all)
	}
	b := &f.Huge
	return e&b.Present != 0 && e&b.LeafSet == b.LeafSet && e&b.LeafClear == 0
}

// Present reports whether a leaf entry is present (pte_present).
func (f *Format) Present(e Entry, l Level) bool { return e&f.bits(l).Present != 0 }

// Write reports pte_write.
func (f *Format) Write(e Entry, l Level) bool { return e&f.bits(l).Write != 0 }

// Young reports pte_young.
func (f *Format) Young(e Entry, l Level) bool { return e&f.bits(l).Young != 0 }

// Dirty reports pte_dirty: the software bit, the saved-dirty bit, or on
// DBM hardware a writable entry whose read-only bit is clear.
func (f *Format) Dirty(e Entry, l Level) bool { return f.bits(l).dirty(e) }

func (b *Bits) dirty(e Entry) bool {
	if e&(b.Dirty|b.SavedDirty) != 0 {
		return true
	}
	return b.DBM && e&b.Write != 0 && e&b.RdOnly == 0
}

// Special reports pte_special.
func (f *Format) Special(e Entry, l Level) bool { return e&f.bits(l).Special != 0 }

// SoftDirty reports pte_soft_dirty.
func (f *Format) SoftDirty(e Entry, l Level) bool { return e&f.bits(l).SoftDirty != 0 }

// UffdWP reports pte_uffd_wp.
func (f *Format) UffdWP(e Entry, l Level) bool { return e&f.bits(l).UffdWP != 0 }

// Cont reports pte_cont (arm64's contiguous bit).
func (f *Format) Cont(e Entry, l Level) bool { return e&f.bits(l).Cont != 0 }

// User reports whether a leaf is user-accessible.
func (f *Format) User(e Entry, l Level) bool {
	b := f.bits(l)
	switch {
	case b.User != 0:
		return e&b.User != 0
	case b.Priv != 0:
		return e&b.Priv == 0
	}
	return true
}

// Exec reports whether a leaf allows instruction fetch.
func (f *Format) Exec(e Entry, l Level) bool {
	b := f.bits(l)
	if b.Exec != 0 {
		return e&b.Exec != 0
	}
	return e&b.NoExec == 0
}

// Readable reports whether a present leaf grants read access (false for a
// PROT_NONE entry).
func (f *Format) Readable(e Entry, l Level) bool {
	b := f.bits(l)
	if b.Read != 0 {
		return e&b.Read != 0
	}
	return f.HWValidBits(e, l) || b.YoungValid
}

// HWValidBits reports whether the hardware valid/invalid bits let the MMU
// use the entry at all, ignoring the young emulation (an old sparc64 or
// s390 entry reads as not valid here).
func (f *Format) HWValidBits(e Entry, l Level) bool {
	b := f.bits(l)
	if b.Valid != 0 {
		return e&b.Valid != 0
	}
	if b.Invalid != 0 {
		return e&b.Present != 0 && e&b.Invalid == 0
	}
	return e&b.Present != 0
}

// HWReadable reports whether the MMU can translate a read through the
// leaf without a fault: it is hardware-valid and, where the MMU does not
// set the young bit itself (HWYoung false), young. Arches that emulate
// young with the valid bits (s390, sparc64) fail the first test already;
// UML, whose host mapping grants no access to an old page, fails the
// second.
func (f *Format) HWReadable(e Entry, l Level) bool {
	return f.HWValidBits(e, l) && (f.HWYoung || f.Young(e, l))
}

// HWWritable reports whether the MMU can translate a write through the
// leaf without a fault: derived write enable where the arch has one, the
// read-only bit (or DBM) where it has that, else the write bit and, where
// the MMU does not set the dirty bit itself (HWDirty false), the dirty bit.
func (f *Format) HWWritable(e Entry, l Level) bool {
	if !f.HWReadable(e, l) {
		return false
	}
	b := f.bits(l)
	switch {
	case b.HWWrite != 0:
		return e&b.HWWrite != 0
	case b.RdOnly != 0:
		if e&b.RdOnly == 0 {
			return true
		}
		return b.DBM && f.HWDirty && e&b.Write != 0
	default:
		return e&b.Write != 0 && (f.HWDirty || b.dirty(e))
	}
}

// MkYoung returns e marked young (pte_mkyoung).
func (f *Format) MkYoung(e Entry, l Level) Entry {
	b := f.bits(l)
	e |= b.Young
	if b.YoungValid {
		e |= b.Valid
	}
	if b.Invalid != 0 && (b.Read == 0 || e&b.Read != 0) {
		e &^= b.Invalid
	}
	return e
}

// MkOld returns e marked old (pte_mkold).
func (f *Format) MkOld(e Entry, l Level) Entry {
	b := f.bits(l)
	e &^= b.Young
	if b.YoungValid {
		e &^= b.Valid
	}
	e |= b.Invalid
	return e
}

// MkDirty returns e marked dirty (pte_mkdirty).
func (f *Format) MkDirty(e Entry, l Level) Entry {
	b := f.bits(l)
	e |= b.Dirty
	if b.DirtySetsSoftDirty {
		e |= b.SoftDirty
	}
	if e&b.Write != 0 {
		e &^= b.RdOnly
		e |= b.HWWrite
	} else if b.SavedDirty != 0 && e&b.Dirty != 0 {
		e = e&^b.Dirty | b.SavedDirty
	}
	return e
}

// MkClean returns e marked clean (pte_mkclean).
func (f *Format) MkClean(e Entry, l Level) Entry {
	b := f.bits(l)
	e &^= b.Dirty | b.SavedDirty | b.HWWrite
	e |= b.RdOnly
	return e
}

// MkWrite returns e made writable (pte_mkwrite_novma).
func (f *Format) MkWrite(e Entry, l Level) Entry {
	b := f.bits(l)
	e |= b.Write
	if e&b.SavedDirty != 0 {
		e = e&^b.SavedDirty | b.Dirty
	}
	if b.MkWriteClearsRdOnly {
		e &^= b.RdOnly
	}
	if e&b.Dirty != 0 {
		e &^= b.RdOnly
		e |= b.HWWrite
	}
	return e
}

// Wrprotect returns e write-protected (pte_wrprotect); its dirty state is
// kept.
func (f *Format) Wrprotect(e Entry, l Level) Entry {
	b := f.bits(l)
	if b.DBM && b.dirty(e) {
		e |= b.Dirty
	}
	e &^= b.Write | b.HWWrite
	e |= b.RdOnly
	if b.SavedDirty != 0 && e&b.Dirty != 0 {
		e = e&^b.Dirty | b.SavedDirty
	}
	return e
}

// MkSpecial returns e marked special (pte_mkspecial).
func (f *Format) MkSpecial(e Entry, l Level) Entry { return e | f.bits(l).Special }

// MkSoftDirty returns e marked soft-dirty.
func (f *Format) MkSoftDirty(e Entry, l Level) Entry { return e | f.bits(l).SoftDirty }

// ClearSoftDirty returns e without the soft-dirty mark.
func (f *Format) ClearSoftDirty(e Entry, l Level) Entry { return e &^ f.bits(l).SoftDirty }

// MkUffdWP returns e marked uffd-wp and write-protected (pte_mkuffd_wp).
func (f *Format) MkUffdWP(e Entry, l Level) Entry { return f.Wrprotect(e|f.bits(l).UffdWP, l) }

// ClearUffdWP returns e without the uffd-wp mark.
func (f *Format) ClearUffdWP(e Entry, l Level) Entry { return e &^ f.bits(l).UffdWP }

// MkCont returns e with the contiguous bit (pte_mkcont).
func (f *Format) MkCont(e Entry) Entry { return e | f.PTE.Cont }

// MkNonCont returns e without the contiguous bit (pte_mknoncont).
func (f *Format) MkNonCont(e Entry) Entry { return e &^ f.PTE.Cont }

// AdvancePFN returns e mapping the frame nr pages further
// (pte_advance_pfn).
func (f *Format) AdvancePFN(e Entry, l Level, nr uint64) Entry {
	b := f.bits(l)
	pa := (e & b.AddrMask) + Entry(nr<<f.PageShift)
	return e&^b.AddrMask | pa&b.AddrMask
}

// SetPFN returns e mapping frame pfn instead, flags unchanged.
func (f *Format) SetPFN(e Entry, l Level, pfn phys.PFN) Entry {
	b := f.bits(l)
	return e&^b.AddrMask | Entry(uint64(pfn)<<f.PageShift)&b.AddrMask
}

// Modify returns e with the protection of prot, keeping its frame and its
// young, dirty, soft-dirty and special state (pte_modify). A young entry
// whose new protection is young already is left as the protection gives
// it: sparc64's PAGE_NONE is young but not valid, and marking it young
// again would make it valid.
func (f *Format) Modify(e Entry, l Level, prot Prot) Entry {
	b := f.bits(l)
	n := f.Prots[prot&(numProts-1)]
	if l != PTE {
		n = f.HugeProts[prot&(numProts-1)] | f.levelBits(l)
	}
	n |= e & b.AddrMask
	n |= e & (b.Special | b.SoftDirty | b.UffdWP | b.Cont)
	switch {
	case !f.Young(e, l):
		n = f.MkOld(n, l)
	case !f.Young(n, l):
		n = f.MkYoung(n, l)
	}
	if f.Dirty(e, l) {
		if b.DBM || b.SavedDirty != 0 || b.HWWrite != 0 || b.RdOnly != 0 {
			n = f.MkDirty(n, l)
		} else {
			n |= b.Dirty
		}
	} else {
		n = f.MkClean(n, l)
	}
	// pte_modify keeps soft-dirty as it was; mkdirty above must not set it.
	return n&^b.SoftDirty | e&b.SoftDirty
}

// SameIgnoring reports whether two leaf entries are equal once the bits of
// mask are ignored (pte_same after __pte_batch_clear_ignored).
func SameIgnoring(a, b, mask Entry) bool { return a&^mask == b&^mask }

// HWMkDirty returns e as the MMU leaves it after a write through it: x86
// sets the dirty bit; DBM hardware (arm64) clears the read-only bit of a
// writable entry.
func (f *Format) HWMkDirty(e Entry, l Level) Entry {
	b := f.bits(l)
	if b.DBM {
		if e&b.Write != 0 {
			e &^= b.RdOnly
		}
		return e
	}
	return e | b.Dirty
}
