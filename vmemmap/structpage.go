package vmemmap

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// The struct pages of a hugetlb folio are modelled by the content value
// of the vmemmap pages that hold them: the head vmemmap page holds a
// digest of the folio's head state (its hugetlb and optimised flags), the
// others a digest that names the head, as all their struct pages are
// identical tails. Every write goes through the vmemmap with a kernel
// access, so it lands in the frame the writing CPU's TLB gives: a write
// through a stale translation lands in the old frame and Check finds the
// frame the tables map out of date. This is what the "very subtle" rule of
// the batched flow protects against.

// headFlags are the head-page flags the digest covers.
const headFlags = phys.FlagHugeTLB | phys.FlagVmemmapOptimized

// mix is a 64-bit finaliser (splitmix64) over a few words.
func mix(ws ...uint64) uint64 {
	var x uint64 = 0x9e3779b97f4a7c15
	for _, w := range ws {
		x ^= w
		x += 0x9e3779b97f4a7c15
		x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
		x = (x ^ x>>27) * 0x94d049bb133111eb
		x ^= x >> 31
	}
	return x
}

// headDigest is the content of a folio's head vmemmap page.
func headDigest(head phys.PFN, order uint8, flags uint32) uint64 {
	return mix(1, uint64(head), uint64(order), uint64(flags&headFlags))
}

// tailDigest is the content of a vmemmap page of tail struct pages.
func tailDigest(head phys.PFN) uint64 { return mix(2, uint64(head)) }

// tracked reports whether a folio of this size has vmemmap pages of its
// own, whose content the model tracks (its vmemmap spans whole pages).
func (h *HugeTLB) tracked(f phys.Folio) bool {
	return f.NrPages()*h.m.Arch().Caps.StructPageSize >= h.pageSize()
}

// writeStructPages writes every struct page of folio f through the
// vmemmap: prep_compound_page at allocation (prep true) or the teardown
// before the folio goes back to the buddy allocator. It counts one
// struct_page_inits per struct page and one kernel access per vmemmap
// page.
func (h *HugeTLB) writeStructPages(f phys.Folio, prep bool) error {
	m := h.m
	m.Meter().Add(cost.StructPageInits, f.NrPages())
	start := m.VmemmapAddr(f.PFN)
	if !h.tracked(f) {
		// The struct pages share a vmemmap page with other folios.
		_, err := m.KernelAccess(h.cpu(), start, mmu.Write)
		return err
	}
	flags := m.Memory().Page(f.PFN).Flags()
	ps := h.pageSize()
	n := f.NrPages() * m.Arch().Caps.StructPageSize / ps
	for i := uint64(0); i < n; i++ {
		pfn, err := m.KernelAccess(h.cpu(), start+i*ps, mmu.Write)
		if err != nil {
			return fmt.Errorf("hugetlb: struct pages of folio %#x: %w", f.PFN, err)
		}
		var v uint64
		switch {
		case !prep:
		case i == 0:
			v = headDigest(f.PFN, f.Order, flags)
		default:
			v = tailDigest(f.PFN)
		}
		m.Memory().SetContent(pfn, v)
	}
	return nil
}

// setFolioFlag sets or clears a flag of folio f's head struct page: a
// store through the vmemmap, by the executing CPU.
func (h *HugeTLB) setFolioFlag(f phys.Folio, flag uint32, on bool) error {
	m := h.m
	mem := m.Memory()
	if on {
		mem.SetFlags(f, flag)
	} else {
		mem.ClearFlags(f, flag)
	}
	pfn, err := m.KernelAccess(h.cpu(), m.VmemmapAddr(f.PFN), mmu.Write)
	if err != nil {
		return fmt.Errorf("hugetlb: head struct page of folio %#x: %w", f.PFN, err)
	}
	if h.tracked(f) {
		mem.SetContent(pfn, headDigest(f.PFN, f.Order, mem.Page(f.PFN).Flags()))
	}
	return nil
}

// Check audits every pool folio against init_mm's vmemmap and returns
// what it finds wrong, joined, or nil: every folio is marked hugetlb; an
// optimised folio is one HVO may optimise, its head vmemmap page is mapped
// read-write and every other vmemmap page maps the head's frame
// read-only; an unoptimised folio has its own read-write frame for every
// vmemmap page; and the frames the tables map hold the struct pages as
// they are now (a store that went through a stale TLB entry to a frame
// no longer mapped shows here). It counts nothing.
func (h *HugeTLB) Check() error {
	if h == nil {
		return nil
	}
	var errs []error
	bad := func(format string, a ...any) {
		if len(errs) < 50 {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	m := h.m
	mem := m.Memory()
	k := m.Kernel()
	fm := k.PageTable().Format()
	ps := h.pageSize()
	for _, p := range h.pools {
		for _, f := range p.free {
			flags := mem.Page(f.PFN).Flags()
			opt := flags&phys.FlagVmemmapOptimized != 0
			if flags&phys.FlagHugeTLB == 0 || !mem.IsAllocated(f.PFN) || mem.FolioOf(f.PFN) != f {
				bad("folio %#x: not an allocated hugetlb folio (flags %#x)", f.PFN, flags)
				continue
			}
			if opt && (!p.compiledIn() || p.OptimizableSize() == 0) {
				bad("folio %#x: optimised, but HVO cannot optimise %s folios here", f.PFN, SizeName(p.size))
			}
			if !h.tracked(f) {
				continue
			}
			reuse, end := p.vmemmapRange(f)
			head, ok := k.Translate(reuse)
			if !ok || head.Level != pgtable.PTE && opt || !fm.Write(head.Entry, head.Level) {
				bad("folio %#x: head vmemmap %#x not mapped read-write by a PTE: %+v", f.PFN, reuse, head)
				continue
			}
			if got, want := mem.Content(head.PFN), headDigest(f.PFN, f.Order, flags); got != want {
				bad("folio %#x: head vmemmap frame %#x holds stale struct pages", f.PFN, head.PFN)
			}
			for va := reuse + ps; va < end; va += ps {
				tr, ok := k.Translate(va)
				switch {
				case !ok:
					bad("folio %#x: vmemmap %#x unmapped", f.PFN, va)
				case opt && (tr.PFN != head.PFN || fm.Write(tr.Entry, tr.Level) || tr.Level != pgtable.PTE):
					bad("folio %#x: optimised, but vmemmap %#x maps frame %#x (head %#x) writable %v",
						f.PFN, va, tr.PFN, head.PFN, fm.Write(tr.Entry, tr.Level))
				case !opt && (tr.PFN == head.PFN || !fm.Write(tr.Entry, tr.Level)):
					bad("folio %#x: not optimised, but vmemmap %#x maps frame %#x (head %#x) writable %v",
						f.PFN, va, tr.PFN, head.PFN, fm.Write(tr.Entry, tr.Level))
				case !opt && mem.Content(tr.PFN) != tailDigest(f.PFN):
					bad("folio %#x: vmemmap frame %#x at %#x holds stale struct pages", f.PFN, tr.PFN, va)
				}
			}
		}
	}
	return errors.Join(errs...)
}
