// Package sparc is the sparc64 backend, modelled on a sun4u UltraSPARC III
// "Cheetah+" machine: 8 KiB pages, four levels of 1024 entries (the p4d
// folded into the pgd) covering a 53-bit tree, and the sun4u TTE bit
// layout of arch/sparc/include/asm/pgtable_64.h with the protections of
// arch/sparc/mm/init_64.c (sun4u_pgprot_init).
//
// Why sun4u: the D-cache aliasing that move_pte handles exists only there.
// The sun4u L1 D-cache is virtually indexed with 16 KiB per way, so with
// 8 KiB pages virtual address bit 13 is the page's cache colour
// (DCACHE_ALIASING_POSSIBLE), and move_pte flushes a page from the D-cache
// when mremap moves it to the other colour. sun4v machines
// (tlb_type == hypervisor) skip the flush.
//
// Quirks that matter to the model:
//   - Young and dirty are emulated. _PAGE_R, the reference bit, is the TTE
//     valid bit (bit 63), so pte_mkold makes the entry invalid to the MMU
//     and the next access faults (Bits.YoungValid). The hardware writable
//     bit _PAGE_W_4U is set only while the software WRITE and MODIFIED
//     bits both are, so the first write to a clean page faults
//     (Bits.HWWrite). Format.HWYoung and HWDirty are false.
//   - PROT_NONE is PRESENT without VALID; sparc64 has no NUMA balancing.
//   - Upper-level table entries hold the bare physical address of the
//     next table (pmd_set, pud_set): no flag bits.
//   - Huge leaves use the pte layout plus _PAGE_PMD_HUGE (bit 56) and the
//     4 MiB size bits (pmd_mkhuge is pte_mkhuge, which sets _PAGE_SZHUGE,
//     plus _PAGE_PMD_HUGE): an 8 MiB THP or hugetlb page is two 4 MiB
//     TTEs (HPAGE_SHIFT 23, REAL_HPAGE_SHIFT 22). The model takes both as
//     the leaf marker (Bits.LeafSet), so a huge leaf converts to a pte and
//     back exactly; Linux's pmd_leaf tests the PMD_HUGE bit alone.
//   - Hugetlb sizes on Cheetah+: 64 KiB (a run of 8 KiB ptes with the
//     64 KiB size bits) and 8 MiB. The 256 MiB size needs Panther
//     (UltraSPARC IV+) and 2 GiB and 16 GiB need sun4v.
//   - No soft-dirty, no uffd-wp, no contiguous hint, no HAVE_MOVE_PMD/PUD,
//     no HVO (sparc does not select ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP).
//   - sparc64 defines no PAGE_KERNEL_RO, so the generic fallback makes it
//     PAGE_KERNEL (include/linux/pgtable.h): kernel read-only mappings are
//     writable here too.
//
// TLB behaviour (TLBPolicy): flush_tlb_page, flush_tlb_range and
// flush_tlb_mm are empty. A store over a valid pte queues its address
// in the issuing CPU's batch (tlb_batch_add, up to 192 addresses) inside
// a lazy-MMU section and flushes it at once outside one; the batch is
// flushed when full, when the section ends, at the mmu_gather's flush
// and at a task switch. A flush demaps the addresses (and their TSB
// entries) on the issuing CPU and cross-calls the other CPUs of the mm's
// cpumask (tlb_demaps, tlb_ipis), unless the mm is the issuing CPU's
// own with no other user. tlb_batch_add also flushes a dirty page-cache
// page from the D-cache when its kernel alias has another colour
// (dcache_flushes). The MMU has no hardware walker, so no walk cache.
//
// Address space: setup_page_offset gives Cheetah and Panther the VA hole
// [VAHoleBottom, VAHoleTop) = [1<<52, -(1<<52)), so 53 bits are usable,
// which the 4-level tree covers exactly. Mappings keep 4 GiB away from
// the hole (VA_EXCLUDE_START and VA_EXCLUDE_END). The model's user space
// is the lower half, [0, VAExcludeStart); 64-bit stacks live there too
// (STACK_TOP64 is below 8 TiB). The kernel runs in a context of its own
// (the nucleus context), so its addresses overlap user ones: vmalloc
// starts at 4 GiB, vmemmap at VMALLOC_END = 3/4 of the hole bottom, and
// the linear map at PAGE_OFFSET = the hole top. The kernel range is
// therefore [VMALLOC_START, top of memory), across the hole, which
// nothing maps.
package sparc

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
)

// TTE bits common to sun4u and sun4v (pgtable_64.h).
const (
	// Valid is _PAGE_VALID, bit 63.
	Valid pgtable.Entry = 1 << 63
	// R is _PAGE_R, the reference bit: the same bit as Valid.
	R = Valid
	// Special is _PAGE_SPECIAL, bit 57.
	Special pgtable.Entry = 1 << 57
	// PMDHuge is _PAGE_PMD_HUGE (and _PAGE_PUD_HUGE), bit 56.
	PMDHuge pgtable.Entry = 1 << 56
)

// sun4u TTE bits (pgtable_64.h).
const (
	// SZ4MB is _PAGE_SZ4MB_4U, the 4 MiB size (bits 62:61 = 0b11), which
	// is _PAGE_SZHUGE_4U.
	SZ4MB pgtable.Entry = 0x6000_0000_0000_0000
	// SZ64K is _PAGE_SZ64K_4U.
	SZ64K pgtable.Entry = 0x2000_0000_0000_0000
	// PAddr is _PAGE_PADDR_4U, physical address bits 42:13.
	PAddr pgtable.Entry = 0x0000_07ff_ffff_e000
	// Exec is _PAGE_EXEC_4U (software).
	Exec pgtable.Entry = 0x1000
	// Modified is _PAGE_MODIFIED_4U, the software dirty bit.
	Modified pgtable.Entry = 0x800
	// Accessed is _PAGE_ACCESSED_4U, the software young bit.
	Accessed pgtable.Entry = 0x400
	// Read is _PAGE_READ_4U (software).
	Read pgtable.Entry = 0x200
	// Write is _PAGE_WRITE_4U, the software write permission.
	Write pgtable.Entry = 0x100
	// Present is _PAGE_PRESENT_4U.
	Present pgtable.Entry = 0x80
	// L is _PAGE_L_4U, locked in the TLB.
	L pgtable.Entry = 0x40
	// CP and CV are _PAGE_CP_4U and _PAGE_CV_4U, cacheable in the
	// physically and the virtually indexed caches.
	CP pgtable.Entry = 0x20
	CV pgtable.Entry = 0x10
	// E is _PAGE_E_4U, side effect.
	E pgtable.Entry = 0x8
	// P is _PAGE_P_4U, privileged: kernel-only.
	P pgtable.Entry = 0x4
	// W is _PAGE_W_4U, the hardware writable bit.
	W pgtable.Entry = 0x2
)

// Protections (arch/sparc/mm/init_64.c, sun4u_pgprot_init).
const (
	// cache4U is _PAGE_CACHE_4U.
	cache4U = CP | CV
	// accessBits is __ACCESS_BITS_4U: young, readable and valid.
	accessBits = Accessed | Read | R
	// dirtyBits is __DIRTY_BITS_4U: dirty and writable in software and
	// hardware.
	dirtyBits = Modified | Write | W
	// pageExecBit is page_exec_bit, dropped from the entries without
	// VM_EXEC.
	pageExecBit = Exec

	// PageNone is page_none (0x4b0): present and young but not valid.
	PageNone = Present | Accessed | cache4U
	// PageShared is page_shared: writable in software, clean, so the
	// hardware W bit is clear until the first write fault.
	PageShared = Valid | Present | cache4U | accessBits | Write | Exec
	// PageCopy is page_copy, the private writable protection before COW.
	PageCopy = Valid | Present | cache4U | accessBits | Exec
	// PageRO is page_readonly.
	PageRO = PageCopy
	// PageKernel is PAGE_KERNEL on sun4u, 0x8000000000001fb6.
	PageKernel = Present | Valid | cache4U | P | accessBits | dirtyBits | Exec
)

// protectionMap is sparc64's protection_map as prot_init_common fills it
// (sun4u values): the entries without VM_EXEC drop the EXEC bit, private
// writable mappings get PAGE_COPY.
var protectionMap = [16]pgtable.Entry{
	0x0: PageNone,
	0x1: PageRO &^ pageExecBit,
	0x2: PageCopy &^ pageExecBit,
	0x3: PageCopy &^ pageExecBit,
	0x4: PageRO,
	0x5: PageRO,
	0x6: PageCopy,
	0x7: PageCopy,
	0x8: PageNone,
	0x9: PageRO &^ pageExecBit,
	0xa: PageShared &^ pageExecBit,
	0xb: PageShared &^ pageExecBit,
	0xc: PageRO,
	0xd: PageRO,
	0xe: PageShared,
	0xf: PageShared,
}

// Geometry and address space (page_64.h, pgtable_64.h, init_64.c).
const (
	// PageShift is PAGE_SHIFT: 8 KiB pages.
	PageShift = 13
	// PtrsPerTable is PTRS_PER_PTE, PTRS_PER_PMD, PTRS_PER_PUD and
	// PTRS_PER_PGD.
	PtrsPerTable = 1024
	// HPageShift is HPAGE_SHIFT (8 MiB) and RealHPageShift
	// REAL_HPAGE_SHIFT (the 4 MiB TTE).
	HPageShift     = 23
	RealHPageShift = 22
	// VAHoleBottom and VAHoleTop bound the VA hole of Cheetah/Panther
	// (sparc64_va_hole_bottom and _top): 53 usable bits.
	VAHoleBottom = 0x0010_0000_0000_0000
	VAHoleTop    = 0xfff0_0000_0000_0000
	// VAExcludeStart and VAExcludeEnd keep mappings 4 GiB away from the
	// hole (VA_EXCLUDE_START, VA_EXCLUDE_END).
	VAExcludeStart = VAHoleBottom - 1<<32
	VAExcludeEnd   = VAHoleTop + 1<<32
	// PageOffset is PAGE_OFFSET, the linear map: the hole top.
	PageOffset = VAHoleTop
	// VmallocStart is VMALLOC_START.
	VmallocStart = 0x0000_0001_0000_0000
	// VmemmapBase is VMEMMAP_BASE = VMALLOC_END, 3/4 of the hole bottom.
	VmemmapBase = VAHoleBottom>>1 + VAHoleBottom>>2
	// ColourBit is the virtual address bit that selects the D-cache
	// colour of a page (1 << 13).
	ColourBit = 1 << PageShift
)

func format() pgtable.Format {
	pte := pgtable.Bits{
		AddrMask:   PAddr,
		Present:    Present,
		Valid:      Valid,
		YoungValid: true,
		Read:       Read,
		Write:      Write,
		HWWrite:    W,
		Priv:       P,
		Exec:       Exec,
		Young:      Accessed,
		Dirty:      Modified,
		Special:    Special,
	}
	huge := pte
	huge.LeafSet = PMDHuge | SZ4MB
	f := pgtable.Format{
		PageShift:     PageShift,
		PTE:           pte,
		Huge:          huge,
		TableAddrMask: PAddr,
		Prots:         protectionMap,
		KernelRW:      PageKernel,
		KernelRO:      PageKernel, // no PAGE_KERNEL_RO: the generic fallback
		HugeKernelRW:  PageKernel | PMDHuge | SZ4MB,
	}
	for i, p := range protectionMap {
		f.HugeProts[i] = p | PMDHuge | SZ4MB // pmd_mkhuge
	}
	f.LeafLevels[pgtable.PMD] = true
	return f
}

// MovePTE is sparc64's move_pte for sun4u: mremap moving a present pte to
// an address of the other D-cache colour flushes its folio from the
// D-cache of every CPU (flush_dcache_folio_all), counted as one
// DcacheFlushes event on m (the trace shows the new address and the
// frame). The entry is returned unchanged. Linux also checks pfn_valid;
// every frame the model maps is valid memory.
// Precondition: the caller moves e, a pte, from oldAddr to newAddr.
func MovePTE(m *cost.Meter, e pgtable.Entry, oldAddr, newAddr uint64) pgtable.Entry {
	if e&Present == 0 {
		return e
	}
	if (oldAddr^newAddr)&ColourBit != 0 && m != nil {
		m.Note(cost.DcacheFlushes, 1, newAddr, uint64(e&PAddr)>>PageShift)
	}
	return e
}

// New returns the sparc64 (sun4u, Cheetah+) descriptor.
func New() *arch.Arch {
	a := &arch.Arch{
		Name:   "sparc64",
		Format: format(),
		Geometry: pgtable.Geometry{
			PageShift: PageShift,
			Tables: []pgtable.TableGeometry{
				{Level: pgtable.P4D, Shift: 43, Entries: PtrsPerTable},
				{Level: pgtable.PUD, Shift: 33, Entries: PtrsPerTable},
				{Level: pgtable.PMD, Shift: 23, Entries: PtrsPerTable},
				{Level: pgtable.PTE, Shift: 13, Entries: PtrsPerTable},
			},
			Shifts: [pgtable.NumLevels]uint{43, 43, 33, 23, 13},
		},
		User:      pgtable.Range{Start: 0, End: VAExcludeStart},
		Kernel:    pgtable.Range{Start: VmallocStart},
		DirectMap: PageOffset,
		Vmemmap:   VmemmapBase,
		Caps: arch.Caps{
			HugeSizes:      []uint64{64 << 10, 8 << 20},
			DcacheAliasing: true,
			StructPageSize: 64,
		},
		Costs:   Costs,
		MovePTE: MovePTE,
	}
	a.NewTLBPolicy = newTLBPolicy
	a.NewPTEOps = NewPTEOps
	a.Caps.THPLevels[pgtable.PMD] = true
	return a
}
