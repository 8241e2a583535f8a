// Package um is the User-mode Linux backend: Linux running as a host
// process, its page tables emulated in software and its "TLB" the host
// address spaces of the processes that run each guest mm. Entry bits
// follow arch/um/include/asm/pgtable.h, the geometries
// pgtable-2level.h and the old pgtable-3level.h.
//
// Variants:
//   - "um" is 64-bit UML with 3 levels (PGDIR_SHIFT 30, PMD_SHIFT 21,
//     512 entries each, a 39-bit space), as CONFIG_3_LEVEL_PGTABLES laid
//     it out. The scenario-script contract fixes 3 levels for "um";
//     current Linux uses 4 on 64-bit (pgtable-4level.h, p4d folded,
//     shifts 39/30/21), which this model does not offer.
//   - "um32" is 32-bit UML with 2 levels (PGDIR_SHIFT 22, 1024 + 1024
//     entries; the PMD folded into the PGD).
//
// Quirks that matter to the model:
//   - Every pte written carries _PAGE_NEEDSYNC (set_pte sets it whatever
//     the value): the next TLB sync must (re)map or unmap the page in the
//     host. A clear stores NEEDSYNC alone (pte_clear, pmd_clear), and
//     pte_none, pmd_none and friends ignore the bit. So Format.SetAlways,
//     Format.None at every level and Format.NoneIgnore are all NEEDSYNC.
//     New tables are zeroed pages (Format.ZeroFill), which need no sync.
//   - Access and dirty state are emulated by the host mapping: a sync maps
//     an old page with no access and a clean one without write, so the
//     first access or write faults (Format.HWYoung and HWDirty false).
//   - Flushes resync host mappings with mmap and munmap: far more
//     expensive than a hardware TLB invalidation.
//   - No huge pages (no hugetlb, no THP, so no set_pmd_at), no special,
//     soft-dirty or uffd-wp bits, no NX bit, no HAVE_MOVE_PMD/PUD, no HVO.
//   - There is no PAGE_KERNEL_RO; the generic fallback makes it
//     PAGE_KERNEL.
//   - Table entries are _PAGE_TABLE plus the table's physical address for
//     kernel and user tables alike (pmd_populate_kernel and pmd_populate
//     both use _PAGE_TABLE; _KERNPG_TABLE, 0x1A1, appears only in
//     pmd_bad).
//
// TLB behaviour (TLBPolicy): the "TLB" is the host address space, one
// per mm and shared by every CPU running it. Entry writes and the flush
// calls (flush_tlb_page, flush_tlb_range; flush_tlb_mm for every VMA)
// only widen the mm's pending sync range; the sync runs before the mm is
// next used, and for kernel ranges at once. It costs one host syscall
// (host_syscalls: mmap of a present pte, munmap otherwise) per entry
// carrying _PAGE_NEEDSYNC, then clears the bit. The host mapping grants
// no access to an old page and no write to a clean one, so those
// accesses fault. There is no walk cache.
//
// Address space: arch/um/kernel/um_arch.c sets TASK_SIZE to the host's
// top of stack less the stub pages, limited to what the page table can
// address (PTRS_PER_PGD * PGDIR_SIZE) and rounded down to PGDIR_SIZE. For
// "um" that is the whole 39-bit space. For "um32" on a host with the 3/1
// GiB split (stack top 0xC0000000) it is 0xBFC00000. The kernel runs in
// the same host process as the guest's memory, linked at START
// (0x60000000 on x86-64, 0x08048000 on i386); its physical memory starts
// at uml_physmem, the page-aligned __binary_start, which serves as the
// direct map. UML uses FLATMEM: there is no virtual memmap, so Vmemmap is
// zero.
package um

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/pgtable"
)

// Entry bits (arch/um/include/asm/pgtable.h).
const (
	// Present is _PAGE_PRESENT.
	Present pgtable.Entry = 0x001
	// NeedSync is _PAGE_NEEDSYNC: the host mapping must be updated.
	NeedSync pgtable.Entry = 0x002
	// ProtNone is _PAGE_PROTNONE, meaningful only while Present is clear.
	ProtNone pgtable.Entry = 0x010
	// RW is _PAGE_RW.
	RW pgtable.Entry = 0x020
	// User is _PAGE_USER.
	User pgtable.Entry = 0x040
	// Accessed is _PAGE_ACCESSED.
	Accessed pgtable.Entry = 0x080
	// Dirty is _PAGE_DIRTY.
	Dirty pgtable.Entry = 0x100
	// SwpExclusive is _PAGE_SWP_EXCLUSIVE (swap entries only).
	SwpExclusive pgtable.Entry = 0x400

	// PageMask selects the frame address.
	PageMask pgtable.Entry = ^pgtable.Entry(0xfff)
)

// Protections and table flags (arch/um/include/asm/pgtable.h).
const (
	// PageTable is _PAGE_TABLE, the flags of every table entry (0x1E1).
	PageTable = Present | RW | User | Accessed | Dirty
	// KernPgTable is _KERNPG_TABLE (0x1A1), what pmd_bad expects.
	KernPgTable = Present | RW | Accessed | Dirty
	// PageNone is PAGE_NONE (0x90).
	PageNone = ProtNone | Accessed
	// PageShared is PAGE_SHARED (0xE1).
	PageShared = Present | RW | User | Accessed
	// PageCopy is PAGE_COPY, also PAGE_READONLY (0xC1).
	PageCopy = Present | User | Accessed
	// PageReadonly is PAGE_READONLY.
	PageReadonly = PageCopy
	// PageKernel is PAGE_KERNEL (0x1A1).
	PageKernel = Present | RW | Dirty | Accessed
)

// protectionMap is UML's protection_map: with no NX bit the executable
// columns equal the others.
var protectionMap = [16]pgtable.Entry{
	0:  PageNone,
	1:  PageReadonly,
	2:  PageCopy,
	3:  PageCopy,
	4:  PageReadonly,
	5:  PageReadonly,
	6:  PageCopy,
	7:  PageCopy,
	8:  PageNone,
	9:  PageReadonly,
	10: PageShared,
	11: PageShared,
	12: PageReadonly,
	13: PageReadonly,
	14: PageShared,
	15: PageShared,
}

// Address-space constants.
const (
	// TaskSize64 is TASK_SIZE for "um": PTRS_PER_PGD * PGDIR_SIZE, the
	// whole 3-level space (512 GiB).
	TaskSize64 = 512 << 30
	// TaskSize32 is TASK_SIZE for "um32" on a 3/1 GiB host: 0xC0000000
	// less the stub pages, rounded down to the 4 MiB PGDIR_SIZE.
	TaskSize32 = 0xbfc0_0000
	// Start64 and Start32 are START, where the UML kernel is linked, and
	// so uml_physmem, the start of its physical memory.
	Start64 = 0x6000_0000
	Start32 = 0x0804_8000
)

func format() pgtable.Format {
	bits := pgtable.Bits{
		AddrMask: PageMask,
		Present:  Present | ProtNone,
		Valid:    Present,
		Write:    RW,
		User:     User,
		Young:    Accessed,
		Dirty:    Dirty,
	}
	f := pgtable.Format{
		PageShift:     12,
		PTE:           bits,
		Huge:          bits,
		NoneIgnore:    NeedSync,
		SetAlways:     NeedSync,
		ZeroFill:      true,
		TableAddrMask: PageMask,
		Prots:         protectionMap,
		KernelRW:      PageKernel,
		KernelRO:      PageKernel, // no PAGE_KERNEL_RO: the generic fallback
		HugeKernelRW:  PageKernel,
	}
	for l := range f.None {
		f.None[l] = NeedSync
		f.TableBits[l] = PageTable
		f.KernelTableBits[l] = PageTable
	}
	// No huge leaves at all: HugeProts stay zero and LeafLevels false.
	return f
}

// Variant selects 64-bit (3 levels) or 32-bit (2 levels) UML.
type Variant int

const (
	// UM64 is "um": 64-bit, 3 levels, 39-bit space.
	UM64 Variant = iota
	// UM32 is "um32": 32-bit, 2 levels.
	UM32
)

// New returns the UML descriptor for v.
func New(v Variant) *arch.Arch {
	a := &arch.Arch{
		Format: format(),
		Caps:   arch.Caps{StructPageSize: 64},
		Costs:  Costs,
	}
	a.NewTLBPolicy = newTLBPolicy
	if v == UM32 {
		a.Name = "um32"
		a.Geometry = pgtable.Geometry{
			PageShift: 12,
			Tables: []pgtable.TableGeometry{
				{Level: pgtable.PMD, Shift: 22, Entries: 1024},
				{Level: pgtable.PTE, Shift: 12, Entries: 1024},
			},
			Shifts: [pgtable.NumLevels]uint{22, 22, 22, 22, 12},
		}
		a.User = pgtable.Range{Start: 0, End: TaskSize32}
		a.Kernel = pgtable.Range{Start: Start32, End: TaskSize32}
		a.DirectMap = Start32
		// sizeof(struct page) is 32 bytes on 32-bit kernels.
		a.Caps.StructPageSize = 32
		return a
	}
	a.Name = "um"
	a.Geometry = pgtable.Geometry{
		PageShift: 12,
		Tables: []pgtable.TableGeometry{
			{Level: pgtable.PUD, Shift: 30, Entries: 512},
			{Level: pgtable.PMD, Shift: 21, Entries: 512},
			{Level: pgtable.PTE, Shift: 12, Entries: 512},
		},
		Shifts: [pgtable.NumLevels]uint{30, 30, 30, 21, 12},
	}
	a.User = pgtable.Range{Start: 0, End: TaskSize64}
	a.Kernel = pgtable.Range{Start: Start64, End: TaskSize64}
	a.DirectMap = Start64
	return a
}
