package vmemmap

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// Flags are the flags of a vmemmap remap walk (struct
// vmemmap_remap_walk's flags).
type Flags uint8

const (
	// SplitNoTLBFlush is VMEMMAP_SPLIT_NO_TLB_FLUSH: a PMD split does not
	// flush its range; the caller flushes once for the batch.
	SplitNoTLBFlush Flags = 1 << iota
	// RemapNoTLBFlush is VMEMMAP_REMAP_NO_TLB_FLUSH: a remap does not
	// flush its range; the caller flushes once for the batch.
	RemapNoTLBFlush
)

// nrResetStructPage is NR_RESET_STRUCT_PAGE: restoring a vmemmap page
// copies the head page and rewrites its first three struct pages (the
// head and the tails that carry folio fields) as plain tails.
const nrResetStructPage = 3

// pageList is a list of vmemmap pages (the walk's vmemmap_pages): pages
// taken out of the vmemmap for the caller to free, or pages allocated to
// map back in. list_add puts a page at the head.
type pageList struct {
	// pfns holds the pages; the last element is the list head.
	pfns []phys.PFN
	// newHeads counts new head pages allocated for folios whose old pages
	// are on the list, so that freeing the list counts net pages.
	newHeads int
}

func (l *pageList) len() int { return len(l.pfns) }

// add is list_add.
func (l *pageList) add(pfn phys.PFN) { l.pfns = append(l.pfns, pfn) }

// del is list_del of pfn; it reports whether pfn was on the list.
func (l *pageList) del(pfn phys.PFN) bool {
	for i := len(l.pfns) - 1; i >= 0; i-- {
		if l.pfns[i] == pfn {
			l.pfns = append(l.pfns[:i], l.pfns[i+1:]...)
			return true
		}
	}
	return false
}

// popFirst is list_first_entry then list_del. Precondition: len() > 0.
func (l *pageList) popFirst() phys.PFN {
	pfn := l.pfns[len(l.pfns)-1]
	l.pfns = l.pfns[:len(l.pfns)-1]
	return pfn
}

// remapWalk is struct vmemmap_remap_walk.
type remapWalk struct {
	// remapPTE is called on every PTE after the first; nil splits only.
	remapPTE func(h *HugeTLB, w *remapWalk, addr uint64, p pgtable.Ptr) error
	// nrWalked counts the PTEs visited, to roll back a partial remap.
	nrWalked int
	// reusePage is the page every tail PTE will map; haveReuse says
	// whether it is known (preset, or taken from the first PTE).
	reusePage phys.PFN
	haveReuse bool
	// reuseAddr is the vmemmap address of the reuse (head) page.
	reuseAddr uint64
	// pages is the list of pages freed from, or to map into, the range.
	pages *pageList
	// flags are the walk's flags.
	flags Flags
}

func (h *HugeTLB) pageSize() uint64 { return h.m.Arch().PageSize() }

// cpu returns the CPU executing the kernel code (smp_processor_id()).
func (h *HugeTLB) cpu() int { return h.m.TLB().LocalCPU().ID() }

// kernelMeter counts init_mm's work (locks, walks, entry writes).
func (h *HugeTLB) kernelMeter() *cost.Meter { return h.m.Kernel().Meter() }

// flushTLBAll is flush_tlb_all.
func (h *HugeTLB) flushTLBAll() { h.m.TLB().FlushTLBAll() }

// remapRange is vmemmap_remap_range: walk [start, end) of init_mm's
// vmemmap (walk_page_range_novma), splitting PMD leaves on the way
// (vmemmap_pmd_entry) and, unless the walk only splits, handing every PTE
// after the first to remapPTE (vmemmap_pte_entry); then flush the range
// unless RemapNoTLBFlush. The caller holds init_mm's mmap_lock for
// reading. It fails with ENOMEM when a split cannot allocate its table.
func (h *HugeTLB) remapRange(start, end uint64, w *remapWalk) error {
	pt := h.m.Kernel().PageTable()
	fm := pt.Format()
	pmdSize := pt.Geometry().Size(pgtable.PMD)
	ps := h.pageSize()
	for addr := start; addr < end; {
		next := (addr + pmdSize) &^ (pmdSize - 1)
		if next > end || next == 0 {
			next = end
		}
		pmdp, ok := pt.Walk(addr, pgtable.PMD)
		if !ok {
			return fmt.Errorf("vmemmap %#x: no PMD (model bug): %w", addr, EFAULT)
		}
		// vmemmap_pmd_entry looks at the PMD under init_mm's
		// page_table_lock.
		h.kernelMeter().Add(cost.PTLocks, 1)
		if pmdp.Child() == nil {
			e := pt.RawGet(pmdp)
			if !fm.IsLeaf(e, pgtable.PMD) {
				return fmt.Errorf("vmemmap %#x: not mapped (model bug): %w", addr, EFAULT)
			}
			if err := h.splitPMD(pmdp, addr&^(pmdSize-1), e, w.flags); err != nil {
				return err
			}
		}
		if w.remapPTE == nil {
			addr = next
			continue
		}
		for a := addr; a < next; a += ps {
			ptep, ok := pt.Walk(a, pgtable.PTE)
			if !ok {
				return fmt.Errorf("vmemmap %#x: no PTE (model bug): %w", a, EFAULT)
			}
			// The reuse page is found first, before any remapping.
			if !w.haveReuse {
				w.reusePage = fm.PFN(pt.PtepGet(a, ptep), pgtable.PTE)
				w.haveReuse = true
			} else if err := w.remapPTE(h, w, a, ptep); err != nil {
				return err
			}
			w.nrWalked++
		}
		addr = next
	}
	if w.remapPTE != nil && w.flags&RemapNoTLBFlush == 0 {
		h.m.TLB().FlushTLBKernelRange(start, end)
	}
	return nil
}

// splitPMD is vmemmap_split_pmd: allocate a PTE table (it can fail with
// ENOMEM), fill it with 512 PAGE_KERNEL PTEs mapping the leaf's frames,
// and under init_mm's page_table_lock install it over the live leaf
// (pmd_populate_kernel, a plain store: x86 allows it; arm64 needs
// break-before-make, which the TLB policy's check reports); split_page
// makes the 4 KiB pieces freeable one by one; then flush the PMD's range
// unless SplitNoTLBFlush. The split is never undone.
func (h *HugeTLB) splitPMD(pmdp pgtable.Ptr, start uint64, leaf pgtable.Entry, flags Flags) error {
	pt := h.m.Kernel().PageTable()
	mem := h.m.Memory()
	head := pt.Format().PFN(leaf, pgtable.PMD)
	h.kernelMeter().Add(cost.PTLocks, 1)
	if err := pt.SplitLeaf(start, pmdp); err != nil {
		return fmt.Errorf("vmemmap_split_pmd %#x: %w", start, err)
	}
	if mem.IsAllocated(head) && mem.FolioOf(head).PFN == head {
		if err := mem.SplitPage(head); err != nil {
			return fmt.Errorf("vmemmap_split_pmd %#x: %w", start, err)
		}
	}
	h.m.Meter().Note(cost.VmemmapSplits, 1, start, uint64(head))
	if flags&SplitNoTLBFlush == 0 {
		h.m.TLB().FlushTLBKernelRange(start, start+pt.Geometry().Size(pgtable.PMD))
	}
	return nil
}

// checkReuse is the BUG_ON of every remap entry point: the range starts
// one page after reuse.
func (h *HugeTLB) checkReuse(start, end, reuse uint64) error {
	if start-reuse != h.pageSize() || end <= start {
		return fmt.Errorf("vmemmap remap [%#x, %#x) reuse %#x: the range must start one page after reuse: %w", start, end, reuse, EINVAL)
	}
	return nil
}

// remapSplit is vmemmap_remap_split: split the PMDs of [reuse, end)
// without flushing (SplitNoTLBFlush). It fails with ENOMEM.
func (h *HugeTLB) remapSplit(start, end, reuse uint64) error {
	if err := h.checkReuse(start, end, reuse); err != nil {
		return err
	}
	h.kernelMeter().Add(cost.MmapLocks, 1) // mmap_read_lock(&init_mm)
	return h.remapRange(reuse, end, &remapWalk{flags: SplitNoTLBFlush})
}

// remapFree is vmemmap_remap_free: remap [start, end) read-only to the
// reuse page and put the pages it mapped on pages, for the caller to free
// after the flush. It first tries to allocate a new head page, copies the
// head into it and maps it read-write at reuse, so that the old head's
// block of struct-page memory can be freed whole; if that allocation
// fails the old head is kept. On an error after part of the range was
// remapped it restores that part. It fails with ENOMEM when a split
// cannot allocate.
func (h *HugeTLB) remapFree(start, end, reuse uint64, pages *pageList, flags Flags) error {
	if err := h.checkReuse(start, end, reuse); err != nil {
		return err
	}
	m := h.m
	w := &remapWalk{remapPTE: remapPTE, reuseAddr: reuse, pages: pages, flags: flags}
	// GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN: failure is fine.
	if pfn, err := m.Memory().Alloc(0, phys.KindKernel); err == nil {
		m.AddKernelFrames(1)
		m.Meter().Note(cost.FolioAllocs, 1, 0, uint64(pfn))
		if err := h.copyPage(pfn, reuse); err != nil {
			return err
		}
		w.reusePage, w.haveReuse = pfn, true
		pages.add(pfn)
		pages.newHeads++
	}
	h.kernelMeter().Add(cost.MmapLocks, 1) // mmap_read_lock(&init_mm)
	err := h.remapRange(reuse, end, w)
	if err != nil && w.nrWalked > 0 {
		// Undo what was remapped: the pages on the list go back in.
		undo := &remapWalk{remapPTE: restorePTE, reuseAddr: reuse, pages: pages}
		if e := h.remapRange(reuse, reuse+uint64(w.nrWalked)*h.pageSize(), undo); e != nil {
			return e
		}
	}
	return err
}

// remapPTE is vmemmap_remap_pte: map a tail PTE read-only to the reuse
// page (stray writes to tail struct pages fault) or, at reuse, the new
// head page read-write; the page it mapped goes on the list.
func remapPTE(h *HugeTLB, w *remapWalk, addr uint64, p pgtable.Ptr) error {
	pt := h.m.Kernel().PageTable()
	fm := pt.Format()
	page := fm.PFN(pt.PtepGet(addr, p), pgtable.PTE)
	writable := false
	if addr == w.reuseAddr {
		// The new head leaves the list: it is mapped now.
		writable = true
		w.pages.del(w.reusePage)
	}
	// list_add(&page->lru): a store to the page's own struct page.
	if _, err := h.m.KernelAccess(h.cpu(), h.m.VmemmapAddr(page), mmu.Write); err != nil {
		return fmt.Errorf("vmemmap: struct page of %#x: %w", page, err)
	}
	w.pages.add(page)
	pt.SetPTEAt(addr, p, fm.MkKernel(w.reusePage, writable))
	return nil
}

// restorePTE is vmemmap_restore_pte: take a page from the list, copy the
// reuse page into it, reset its first struct pages to plain tails, map it
// read-write.
func restorePTE(h *HugeTLB, w *remapWalk, addr uint64, p pgtable.Ptr) error {
	m := h.m
	pt := m.Kernel().PageTable()
	fm := pt.Format()
	if cur := fm.PFN(pt.PtepGet(addr, p), pgtable.PTE); cur != w.reusePage {
		return fmt.Errorf("vmemmap restore %#x maps %#x, not the reuse page %#x (model bug): %w", addr, cur, w.reusePage, EFAULT)
	}
	if w.pages.len() == 0 {
		return fmt.Errorf("vmemmap restore %#x: no page left on the list (model bug): %w", addr, EFAULT)
	}
	page := w.pages.popFirst()
	if err := h.copyPage(page, w.reuseAddr); err != nil {
		return err
	}
	// reset_struct_pages, through the page's direct-map address.
	m.Meter().Add(cost.StructPageInits, nrResetStructPage)
	head := phys.PFN((w.reuseAddr - m.Arch().Vmemmap) / m.Arch().Caps.StructPageSize)
	m.Memory().SetContent(page, tailDigest(head))
	pt.SetPTEAt(addr, p, fm.MkKernel(page, true))
	return nil
}

// remapAlloc is vmemmap_remap_alloc: allocate every page of [start, end)
// first (all or nothing: ENOMEM changes nothing), then remap each PTE to
// its own page, copied from the reuse page, read-write; flush unless
// RemapNoTLBFlush.
func (h *HugeTLB) remapAlloc(start, end, reuse uint64, flags Flags) error {
	if err := h.checkReuse(start, end, reuse); err != nil {
		return err
	}
	m := h.m
	mem := m.Memory()
	n := (end - start) / h.pageSize()
	pages := &pageList{}
	// alloc_vmemmap_page_list: GFP_KERNEL | __GFP_RETRY_MAYFAIL.
	for i := uint64(0); i < n; i++ {
		pfn, err := mem.Alloc(0, phys.KindKernel)
		if err != nil {
			for pages.len() > 0 {
				mem.Free(pages.popFirst(), phys.KindKernel)
				m.AddKernelFrames(-1)
				m.Meter().Add(cost.FolioFrees, 1)
			}
			return fmt.Errorf("vmemmap_remap_alloc [%#x, %#x): %w", start, end, err)
		}
		m.AddKernelFrames(1)
		m.Meter().Note(cost.FolioAllocs, 1, 0, uint64(pfn))
		pages.add(pfn)
	}
	h.kernelMeter().Add(cost.MmapLocks, 1) // mmap_read_lock(&init_mm)
	w := &remapWalk{remapPTE: restorePTE, reuseAddr: reuse, pages: pages, flags: flags}
	if err := h.remapRange(reuse, end, w); err != nil {
		return err
	}
	m.Meter().Note(cost.VmemmapPagesRestored, n, start, 0)
	return nil
}

// freeVmemmapPageList is free_vmemmap_page_list: every page of the list
// goes back to the buddy allocator (its struct page written on the way);
// vmemmap_pages_freed counts the pages freed less the new heads that
// replaced some of them.
func (h *HugeTLB) freeVmemmapPageList(pages *pageList) {
	m := h.m
	n := pages.len()
	for pages.len() > 0 {
		pfn := pages.popFirst()
		// The free writes the page's struct page (refcount, flags).
		_, _ = m.KernelAccess(h.cpu(), m.VmemmapAddr(pfn), mmu.Write)
		m.Memory().Free(pfn, phys.KindKernel)
		m.AddKernelFrames(-1)
		m.Meter().Note(cost.FolioFrees, 1, 0, uint64(pfn))
	}
	if net := n - pages.newHeads; net > 0 {
		m.Meter().Add(cost.VmemmapPagesFreed, uint64(net))
	}
	pages.newHeads = 0
}

// copyPage is copy_page from the vmemmap address src (read through the
// vmemmap, so through the CPU's TLB) into frame dst (written through its
// direct-map address).
func (h *HugeTLB) copyPage(dst phys.PFN, src uint64) error {
	m := h.m
	from, err := m.KernelAccess(h.cpu(), src, mmu.Read)
	if err != nil {
		return fmt.Errorf("vmemmap: copy from %#x: %w", src, err)
	}
	if _, err := m.KernelAccess(h.cpu(), h.directMap(dst), mmu.Write); err != nil {
		return fmt.Errorf("vmemmap: copy to %#x: %w", dst, err)
	}
	m.Memory().CopyContent(dst, from, 1)
	m.Meter().Add(cost.PageCopies, 1)
	return nil
}

// directMap returns the direct-map address of frame pfn (page_to_virt).
func (h *HugeTLB) directMap(pfn phys.PFN) uint64 {
	return h.m.Arch().DirectMap + uint64(pfn)<<h.m.Arch().Geometry.PageShift
}
