// Package arm64 is the AArch64 backend: the 4 KiB, 16 KiB and 64 KiB
// translation granules with a 48-bit virtual address space, entry bits as
// Linux lays them out today (arch/arm64/include/asm/pgtable-hwdef.h,
// pgtable-prot.h, pgtable.h), the protection_map of arch/arm64/mm/mmap.c
// and the table-entry values of asm/pgalloc.h.
//
// Quirks that matter to the model:
//   - Dirty state lives in three bits: the software PTE_DIRTY (bit 55), the
//     write permission PTE_WRITE, which is the hardware DBM bit (bit 51),
//     and the read-only bit PTE_RDONLY (bit 7). A writable entry whose
//     RDONLY bit is clear is dirty ("hardware dirty"); pte_wrprotect moves
//     that state into PTE_DIRTY before it sets RDONLY, and
//     pte_mkwrite_novma clears RDONLY only of an entry with PTE_DIRTY set
//     (Linux 6.18, "arm64, mm: avoid always making PTE dirty in
//     pte_mkwrite()": before it, mkwrite made every entry hardware-dirty,
//     so mprotect giving write permission back dirtied clean pages).
//   - PROT_NONE is "present but invalid": VALID clear and
//     PTE_PRESENT_INVALID (bit 11, the nG bit of a valid entry) set.
//   - Block (huge) leaves use the page layout with the descriptor type
//     0b01 instead of 0b11: pmd_mkhuge clears bit 1 and leaves VALID as it
//     was.
//   - The contiguous hint PTE_CONT (bit 52) marks CONT_PTES aligned entries
//     that map one contiguous block (16, 128 or 32 by granule); package
//     contpte manages it.
//   - The model assumes FEAT_HAFDBS: the MMU sets the access flag and
//     clears RDONLY of a DBM entry on the first write, so Format.HWYoung
//     and Format.HWDirty are true. Linux works without the feature too
//     (arch_has_hw_pte_young is cpu_has_hw_af), faulting instead.
//   - No soft-dirty: arm64 does not select HAVE_ARCH_SOFT_DIRTY.
//   - Physical addresses are 48 bits (no LPA2, no 52-bit PA).
//
// TLB behaviour (TLBPolicy): TLBI instructions are broadcast by the
// hardware to every CPU of the inner-shareable domain, so flushes send
// no IPIs and ignore mm_cpumask; each flush is a DSB ISHST, TLBIs, and a
// DSB ISH (tlbi_ops, tlb_syncs). flush_tlb_page is TLBI VALE1IS and
// flush_tlb_mm TLBI ASIDE1IS; flush_tlb_range issues one TLBI VAE1IS per
// stride, or range TLBIs with FEAT_TLBIRANGE (Platform.RangeTLBI), and
// falls back to flush_tlb_mm at MAX_DVM_OPS strides (PTRS_PER_PTE: 512,
// 2048, 8192 by granule) or above MAX_TLBI_RANGE_PAGES pages. Every entry
// write is checked for break-before-make, relaxed by BBML2
// (Platform.BBML2).
//
// Memory layout (48-bit VA): PAGE_OFFSET = -(1 << 48), the start of the
// TTBR1 half, and VMEMMAP_START = VMEMMAP_END - VMEMMAP_SIZE with
// VMEMMAP_END = -1 GiB and VMEMMAP_SIZE = (1<<47 >> PAGE_SHIFT) *
// sizeof(struct page), as arch/arm64/include/asm/memory.h defines them
// today. Documentation/arch/arm64/memory.rst no longer carries layout
// tables; the 48-bit 4 KiB table it had until they were removed gives the
// same PAGE_OFFSET and user range but the older vmemmap placement,
// 0xfffffc0000000000 (2 TiB below the top), from before vmemmap moved up
// under VMEMMAP_END.
package arm64

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/pgtable"
)

// Descriptor bits (pgtable-hwdef.h, pgtable-prot.h).
const (
	// Valid is PTE_VALID: the MMU may use the descriptor.
	Valid pgtable.Entry = 1 << 0
	// TypeTable is bit 1: set in table and page descriptors (type 0b11),
	// clear in block descriptors (type 0b01).
	TypeTable pgtable.Entry = 1 << 1
	// TypeMask is PTE_TYPE_MASK, bits 1:0.
	TypeMask pgtable.Entry = 3
	// User is PTE_USER (AP[1]): EL0 may access the page.
	User pgtable.Entry = 1 << 6
	// RdOnly is PTE_RDONLY (AP[2]): the hardware write protection.
	RdOnly pgtable.Entry = 1 << 7
	// Shared is PTE_SHARED, inner shareable (bits 9:8).
	Shared pgtable.Entry = 3 << 8
	// AF is PTE_AF, the access flag (young).
	AF pgtable.Entry = 1 << 10
	// NG is PTE_NG, not global; in an invalid entry the same bit is
	// PTE_PRESENT_INVALID.
	NG pgtable.Entry = 1 << 11
	// PresentInvalid is PTE_PRESENT_INVALID: present to software, invalid
	// to the MMU (PROT_NONE, pmd_mkinvalid).
	PresentInvalid = NG
	// DBM is PTE_DBM, hardware dirty-bit management; Linux uses it as the
	// software write bit PTE_WRITE.
	DBM pgtable.Entry = 1 << 51
	// Write is PTE_WRITE, the same bit as DBM.
	Write = DBM
	// Cont is PTE_CONT, the contiguous hint.
	Cont pgtable.Entry = 1 << 52
	// PXN and UXN forbid execution at EL1 and EL0.
	PXN pgtable.Entry = 1 << 53
	UXN pgtable.Entry = 1 << 54
	// Dirty is the software PTE_DIRTY.
	Dirty pgtable.Entry = 1 << 55
	// Special is PTE_SPECIAL.
	Special pgtable.Entry = 1 << 56
	// UffdWP is PTE_UFFD_WP (with HAVE_ARCH_USERFAULTFD_WP).
	UffdWP pgtable.Entry = 1 << 58
	// TablePXN and TableUXN are the hierarchical execute-never bits of a
	// table descriptor (PMD_TABLE_PXN, PMD_TABLE_UXN).
	TablePXN pgtable.Entry = 1 << 59
	TableUXN pgtable.Entry = 1 << 60

	// PABits is the physical address size the model uses (no LPA2).
	PABits = 48
)

// Table entry flags (asm/pgalloc.h: __pmd_populate and friends).
const (
	// UserTable is what pmd_populate, pud_populate and p4d_populate OR
	// into a user table entry: PMD_TYPE_TABLE | PMD_TABLE_AF |
	// PMD_TABLE_PXN.
	UserTable = TypeMask | AF | TablePXN
	// KernelTable is the same for init_mm: PMD_TABLE_UXN instead of PXN.
	KernelTable = TypeMask | AF | TableUXN
)

// Protections (pgtable-prot.h), without LPA2 and with nG off for kernel
// mappings (arm64_use_ng_mappings false).
const (
	// pageDefault is _PAGE_DEFAULT: TYPE_PAGE | AF | SHARED |
	// ATTRINDX(MT_NORMAL).
	pageDefault = TypeMask | AF | Shared
	// PageNone is PAGE_NONE: present-invalid, read-only, execute-never.
	PageNone = (pageDefault &^ Valid) | PresentInvalid | RdOnly | NG | PXN | UXN
	// PageShared is PAGE_SHARED: writable but clean (RDONLY set).
	PageShared = pageDefault | User | RdOnly | NG | PXN | UXN | Write
	// PageSharedExec is PAGE_SHARED_EXEC.
	PageSharedExec = pageDefault | User | RdOnly | NG | PXN | Write
	// PageReadonly is PAGE_READONLY.
	PageReadonly = pageDefault | User | RdOnly | NG | PXN | UXN
	// PageReadonlyExec is PAGE_READONLY_EXEC.
	PageReadonlyExec = pageDefault | User | RdOnly | NG | PXN
	// PageKernel is PAGE_KERNEL (PROT_NORMAL): writable and hardware-dirty.
	PageKernel = TypeMask | Shared | AF | PXN | UXN | Write
	// PageKernelRO is PAGE_KERNEL_RO.
	PageKernelRO = (PageKernel &^ Write) | RdOnly
	// ProtSectNormal is PROT_SECT_NORMAL, a kernel block mapping.
	ProtSectNormal = PageKernel &^ TypeTable
)

// protectionMap is arm64's protection_map (arch/arm64/mm/mmap.c), without
// Enhanced PAN (which would make VM_EXEC alone PAGE_EXECONLY). Private
// writable mappings get PAGE_READONLY until the COW fault.
var protectionMap = [16]pgtable.Entry{
	0:  PageNone,
	1:  PageReadonly,
	2:  PageReadonly,
	3:  PageReadonly,
	4:  PageReadonlyExec,
	5:  PageReadonlyExec,
	6:  PageReadonlyExec,
	7:  PageReadonlyExec,
	8:  PageNone,
	9:  PageReadonly,
	10: PageShared,
	11: PageShared,
	12: PageReadonlyExec,
	13: PageReadonlyExec,
	14: PageSharedExec,
	15: PageSharedExec,
}

// Granule selects the translation granule.
type Granule int

const (
	// Granule4K is 4 KiB pages, 4 levels of 512 entries, 48-bit VA.
	Granule4K Granule = iota
	// Granule16K is 16 KiB pages, 4 levels: a 2-entry top table, then
	// 2048 entries per table.
	Granule16K
	// Granule64K is 64 KiB pages, 3 levels: a 64-entry top table, then
	// 8192 entries per table; the PUD is folded.
	Granule64K
)

// granule holds what differs between the granules.
type granule struct {
	// name is the arch name scripts use.
	name string
	// pageShift is PAGE_SHIFT.
	pageShift uint
	// tables is the table geometry, root first.
	tables []pgtable.TableGeometry
	// shifts gives every Linux level's shift.
	shifts [pgtable.NumLevels]uint
	// contPTEs is CONT_PTES.
	contPTEs int
	// hugeSizes are the hugetlb sizes: CONT_PTE, PMD, CONT_PMD, PUD.
	hugeSizes []uint64
	// pudLeaves is set when PUD block descriptors exist (4K only).
	pudLeaves bool
}

var granules = [...]granule{
	Granule4K: {
		name:      "arm64",
		pageShift: 12,
		tables: []pgtable.TableGeometry{
			{Level: pgtable.P4D, Shift: 39, Entries: 512},
			{Level: pgtable.PUD, Shift: 30, Entries: 512},
			{Level: pgtable.PMD, Shift: 21, Entries: 512},
			{Level: pgtable.PTE, Shift: 12, Entries: 512},
		},
		shifts:    [pgtable.NumLevels]uint{39, 39, 30, 21, 12},
		contPTEs:  16,
		hugeSizes: []uint64{64 << 10, 2 << 20, 32 << 20, 1 << 30},
		pudLeaves: true,
	},
	Granule16K: {
		name:      "arm64-16k",
		pageShift: 14,
		tables: []pgtable.TableGeometry{
			{Level: pgtable.P4D, Shift: 47, Entries: 2},
			{Level: pgtable.PUD, Shift: 36, Entries: 2048},
			{Level: pgtable.PMD, Shift: 25, Entries: 2048},
			{Level: pgtable.PTE, Shift: 14, Entries: 2048},
		},
		shifts:    [pgtable.NumLevels]uint{47, 47, 36, 25, 14},
		contPTEs:  128,
		hugeSizes: []uint64{2 << 20, 32 << 20, 1 << 30},
	},
	Granule64K: {
		name:      "arm64-64k",
		pageShift: 16,
		tables: []pgtable.TableGeometry{
			{Level: pgtable.PUD, Shift: 42, Entries: 64},
			{Level: pgtable.PMD, Shift: 29, Entries: 8192},
			{Level: pgtable.PTE, Shift: 16, Entries: 8192},
		},
		shifts:    [pgtable.NumLevels]uint{42, 42, 42, 29, 16},
		contPTEs:  32,
		hugeSizes: []uint64{2 << 20, 512 << 20, 16 << 30},
	},
}

// Memory layout for a 48-bit VA (arch/arm64/include/asm/memory.h).
const (
	// VABits is VA_BITS.
	VABits = 48
	// PageOffset is PAGE_OFFSET, -(1 << VA_BITS): the linear map and the
	// start of the kernel (TTBR1) half.
	PageOffset = 0xffff_0000_0000_0000
	// VmemmapEnd is VMEMMAP_END, -1 GiB.
	VmemmapEnd = 0xffff_ffff_c000_0000
	// structPageSize is sizeof(struct page) (STRUCT_PAGE_MAX_SHIFT 6).
	structPageSize = 64
)

// VmemmapStart returns VMEMMAP_START for a page shift: VMEMMAP_END less
// one struct page per page of the 128 TiB linear map.
func VmemmapStart(pageShift uint) uint64 {
	return VmemmapEnd - (uint64(1)<<(VABits-1))>>pageShift*structPageSize
}

// addrMask returns the output-address bits [47:PAGE_SHIFT].
func addrMask(pageShift uint) pgtable.Entry {
	return pgtable.Entry((uint64(1)<<PABits - 1) &^ (uint64(1)<<pageShift - 1))
}

func format(g *granule) pgtable.Format {
	am := addrMask(g.pageShift)
	bits := pgtable.Bits{
		AddrMask: am,
		Present:  Valid | PresentInvalid,
		Valid:    Valid,
		Write:    Write,
		RdOnly:   RdOnly,
		DBM:      true,
		User:     User,
		NoExec:   UXN,
		Young:    AF,
		Dirty:    Dirty,
		Special:  Special,
		UffdWP:   UffdWP,
		Cont:     Cont,
	}
	huge := bits
	huge.LeafClear = TypeTable
	f := pgtable.Format{
		PageShift:     g.pageShift,
		PTE:           bits,
		Huge:          huge,
		TableAddrMask: am,
		Prots:         protectionMap,
		KernelRW:      PageKernel,
		KernelRO:      PageKernelRO,
		HugeKernelRW:  ProtSectNormal,
		HWYoung:       true,
		HWDirty:       true,
	}
	for i, p := range protectionMap {
		// pmd_mkhuge: type SECT, VALID as it was.
		f.HugeProts[i] = p &^ TypeTable
	}
	for l := range f.TableBits {
		f.TableBits[l] = UserTable
		f.KernelTableBits[l] = KernelTable
	}
	f.LeafLevels[pgtable.PMD] = true
	f.LeafLevels[pgtable.PUD] = g.pudLeaves
	return f
}

// New returns the arm64 descriptor for granule gr with a 48-bit VA; an
// unknown granule gives the 4 KiB descriptor.
func New(gr Granule) *arch.Arch {
	if gr < Granule4K || gr > Granule64K {
		gr = Granule4K
	}
	g := &granules[gr]
	a := &arch.Arch{
		Name:   g.name,
		Format: format(g),
		Geometry: pgtable.Geometry{
			PageShift: g.pageShift,
			Tables:    append([]pgtable.TableGeometry(nil), g.tables...),
			Shifts:    g.shifts,
		},
		// TASK_SIZE_64 is 1 << VA_BITS (DEFAULT_MAP_WINDOW_64 too at 48
		// bits).
		User:      pgtable.Range{Start: 0, End: 1 << VABits},
		Kernel:    pgtable.Range{Start: PageOffset},
		DirectMap: PageOffset,
		Vmemmap:   VmemmapStart(g.pageShift),
		Caps: arch.Caps{
			HaveMovePMD: true,
			HaveMovePUD: true,
			HugeSizes:   append([]uint64(nil), g.hugeSizes...),
			ContPTEs:    g.contPTEs,
			// arm64 does not select ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP:
			// vmemmap_split_pmd's pmd_populate_kernel over a live PMD
			// breaks break-before-make (disabled in 060a2c92d1b6, still
			// off in the Oct 2025 s390 HVO thread).
			OptimizeVmemmap: false,
			StructPageSize:  structPageSize,
			// arch_wants_old_prefaulted_pte is cpu_has_hw_af(), true
			// with the FEAT_HAFDBS the model assumes.
			OldPrefaultedPTEs: true,
		},
		Costs: Costs,
	}
	a.NewPTEOps = NewPTEOps
	a.NewTLBPolicy = tlbPolicyFor(g.pageShift)
	a.Caps.THPLevels[pgtable.PMD] = true
	return a
}
