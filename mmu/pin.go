package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// Pin takes a long-term FOLL_PIN pin on every page of [addr, addr+length),
// as pin_user_pages does: pages are faulted in, anonymous pages that are
// not exclusive are unshared first (a pinned page must never be replaced
// by a COW), each folio's pin count goes up, and the address space is
// marked MMF_HAS_PINNED. It fails with EFAULT for an unmapped or unreadable page and
// ENOMEM when a fault runs out of memory; pins already taken stay, as a
// short pin_user_pages count would leave them for the caller to release.
func (mm *MM) Pin(addr, length uint64) error {
	if err := mm.usable("pin", addr); err != nil {
		return err
	}
	end, err := mm.checkUnmapRange("pin", addr, length)
	if err != nil {
		return err
	}
	fm := &mm.m.arch.Format
	mem := mm.m.mem
	for a := addr; a < end; a += mm.pageSize() {
		v := mm.FindVMA(a)
		if v == nil {
			return fmt.Errorf("pin %#x: no mapping: %w", a, EFAULT)
		}
		if v.Flags&VMRead == 0 {
			// check_vma_flags: a read pin without FOLL_FORCE needs
			// VM_READ; faulting a PROT_NONE page in would map it.
			return fmt.Errorf("pin %#x: %s mapping is not readable: %w", a, v.Flags, EFAULT)
		}
		for try := 0; ; try++ {
			tr, ok := mm.pt.Lookup(a)
			if ok && !fm.Special(tr.Entry, tr.Level) && tr.PFN != mm.m.zero {
				f := mm.Folio(tr.PFN)
				excl := mem.Page(tr.PFN).Has(phys.FlagAnonExclusive) ||
					(tr.Level != pgtable.PTE && mem.Page(f.PFN).Has(phys.FlagAnonExclusive))
				if !mem.Test(f, phys.FlagAnon) || excl {
					mem.Pin(f, 1)
					mm.m.pinned[f.PFN]++
					mm.meter.Add(cost.RefAtomics, 1)
					mm.hasPinned = true
					break
				}
			}
			if try == maxFaultRetries {
				return fmt.Errorf("pin %#x: page not pinnable (model bug): %w", a, EFAULT)
			}
			mm.meter.Add(cost.Faults, 1)
			unshare := ok
			if err := mm.HandleVMAFault(&Fault{VMA: v, Addr: a, Kind: Read, Unshare: unshare}); err != nil {
				return fmt.Errorf("pin %#x: %w", a, err)
			}
		}
	}
	return nil
}

// Unpin drops one pin from every page of [addr, addr+length)
// (unpin_user_pages). It fails with EINVAL, changing nothing, when a page
// is not mapped or its folio holds no pin.
func (mm *MM) Unpin(addr, length uint64) error {
	if err := mm.usable("unpin", addr); err != nil {
		return err
	}
	end, err := mm.checkUnmapRange("unpin", addr, length)
	if err != nil {
		return err
	}
	need := map[phys.Folio]int{}
	var order []phys.Folio
	for a := addr; a < end; a += mm.pageSize() {
		tr, ok := mm.pt.Lookup(a)
		if !ok {
			return fmt.Errorf("unpin %#x: not mapped: %w", a, EINVAL)
		}
		f := mm.Folio(tr.PFN)
		if need[f] == 0 {
			order = append(order, f)
		}
		need[f]++
		if mm.m.mem.Pincount(f) < need[f] {
			return fmt.Errorf("unpin %#x: page not pinned: %w", a, EINVAL)
		}
	}
	for _, f := range order {
		mm.m.mem.Unpin(f, need[f])
		if mm.m.pinned[f.PFN] -= need[f]; mm.m.pinned[f.PFN] <= 0 {
			delete(mm.m.pinned, f.PFN)
		}
		mm.meter.Add(cost.RefAtomics, 1)
	}
	return nil
}
