package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// buildKernel creates init_mm, the zero page, the direct map of all memory
// and the vmemmap of struct pages, as the kernel sets them up at boot.
func (m *Machine) buildKernel() error {
	k, err := m.newMM("kernel", true)
	if err != nil {
		return err
	}
	m.kernel = k
	zero, err := m.mem.Alloc(0, phys.KindKernel)
	if err != nil {
		return fmt.Errorf("mmu: zero page: %w", err)
	}
	m.mem.Page(zero).Set(phys.FlagReserved)
	m.zero = zero
	m.kernelFrames = 1
	if !m.hasKernelLeaves() {
		// UML maps its memory through the host; there is no direct map or
		// vmemmap to model.
		return nil
	}
	size := m.mem.Frames() << m.arch.Geometry.PageShift
	if err := k.pt.Map(m.arch.DirectMap, size, 0, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite, Huge: true}); err != nil {
		return fmt.Errorf("mmu: direct map: %w", err)
	}
	return m.buildVmemmap()
}

func (m *Machine) hasKernelLeaves() bool {
	for _, ok := range m.arch.Format.LeafLevels {
		if ok {
			return true
		}
	}
	return false
}

// VmemmapLeafLevel returns the level at which the vmemmap is mapped: PMD
// leaves where Linux uses them (x86, arm64 with 4K pages, s390, sparc64),
// base pages otherwise (arm64 with 16K and 64K pages).
func (m *Machine) VmemmapLeafLevel() pgtable.Level {
	geo := &m.arch.Geometry
	if m.arch.Format.LeafLevels[pgtable.PMD] && geo.Size(pgtable.PMD) <= 8<<20 {
		return pgtable.PMD
	}
	return pgtable.PTE
}

// VmemmapAddr returns the virtual address of frame pfn's struct page.
func (m *Machine) VmemmapAddr(pfn phys.PFN) uint64 {
	return m.arch.Vmemmap + uint64(pfn)*m.arch.Caps.StructPageSize
}

// buildVmemmap backs the struct pages of every frame with kernel memory
// and maps them at Vmemmap (vmemmap_populate).
func (m *Machine) buildVmemmap() error {
	geo := &m.arch.Geometry
	l := m.VmemmapLeafLevel()
	leaf := geo.Size(l)
	bytes := m.mem.Frames() * m.arch.Caps.StructPageSize
	order := uint(log2u(leaf >> geo.PageShift))
	for off := uint64(0); off < bytes; off += leaf {
		pfn, err := m.mem.Alloc(order, phys.KindKernel)
		if err != nil {
			return fmt.Errorf("mmu: vmemmap: %w", err)
		}
		m.kernelFrames += 1 << order
		if err := m.kernel.pt.Map(m.arch.Vmemmap+off, leaf, pfn, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite, Huge: l != pgtable.PTE}); err != nil {
			return fmt.Errorf("mmu: vmemmap: %w", err)
		}
	}
	return nil
}

// KernelFrames returns the frames the kernel holds outside folios and
// page tables (zero page, vmemmap backing, and whatever Holders report).
func (m *Machine) KernelFrames() uint64 { return m.kernelFrames }

// AddKernelFrames records n more (or, negative, fewer) kernel frames, for
// packages that allocate KindKernel memory (the vmemmap optimisation).
func (m *Machine) AddKernelFrames(n int64) { m.kernelFrames = uint64(int64(m.kernelFrames) + n) }

// KernelAccess performs an access by CPU cpu to kernel address addr
// through init_mm's tables and the CPU's TLB (global entries).
func (m *Machine) KernelAccess(cpu int, addr uint64, kind AccessKind) (phys.PFN, error) {
	return m.kernel.Access(cpu, addr, kind)
}
