// Package arch describes a simulated architecture: its page-table
// geometry, entry format, capabilities, cost table and the hooks through
// which core code reaches arch-specific behaviour without naming an arch.
//
// The backends live in the subpackages x86, arm64, s390, sparc and um; the
// registry in archs maps the names scenario scripts use ("arm64-16k") to
// descriptors. Every descriptor is a plain value built at run time: no
// build tags, no host state, identical on every host.
package arch

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

// Arch describes one architecture configuration.
type Arch struct {
	// Name is the name scripts use ("x86_64", "arm64-64k", "um32").
	Name string
	// Geometry and Format describe the page tables and their entries.
	Geometry pgtable.Geometry
	Format   pgtable.Format
	// User is the range of user virtual addresses (up to TASK_SIZE);
	// DefaultUserTop, when non-zero, is where mmap stays below unless an
	// address above it is asked for (x86 LA57 keeps to 47 bits).
	User           pgtable.Range
	DefaultUserTop uint64
	// Kernel is the range of kernel virtual addresses; DirectMap and
	// Vmemmap are where init_mm maps all of memory and the struct pages.
	Kernel    pgtable.Range
	DirectMap uint64
	Vmemmap   uint64
	// Caps lists what the arch can and cannot do.
	Caps Caps
	// Costs is the arch's one cost table.
	Costs *cost.Table
	// MovePTE is the arch's move_pte hook, called by mremap for every
	// present PTE moved one at a time; nil is Linux's identity. It returns
	// the entry to install and counts what it did on m.
	MovePTE func(m *cost.Meter, e pgtable.Entry, oldAddr, newAddr uint64) pgtable.Entry
	// NewTLBPolicy returns the arch's TLB policy for a machine: what each
	// flush call invalidates where, and what it costs. nil means tlb's
	// GenericPolicy.
	NewTLBPolicy func(p Platform) tlb.Policy
	// NewPTEOps returns the arch's operations under the public PTE
	// functions for one user address space (arm64 contpte, s390 IPTE,
	// sparc64 TLB batching, UML sync marks); nil means pgtable's generic
	// ones. Kernel page tables always use the generic ones.
	NewPTEOps func(env Env) pgtable.ArchOps
}

// Env gives an arch's PTE operations what they need of the address space
// they serve.
type Env struct {
	// TLB is the machine's TLB system and Context the address space in it.
	TLB     *tlb.System
	Context *tlb.Context
	// Memory is physical memory (contpte asks which folio covers a block).
	Memory *phys.Memory
	// Meter counts the address space's work.
	Meter *cost.Meter
	// Knobs reports the kernel switches as they are now.
	Knobs func() KnobView
}

// KnobView is the part of the kernel switches that arch code reads.
type KnobView struct {
	// ContPTE: arm64 manages contiguous PTEs transparently.
	ContPTE bool
	// BBML2: contpte_convert may skip its TLB flush.
	BBML2 bool
}

// Platform holds the machine parameters that are real inputs of the cost
// model (TARGETS.md), not knobs for one experiment. A policy reads them
// once, when it is built.
type Platform struct {
	// CPUs is the number of CPUs (the TLB system's count rules; a policy
	// may size per-CPU state from it).
	CPUs int
	// Virtualized: the machine is a VM, so every IPI traps to the
	// hypervisor (x86 counts a VM exit per IPI sent).
	Virtualized bool
	// RangeTLBI: arm64 FEAT_TLBIRANGE, range invalidations by TLBI RVAE1.
	RangeTLBI bool
	// BBML2: arm64 BBML2 without conflict aborts; block-size and
	// contiguous-bit changes need no break-before-make flush.
	BBML2 bool
}

// Caps lists an architecture's capabilities, as Linux's Kconfig selects
// them.
type Caps struct {
	// HaveMovePMD and HaveMovePUD: mremap may move whole PTE tables
	// (PMD entries) and PMD tables (PUD entries). Selected by x86 and
	// arm64 only.
	HaveMovePMD, HaveMovePUD bool
	// HugeSizes lists the hugetlb page sizes, smallest first.
	HugeSizes []uint64
	// THPLevels marks the levels at which a transparent huge page may be
	// mapped by one leaf (PMD on most arches; none on UML).
	THPLevels [pgtable.NumLevels]bool
	// ContPTEs is CONT_PTES, the entries of a contiguous block; 0 when
	// the arch has no contiguous-PTE hint.
	ContPTEs int
	// LiveEntriesNeedInvalidate: a valid entry may only be changed by an
	// invalidating exchange (s390 IPTE/IDTE/CRDTE), never a plain store.
	LiveEntriesNeedInvalidate bool
	// DcacheAliasing: the D-cache is virtually indexed and move_pte
	// flushes a page whose colour changes (sparc64).
	DcacheAliasing bool
	// OptimizeVmemmap: ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP (HVO).
	OptimizeVmemmap bool
	// StructPageSize is sizeof(struct page) in bytes.
	StructPageSize uint64
	// GrowLevels: page tables start with Geometry.MinTables levels and
	// grow as addresses need (s390's crst_table_upgrade).
	GrowLevels bool
	// OldPrefaultedPTEs: fault-around maps the pages it did not fault on
	// old (arch_wants_old_prefaulted_pte: arm64 with hardware access
	// flags).
	OldPrefaultedPTEs bool
	// MmapMinAddr is the lowest address a fixed mapping may use
	// (CONFIG_DEFAULT_MMAP_MIN_ADDR; 0 means no limit).
	MmapMinAddr uint64
}

// Validate checks the descriptor for internal consistency.
func (a *Arch) Validate() error {
	if a.Name == "" {
		return fmt.Errorf("arch: no name")
	}
	if err := a.Geometry.Validate(); err != nil {
		return fmt.Errorf("arch %s: %v", a.Name, err)
	}
	if a.Format.PageShift != a.Geometry.PageShift {
		return fmt.Errorf("arch %s: format page shift %d differs from geometry %d", a.Name, a.Format.PageShift, a.Geometry.PageShift)
	}
	if a.Costs == nil {
		return fmt.Errorf("arch %s: no cost table", a.Name)
	}
	if a.Caps.StructPageSize == 0 {
		return fmt.Errorf("arch %s: no struct page size", a.Name)
	}
	return nil
}

// PageSize returns the base page size.
func (a *Arch) PageSize() uint64 { return a.Geometry.PageSize() }

// MaxOrder returns the largest folio order the arch needs: its largest
// huge page size, and at least the PMD size (folio=SIZE may ask for
// anything up to a PMD even where no huge page maps it).
func (a *Arch) MaxOrder() uint {
	max := a.Geometry.Shift(pgtable.PMD) - a.Geometry.PageShift
	for _, s := range a.Caps.HugeSizes {
		o := uint(0)
		for (a.PageSize() << o) < s {
			o++
		}
		if o > max {
			max = o
		}
	}
	return max
}
