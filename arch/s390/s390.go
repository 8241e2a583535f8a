// Package s390 is the s390x (z/Architecture DAT) backend: 4 KiB pages,
// region-first, region-second and region-third tables and the segment
// table (2048 entries, 16 KiB each), page tables of 256 entries, and the
// entry encodings of arch/s390/include/asm/pgtable.h.
//
// Quirks that matter to the model:
//   - An empty entry is not zero: pte_none is pte == 0x400
//     (_PAGE_INVALID), pmd_none is 0x20, and the region entries are
//     0x24, 0x28 and 0x2C. New tables are filled with these patterns
//     (page_table_alloc, crst_table_alloc) and clears store them.
//   - Young and dirty are software bits; the hardware sees them through
//     the invalid and protection bits: an old entry carries _PAGE_INVALID
//     (the first access faults and pte_mkyoung clears it if the entry is
//     readable), and a clean or read-only entry carries _PAGE_PROTECT.
//     pfn_pte (mk_pte_phys) makes the entry young, so Format.PfnYoung is
//     set. Format.HWYoung and HWDirty are false: the storage-key
//     reference and change bits are per frame and Linux's helpers do not
//     use them.
//   - Huge leaves are large segment entries (1 MiB, EDAT1) and large
//     region-third entries (2 GiB, EDAT2) with a layout of their own:
//     YOUNG 0x1000, DIRTY 0x2000, READ 0x4000, WRITE 0x8000, LARGE 0x400,
//     PROTECT 0x200, INVALID 0x20, NOEXEC 0x100, PRESENT 0x1, SOFT_DIRTY
//     0x2. pgtable converts between it and the PTE layout flag by flag.
//     Region-third leaves also carry the region-3 type, 0x04
//     (Format.HugeLevelBits).
//   - A valid entry is never overwritten by a plain store: IPTE, IDTE
//     and CRDTE invalidate it and purge the TLBs as part of the write
//     (Caps.LiveEntriesNeedInvalidate).
//   - A new mm starts with 3 levels (an R3 table at the root, 4 TiB);
//     crst_table_upgrade adds R2 and R1 tables as addresses need
//     (Caps.GrowLevels). ThreeLevelLimit and FourLevelLimit are the
//     asce_limit values at 3 and 4 levels.
//   - Linux packs two 2 KiB page tables into one 4 KiB page; the model
//     gives each page table a page of its own (order 0, rounded up).
//   - No uffd-wp (HAVE_ARCH_USERFAULTFD_WP is not selected), no
//     contiguous hint, no HAVE_MOVE_PMD/PUD.
//   - HVO is off: upstream stopped selecting
//     ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP for s390 in November 2025
//     (commit 64e2f60f355e).
//
// TLB behaviour (TLBPolicy, PTEOps): invalidation is bound to the entry
// write. PTEOps exchanges live PTEs with IPTE (ptep_xchg_direct) or
// lazily (ptep_xchg_lazy: when only the issuing CPU is attached, the
// invalid bit is set in place and the purge deferred by flush_mm);
// segment and region entries are exchanged with IDTE. IPTE and IDTE
// purge every CPU's TLB in hardware (ipte_ops, idte_ops; no IPIs), or
// only the issuing CPU's when the mm's cpumask holds no other.
// flush_tlb_page and flush_tlb_all are no-ops; flush_tlb_range,
// flush_tlb_mm and the mmu_gather's flush purge the whole mm (an IDTE of
// its ASCE) only when a lazy invalidation or a freed table left flush_mm
// set. A plain store over a live leaf is a violation; a table entry may
// be cleared plainly once the table it points to is empty, because no
// translation can have been formed through an empty table, and the
// freeing gather sets flush_mm, whose flush purges every CPU's walk
// cache before the table is freed.
//
// Kernel layout. The kernel has an address space (ASCE) of its own, so
// its addresses overlap user addresses numerically. arch/s390/boot/
// startup.c (setup_kernel_memory_layout) chooses a 3-level kernel ASCE
// (asce_limit = 4 TiB) when the image base lies below 4 TiB, as the
// default CONFIG_KERNEL_IMAGE_BASE does; pins the identity (direct) map
// at 0 unless RANDOMIZE_IDENTITY_BASE is set; and puts the vmemmap array
// above the identity map, aligned to a top-level region entry, below the
// vmalloc and module areas under the kernel image. The exact vmemmap
// start depends on the memory size; the model uses 3 TiB (KernelVmemmap),
// a 2 GiB-aligned value in that window.
package s390

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/pgtable"
)

// PTE bits (pgtable.h). Values are masks counted from the least
// significant bit, although the architecture numbers bits from the most
// significant one.
const (
	// Hardware bits.
	NoExec  pgtable.Entry = 0x100 // _PAGE_NOEXEC
	Protect pgtable.Entry = 0x200 // _PAGE_PROTECT: read-only to the MMU
	Invalid pgtable.Entry = 0x400 // _PAGE_INVALID: not usable by the MMU
	Large   pgtable.Entry = 0x800 // _PAGE_LARGE: a hugetlb pte

	// Software bits.
	Present   pgtable.Entry = 0x001 // _PAGE_PRESENT
	SoftDirty pgtable.Entry = 0x002 // _PAGE_SOFT_DIRTY
	Young     pgtable.Entry = 0x004 // _PAGE_YOUNG
	Dirty     pgtable.Entry = 0x008 // _PAGE_DIRTY
	Read      pgtable.Entry = 0x010 // _PAGE_READ
	Write     pgtable.Entry = 0x020 // _PAGE_WRITE
	Special   pgtable.Entry = 0x040 // _PAGE_SPECIAL
	Unused    pgtable.Entry = 0x080 // _PAGE_UNUSED (pgste usage state)

	// PageMask selects the page frame address of a pte.
	PageMask pgtable.Entry = ^pgtable.Entry(0xfff)
)

// Segment and region-third entry bits (pgtable.h). Large segment and
// region-third entries share this layout.
const (
	SegPresent   pgtable.Entry = 0x0001 // _SEGMENT_ENTRY_PRESENT
	SegSoftDirty pgtable.Entry = 0x0002 // _SEGMENT_ENTRY_SOFT_DIRTY
	SegInvalid   pgtable.Entry = 0x0020 // _SEGMENT_ENTRY_INVALID
	SegNoExec    pgtable.Entry = 0x0100 // _SEGMENT_ENTRY_NOEXEC
	SegProtect   pgtable.Entry = 0x0200 // _SEGMENT_ENTRY_PROTECT
	SegLarge     pgtable.Entry = 0x0400 // _SEGMENT_ENTRY_LARGE (STE-format control)
	SegYoung     pgtable.Entry = 0x1000 // _SEGMENT_ENTRY_YOUNG
	SegDirty     pgtable.Entry = 0x2000 // _SEGMENT_ENTRY_DIRTY
	SegRead      pgtable.Entry = 0x4000 // _SEGMENT_ENTRY_READ
	SegWrite     pgtable.Entry = 0x8000 // _SEGMENT_ENTRY_WRITE

	// SegOriginLarge is _SEGMENT_ENTRY_ORIGIN_LARGE, the frame of a 1 MiB
	// leaf. Region-third leaves are 2 GiB aligned within it.
	SegOriginLarge pgtable.Entry = ^pgtable.Entry(0xfffff)
	// RegionOrigin is _REGION_ENTRY_ORIGIN, the table a region or segment
	// table entry points to (segment entries point to 2 KiB aligned page
	// tables; the model's page tables are page aligned).
	RegionOrigin pgtable.Entry = ^pgtable.Entry(0xfff)

	// RegionTypeR3 is _REGION_ENTRY_TYPE_R3, carried by every region-third
	// entry, leaves included.
	RegionTypeR3 pgtable.Entry = 0x04
)

// Table entries and empty entries per level (pgtable.h).
const (
	// SegmentEntry is _SEGMENT_ENTRY, ORed into a segment entry pointing
	// to a page table (pmd_populate).
	SegmentEntry pgtable.Entry = 0x01
	// Region3Entry is _REGION3_ENTRY: type R3, table length 3, present.
	Region3Entry pgtable.Entry = 0x07
	// Region2Entry is _REGION2_ENTRY: type R2, table length 3.
	Region2Entry pgtable.Entry = 0x0b
	// Region1Entry is _REGION1_ENTRY: type R1, table length 3.
	Region1Entry pgtable.Entry = 0x0f

	// PTENone is an empty pte, _PAGE_INVALID.
	PTENone pgtable.Entry = 0x400
	// SegmentEmpty is _SEGMENT_ENTRY_EMPTY, _SEGMENT_ENTRY_INVALID.
	SegmentEmpty pgtable.Entry = 0x20
	// Region3Empty, Region2Empty and Region1Empty are
	// _REGION{3,2,1}_ENTRY_EMPTY: the table type with the invalid bit.
	Region3Empty pgtable.Entry = 0x24
	Region2Empty pgtable.Entry = 0x28
	Region1Empty pgtable.Entry = 0x2c
)

// Protections (pgtable.h), with page_noexec_mask and segment_noexec_mask
// keeping NOEXEC (the machine has the instruction-execution-protection
// facility).
const (
	PageNone     = Present | Invalid | Protect                                                  // __PAGE_NONE, 0x601
	PageRO       = Present | Read | NoExec | Invalid | Protect                                  // __PAGE_RO, 0x711
	PageRX       = Present | Read | Invalid | Protect                                           // __PAGE_RX, 0x611
	PageRW       = Present | Read | Write | NoExec | Invalid | Protect                          // __PAGE_RW, 0x731
	PageRWX      = Present | Read | Write | Invalid | Protect                                   // __PAGE_RWX, 0x631
	PageShared   = Present | Read | Write | Young | Dirty | NoExec                              // __PAGE_SHARED, 0x13d
	PageKernel   = Present | Read | Write | Young | Dirty | NoExec                              // __PAGE_KERNEL, 0x13d
	PageKernelRO = Present | Read | Young | Protect | NoExec                                    // __PAGE_KERNEL_RO, 0x315
	SegmentNone  = SegPresent | SegInvalid | SegProtect                                         // __SEGMENT_NONE
	SegmentRO    = SegPresent | SegProtect | SegRead | SegNoExec                                // __SEGMENT_RO
	SegmentRX    = SegPresent | SegProtect | SegRead                                            // __SEGMENT_RX
	SegmentRW    = SegPresent | SegRead | SegWrite | SegNoExec                                  // __SEGMENT_RW
	SegmentRWX   = SegPresent | SegRead | SegWrite                                              // __SEGMENT_RWX
	SegmentKern  = SegPresent | SegLarge | SegRead | SegWrite | SegYoung | SegDirty | SegNoExec // __SEGMENT_KERNEL
)

// protectionMap is s390's protection_map (arch/s390/mm/mmap.c,
// setup_protection_map).
var protectionMap = [16]pgtable.Entry{
	0:  PageNone,
	1:  PageRO,
	2:  PageRO,
	3:  PageRO,
	4:  PageRX,
	5:  PageRX,
	6:  PageRX,
	7:  PageRX,
	8:  PageNone,
	9:  PageRO,
	10: PageRW,
	11: PageRW,
	12: PageRX,
	13: PageRX,
	14: PageRWX,
	15: PageRWX,
}

// massagePgprotPMD is massage_pgprot_pmd: the segment protection for a
// page protection.
func massagePgprotPMD(p pgtable.Entry) pgtable.Entry {
	switch p {
	case PageNone:
		return SegmentNone
	case PageRO:
		return SegmentRO
	case PageRX:
		return SegmentRX
	case PageRW:
		return SegmentRW
	}
	return SegmentRWX
}

// pmdMkhuge is pmd_mkhuge: LARGE, YOUNG and PROTECT.
func pmdMkhuge(e pgtable.Entry) pgtable.Entry { return e | SegLarge | SegYoung | SegProtect }

// Geometry (pgtable.h).
const (
	// CRSTEntries is _CRST_ENTRIES, the entries of a region or segment
	// table (16 KiB, CRST_ALLOC_ORDER 2).
	CRSTEntries = 2048
	// PageEntries is _PAGE_ENTRIES, the entries of a page table (2 KiB).
	PageEntries = 256
	// ThreeLevelLimit is _REGION2_SIZE, the asce_limit of a 3-level mm:
	// a new mm maps [0, 4 TiB).
	ThreeLevelLimit = 1 << 42
	// FourLevelLimit is _REGION1_SIZE, the asce_limit of a 4-level mm.
	FourLevelLimit = 1 << 53
	// TaskSizeMax is TASK_SIZE_MAX, -PAGE_SIZE: the top of a 5-level mm.
	TaskSizeMax = 1<<64 - 1<<12
	// KernelLimit is the asce_limit of the kernel's 3-level ASCE.
	KernelLimit = ThreeLevelLimit
	// KernelVmemmap is where the model puts the vmemmap array: 3 TiB,
	// region-third aligned, above the identity map and below vmalloc.
	KernelVmemmap = 3 << 40
)

func format() pgtable.Format {
	pte := pgtable.Bits{
		AddrMask:           PageMask,
		Present:            Present,
		Invalid:            Invalid,
		Read:               Read,
		Write:              Write,
		RdOnly:             Protect,
		NoExec:             NoExec,
		Young:              Young,
		Dirty:              Dirty,
		Special:            Special,
		SoftDirty:          SoftDirty,
		DirtySetsSoftDirty: true,
	}
	huge := pgtable.Bits{
		AddrMask:           SegOriginLarge,
		Present:            SegPresent,
		Invalid:            SegInvalid,
		Read:               SegRead,
		Write:              SegWrite,
		RdOnly:             SegProtect,
		NoExec:             SegNoExec,
		Young:              SegYoung,
		Dirty:              SegDirty,
		SoftDirty:          SegSoftDirty,
		DirtySetsSoftDirty: true,
		LeafSet:            SegLarge,
	}
	f := pgtable.Format{
		PageShift:     12,
		PTE:           pte,
		Huge:          huge,
		TableAddrMask: RegionOrigin,
		Prots:         protectionMap,
		KernelRW:      PageKernel,
		KernelRO:      PageKernelRO,
		HugeKernelRW:  SegmentKern,
		PfnYoung:      true,
	}
	f.None = [pgtable.NumLevels]pgtable.Entry{
		pgtable.PGD: Region1Empty,
		pgtable.P4D: Region2Empty,
		pgtable.PUD: Region3Empty,
		pgtable.PMD: SegmentEmpty,
		pgtable.PTE: PTENone,
	}
	f.TableBits = [pgtable.NumLevels]pgtable.Entry{
		pgtable.PGD: Region1Entry,
		pgtable.P4D: Region2Entry,
		pgtable.PUD: Region3Entry,
		pgtable.PMD: SegmentEntry,
	}
	f.KernelTableBits = f.TableBits
	for i, p := range protectionMap {
		f.HugeProts[i] = pmdMkhuge(massagePgprotPMD(p))
	}
	f.HugeLevelBits[pgtable.PUD] = RegionTypeR3
	f.LeafLevels[pgtable.PMD] = true
	f.LeafLevels[pgtable.PUD] = true
	return f
}

// New returns the s390x descriptor.
func New() *arch.Arch {
	a := &arch.Arch{
		Name:   "s390x",
		Format: format(),
		Geometry: pgtable.Geometry{
			PageShift: 12,
			Tables: []pgtable.TableGeometry{
				{Level: pgtable.PGD, Shift: 53, Entries: CRSTEntries, Order: 2},
				{Level: pgtable.P4D, Shift: 42, Entries: CRSTEntries, Order: 2},
				{Level: pgtable.PUD, Shift: 31, Entries: CRSTEntries, Order: 2},
				{Level: pgtable.PMD, Shift: 20, Entries: CRSTEntries, Order: 2},
				{Level: pgtable.PTE, Shift: 12, Entries: PageEntries, Order: 0},
			},
			Shifts:    [pgtable.NumLevels]uint{53, 42, 31, 20, 12},
			MinTables: 3,
		},
		User: pgtable.Range{Start: 0, End: TaskSizeMax},
		// STACK_TOP is _REGION2_SIZE: mmap stays below the 3-level limit
		// unless asked for an address above it, which upgrades the mm.
		DefaultUserTop: ThreeLevelLimit,
		Kernel:         pgtable.Range{Start: 0, End: KernelLimit},
		DirectMap:      0,
		Vmemmap:        KernelVmemmap,
		Caps: arch.Caps{
			HugeSizes:                 []uint64{1 << 20, 2 << 30},
			LiveEntriesNeedInvalidate: true,
			StructPageSize:            64,
			GrowLevels:                true,
		},
		Costs: Costs,
	}
	a.NewTLBPolicy = newTLBPolicy
	a.NewPTEOps = NewPTEOps
	a.Caps.THPLevels[pgtable.PMD] = true
	return a
}
