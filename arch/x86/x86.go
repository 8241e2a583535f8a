// Package x86 is the x86-64 backend: 4-level paging (48-bit VA) and 5-level
// paging with LA57 (57-bit VA), 4 KiB pages, 2 MiB and 1 GiB leaves, entry
// bits as arch/x86/include/asm/pgtable_types.h lays them out.
package x86

import (
	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// Entry bits (pgtable_types.h).
const (
	Present    pgtable.Entry = 1 << 0
	RW         pgtable.Entry = 1 << 1
	User       pgtable.Entry = 1 << 2
	PWT        pgtable.Entry = 1 << 3
	PCD        pgtable.Entry = 1 << 4
	Accessed   pgtable.Entry = 1 << 5
	Dirty      pgtable.Entry = 1 << 6
	PSE        pgtable.Entry = 1 << 7
	Global     pgtable.Entry = 1 << 8
	ProtNone   pgtable.Entry = Global // meaningful only while Present is clear
	Special    pgtable.Entry = 1 << 9
	UffdWP     pgtable.Entry = 1 << 10
	SoftDirty  pgtable.Entry = 1 << 11
	SavedDirty pgtable.Entry = 1 << 58
	NX         pgtable.Entry = 1 << 63

	// PFNMask is PTE_PFN_MASK: physical address bits 12..51.
	PFNMask pgtable.Entry = 0x000f_ffff_ffff_f000
	// Table is _PAGE_TABLE, the flags of every table entry.
	Table = Present | RW | User | Accessed | Dirty
)

// Protections (pgtable_types.h, arch/x86/mm/pgprot.c).
const (
	pageNone         = Accessed | ProtNone
	pageShared       = Present | RW | User | Accessed | NX
	pageSharedExec   = Present | RW | User | Accessed
	pageReadonly     = Present | User | Accessed | NX
	pageReadonlyExec = Present | User | Accessed
	pageKernel       = Present | RW | Accessed | Dirty | Global | NX
	pageKernelRO     = Present | Accessed | Global | NX
)

// protectionMap is x86's protection_map, indexed by VM_READ|VM_WRITE|
// VM_EXEC|VM_SHARED. Private writable mappings get PAGE_COPY, which is
// read-only until the COW fault.
var protectionMap = [16]pgtable.Entry{
	0:  pageNone,
	1:  pageReadonly,
	2:  pageReadonly, // PAGE_COPY
	3:  pageReadonly, // PAGE_COPY
	4:  pageReadonlyExec,
	5:  pageReadonlyExec,
	6:  pageReadonlyExec, // PAGE_COPY_EXEC
	7:  pageReadonlyExec, // PAGE_COPY_EXEC
	8:  pageNone,
	9:  pageReadonly,
	10: pageShared,
	11: pageShared,
	12: pageReadonlyExec,
	13: pageReadonlyExec,
	14: pageSharedExec,
	15: pageSharedExec,
}

func format() pgtable.Format {
	bits := pgtable.Bits{
		AddrMask:           PFNMask,
		Present:            Present | ProtNone,
		Valid:              Present,
		Write:              RW,
		SavedDirty:         SavedDirty,
		User:               User,
		NoExec:             NX,
		Young:              Accessed,
		Dirty:              Dirty,
		Special:            Special,
		SoftDirty:          SoftDirty,
		UffdWP:             UffdWP,
		Global:             Global,
		DirtySetsSoftDirty: true,
	}
	huge := bits
	huge.LeafSet = PSE
	f := pgtable.Format{
		PageShift:     12,
		PTE:           bits,
		Huge:          huge,
		NoneIgnore:    Accessed | Dirty,
		TableAddrMask: PFNMask,
		Prots:         protectionMap,
		KernelRW:      pageKernel,
		KernelRO:      pageKernelRO,
		HugeKernelRW:  pageKernel | PSE,
		HWYoung:       true,
		HWDirty:       true,
	}
	for i, p := range protectionMap {
		f.HugeProts[i] = p | PSE
	}
	for l := range f.TableBits {
		f.TableBits[l] = Table
		f.KernelTableBits[l] = Table
	}
	f.LeafLevels[pgtable.PMD] = true
	f.LeafLevels[pgtable.PUD] = true
	return f
}

// Variant selects 4-level or 5-level paging.
type Variant int

const (
	// FourLevel is 4-level paging: 48-bit VA, 47-bit user space.
	FourLevel Variant = iota
	// LA57 is 5-level paging: 57-bit VA, 56-bit user space.
	LA57
)

// New returns the x86-64 descriptor for v.
func New(v Variant) *arch.Arch {
	const pageSize = 4096
	a := &arch.Arch{
		Name:   "x86_64",
		Format: format(),
		Caps: arch.Caps{
			HaveMovePMD:     true,
			HaveMovePUD:     true,
			HugeSizes:       []uint64{2 << 20, 1 << 30},
			OptimizeVmemmap: true,
			StructPageSize:  64,
		},
		Costs: Costs,
		NewTLBPolicy: func(p arch.Platform) tlb.Policy {
			return NewTLBPolicy(p)
		},
	}
	a.Caps.THPLevels[pgtable.PMD] = true
	levels := []pgtable.TableGeometry{
		{Level: pgtable.PGD, Shift: 48, Entries: 512},
		{Level: pgtable.P4D, Shift: 39, Entries: 512},
		{Level: pgtable.PUD, Shift: 30, Entries: 512},
		{Level: pgtable.PMD, Shift: 21, Entries: 512},
		{Level: pgtable.PTE, Shift: 12, Entries: 512},
	}
	shifts := [pgtable.NumLevels]uint{48, 39, 30, 21, 12}
	if v == FourLevel {
		levels = levels[1:]
		shifts[pgtable.PGD] = 39
		// TASK_SIZE_MAX: 47 bits less a guard page.
		a.User = pgtable.Range{Start: 0, End: 1<<47 - pageSize}
		a.Kernel = pgtable.Range{Start: 0xffff_8000_0000_0000}
		a.DirectMap = 0xffff_8880_0000_0000
		a.Vmemmap = 0xffff_ea00_0000_0000
	} else {
		a.Name = "x86_64-la57"
		a.User = pgtable.Range{Start: 0, End: 1<<56 - pageSize}
		a.DefaultUserTop = 1<<47 - pageSize
		a.Kernel = pgtable.Range{Start: 0xff00_0000_0000_0000}
		a.DirectMap = 0xff11_0000_0000_0000
		a.Vmemmap = 0xffd4_0000_0000_0000
	}
	a.Geometry = pgtable.Geometry{PageShift: 12, Tables: levels, Shifts: shifts}
	return a
}
