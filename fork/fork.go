package fork

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
)

// Error numbers Fork returns, re-exported from mmu for errors.Is.
const (
	EINVAL = mmu.EINVAL
	ENOMEM = mmu.ENOMEM
	EEXIST = mmu.EEXIST
)

// Options changes how Fork treats the parts of an address space that a
// real process sets up beyond mmap.
type Options struct {
	// UffdEventFork says the parent's userfaultfd contexts registered
	// UFFD_FEATURE_EVENT_FORK: the child's VMAs keep VM_UFFD_WP
	// (dup_userfaultfd), so their page tables are copied and the
	// child's PTEs keep their uffd-wp bits. Without it, as for a plain
	// fork, the child's VMAs lose their userfaultfd flags and the child's
	// PTEs their uffd-wp bits.
	UffdEventFork bool

	// afterStep, when set (by tests), is called after every refcount and
	// mapcount change of a shared folio, to watch refcount >= mapcount.
	afterStep func(phys.Folio)
}

// Fork creates an address space called child as a copy of parent, as
// fork() does with dup_mmap, and returns it; parent is unchanged apart
// from write-protection and the sharing of its pages. See the package
// documentation for the rules.
//
// It fails with EINVAL for a dead or kernel parent, EEXIST when the name
// is taken (or reserved), and ENOMEM when a page table or a folio cannot
// be allocated; after ENOMEM no child exists, nothing is leaked, and the
// parent keeps the write-protection already applied (as in Linux, where a
// failed fork tears down the half-copied child).
//
// Cost: one mmap_lock of each, one VMA per copied VMA, the tables, entry
// reads and writes, refcount and mapcount atomics of the copy (fewer with
// fork_batch=on when folios are large), and one flush_tlb_mm of the
// parent, all charged to the parent.
func Fork(parent *mmu.MM, child string) (*mmu.MM, error) {
	return ForkWith(parent, child, Options{})
}

// ForkWith is Fork with options.
func ForkWith(parent *mmu.MM, child string, o Options) (*mmu.MM, error) {
	if parent == nil || parent.IsKernel() || parent.Dead() {
		return nil, fmt.Errorf("fork %s: no live user address space to copy: %w", child, EINVAL)
	}
	m := parent.Machine()
	parent.Meter().Add(cost.Syscalls, 1)
	parent.MmapWriteLock()
	cmm, err := m.NewMM(child)
	if err != nil {
		parent.MmapWriteUnlock()
		return nil, fmt.Errorf("fork %s: %w", child, err)
	}
	cmm.MmapWriteLock()
	c := newCopier(parent, cmm)
	c.afterStep = o.afterStep
	err = c.dupMmap(o)
	cmm.MmapWriteUnlock()
	// The one TLB flush of the parent: every PTE write-protected above
	// may still be writable in some TLB until now. Linux flushes here
	// whether or not the copy succeeded, before dropping mmap_lock.
	m.TLB().FlushTLBMM(parent.TLBContext())
	parent.MmapWriteUnlock()
	// fork runs in the parent's task: the child's creation is the
	// parent's work, and the child starts at zero.
	cmm.ChargeCountsTo(parent)
	if err != nil {
		// exit_mmap of the half-copied child: everything it maps goes.
		if derr := m.DestroyMM(cmm); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, fmt.Errorf("fork %s: %w", child, err)
	}
	return cmm, nil
}

// dupMmap copies the VMAs in order and the page tables of those that need
// it (dup_mmap). Any failure is ENOMEM, as copy_page_range reports it.
func (c *copier) dupMmap(o Options) error {
	// The child inherits the parent's address-space limit, and so its
	// number of table levels: dup_mm copies the mm_struct, and s390's
	// init_new_context builds the child's top table for the copied
	// asce_limit. Elsewhere the tables do not grow and this does nothing.
	if sp := c.src.PageTable().Space(); sp.End > sp.Start {
		if err := c.dst.GrowFor(sp.Start, sp.End-sp.Start); err != nil {
			return fmt.Errorf("grow to the parent's levels: %w", err)
		}
	}
	for _, v := range c.src.VMAs() {
		if v.Flags&mmu.VMDontCopy != 0 {
			continue
		}
		// Faults on the parent's VMA wait while it is copied.
		c.src.VMAStartWrite(v)
		nv := cloneVMA(v, o)
		if err := c.dst.InsertVMA(nv); err != nil {
			return fmt.Errorf("vma %#x-%#x: %w", v.Start, v.End, err)
		}
		if v.Flags&mmu.VMWipeOnFork != 0 {
			continue
		}
		if err := c.copyPageRange(nv, v); err != nil {
			if !errors.Is(err, ENOMEM) {
				// copy_page_range's callers turn every failure into
				// -ENOMEM.
				return fmt.Errorf("copy %#x-%#x: %v: %w", v.Start, v.End, err, ENOMEM)
			}
			return fmt.Errorf("copy %#x-%#x: %w", v.Start, v.End, err)
		}
	}
	return nil
}

// cloneVMA returns the child's copy of v (vm_area_dup, anon_vma_fork,
// dup_userfaultfd): the same range, flags and backing; a wipe-on-fork VMA
// starts without anonymous pages. Memory locks are not inherited
// (dup_mmap clears VM_LOCKED_MASK in the child's VMA).
func cloneVMA(v *mmu.VMA, o Options) *mmu.VMA {
	nv := *v
	nv.LockSeq = 0
	nv.Detached = false
	nv.Flags &^= mmu.VMLocked
	if v.Flags&mmu.VMWipeOnFork != 0 {
		nv.AnonVMA = false
	}
	if !o.UffdEventFork {
		nv.Flags &^= mmu.VMUffdWP
	}
	return &nv
}
