package vmemmap

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
)

// Error numbers, as Linux names them.
const (
	EINVAL = errno.EINVAL
	ENOMEM = errno.ENOMEM
	EFAULT = errno.EFAULT
)

// HugeTLB is the hugetlb subsystem of one machine: one Pool per hugetlb
// size of the arch. Get it with Of.
type HugeTLB struct {
	// m is the machine.
	m *mmu.Machine
	// pools are the hstates, smallest size first, created on first use.
	pools []*Pool
}

// Of returns the hugetlb subsystem of m, creating it on first use and
// registering it with the invariant checker (the pools hold their free
// folios outside any page table). Of(nil) is nil, whose Pool fails with
// EINVAL.
func Of(m *mmu.Machine) *HugeTLB {
	if m == nil {
		return nil
	}
	if h, ok := m.HugeTLB().(*HugeTLB); ok {
		return h
	}
	h := &HugeTLB{m: m}
	m.SetHugeTLB(h)
	m.AddHolder(h)
	return h
}

// Machine returns the machine.
func (h *HugeTLB) Machine() *mmu.Machine {
	if h == nil {
		return nil
	}
	return h.m
}

// Holdings reports every pool folio with the one reference the pool holds
// on it (mmu.Holder).
func (h *HugeTLB) Holdings(fn func(f phys.Folio, refs int)) {
	if h == nil || fn == nil {
		return
	}
	for _, p := range h.pools {
		for _, f := range p.free {
			fn(f, 1)
		}
	}
}

// Pools returns the pools created so far, smallest size first.
func (h *HugeTLB) Pools() []*Pool {
	if h == nil {
		return nil
	}
	return append([]*Pool(nil), h.pools...)
}

// Pool returns the pool of folios of size bytes (an hstate), creating it
// on first use. It fails with EINVAL when the arch has no hugetlb pages of
// that size.
func (h *HugeTLB) Pool(size uint64) (*Pool, error) {
	if h == nil {
		return nil, fmt.Errorf("hugetlb: no machine: %w", EINVAL)
	}
	for _, p := range h.pools {
		if p.size == size {
			return p, nil
		}
	}
	a := h.m.Arch()
	found := false
	for _, s := range a.Caps.HugeSizes {
		found = found || s == size
	}
	if !found {
		return nil, fmt.Errorf("hugetlb: %s has no %s pages (sizes: %s): %w", a.Name, SizeName(size), sizeList(a.Caps.HugeSizes), EINVAL)
	}
	ps := a.PageSize()
	order := uint(0)
	for ps<<order < size {
		order++
	}
	p := &Pool{h: h, size: size, order: order, member: map[phys.PFN]bool{}}
	// Keep the pools sorted by size, so Holdings and Pools are ordered.
	i := 0
	for i < len(h.pools) && h.pools[i].size < size {
		i++
	}
	h.pools = append(h.pools[:i], append([]*Pool{p}, h.pools[i:]...)...)
	return p, nil
}

// SizeName spells a size as scripts do: 64K, 2M, 1G.
func SizeName(size uint64) string {
	units := []string{"", "K", "M", "G", "T"}
	u := 0
	for size >= 1024 && size%1024 == 0 && u < len(units)-1 {
		size /= 1024
		u++
	}
	return fmt.Sprintf("%d%s", size, units[u])
}

func sizeList(sizes []uint64) string {
	if len(sizes) == 0 {
		return "none"
	}
	s := ""
	for i, x := range sizes {
		if i > 0 {
			s += " "
		}
		s += SizeName(x)
	}
	return s
}

// Pool is the hugetlb pool of one size (Linux's struct hstate): the free
// folios, which nothing maps. Its size is nr_hugepages.
type Pool struct {
	// h is the subsystem the pool belongs to.
	h *HugeTLB
	// size is the folio size in bytes, order its order in base pages.
	size  uint64
	order uint
	// free is hugepage_freelists: the last element is the list head,
	// where enqueue_hugetlb_folio adds and remove_pool_hugetlb_folio
	// takes.
	free []phys.Folio
	// member has the head of every pool folio, to validate callers.
	member map[phys.PFN]bool
}

// Size returns the folio size in bytes.
func (p *Pool) Size() uint64 { return p.size }

// Order returns the folio order (log2 of its base pages).
func (p *Pool) Order() uint { return p.order }

// NrHugePages returns the number of folios in the pool (nr_hugepages).
func (p *Pool) NrHugePages() int { return len(p.free) }

// Folios returns the pool's folios in free-list order, the list head
// first (the next one Free gives back).
func (p *Pool) Folios() []phys.Folio {
	out := make([]phys.Folio, len(p.free))
	for i, f := range p.free {
		out[len(p.free)-1-i] = f
	}
	return out
}

// Optimized reports whether folio f's vmemmap is optimised
// (folio_test_hugetlb_vmemmap_optimized); false for a folio not in the
// pool.
func (p *Pool) Optimized(f phys.Folio) bool {
	return p.member[f.PFN] && p.optimized(f)
}

// optimized is Optimized for a folio the pool is working on, which may not
// be on its free list yet (alloc) or any more (free).
func (p *Pool) optimized(f phys.Folio) bool {
	return p.h.m.Memory().Test(f, phys.FlagVmemmapOptimized)
}

// VmemmapSize returns the bytes of struct pages of one folio
// (hugetlb_vmemmap_size): base pages times sizeof(struct page).
func (p *Pool) VmemmapSize() uint64 {
	return uint64(1) << p.order * p.h.m.Arch().Caps.StructPageSize
}

// OptimizableSize returns the vmemmap bytes HVO frees per folio
// (hugetlb_vmemmap_optimizable_size): the vmemmap less the one page kept
// (HUGETLB_VMEMMAP_RESERVE_SIZE), and 0 when that leaves nothing or when
// sizeof(struct page) is not a power of two.
func (p *Pool) OptimizableSize() uint64 {
	sps := p.h.m.Arch().Caps.StructPageSize
	ps := p.h.m.Arch().PageSize()
	vs := p.VmemmapSize()
	if sps&(sps-1) != 0 || vs <= ps {
		return 0
	}
	return vs - ps
}

// OptimizablePages returns the vmemmap pages HVO frees per folio: 7 for
// 2 MiB and 4095 for 1 GiB with 4 KiB pages.
func (p *Pool) OptimizablePages() uint64 { return p.OptimizableSize() / p.h.m.Arch().PageSize() }

// compiledIn reports CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP: the arch
// selects ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP.
func (p *Pool) compiledIn() bool { return p.h.m.Arch().Caps.OptimizeVmemmap }

// shouldOptimize is vmemmap_should_optimize_folio: not yet optimised, HVO
// compiled in and enabled (vm.hugetlb_optimize_vmemmap), and something to
// free.
func (p *Pool) shouldOptimize(f phys.Folio) bool {
	return !p.optimized(f) && p.compiledIn() && p.h.m.Knobs().HVO && p.OptimizableSize() > 0
}

// Alloc grows the pool by n folios in one batch, as one write to
// nr_hugepages does (set_max_huge_pages): it allocates the folios from
// the buddy allocator one by one, initialising their struct pages, then
// optimises their vmemmap as the knobs say (hvo, hvo_batch) and adds them
// to the pool. It returns how many folios it added.
//
// It fails with EINVAL, changing nothing, for n < 1. When memory runs out
// after k folios it keeps those k, as Linux does, and returns k with an
// error wrapping ENOMEM. Vmemmap optimisation failing for lack of memory
// is not an error: the folio joins the pool unoptimised.
//
// Cost: per folio one folio allocation and a struct page write per base
// page; with HVO the split, remap, copies and frees of its vmemmap and,
// batched, two flush_tlb_all per batch, unbatched up to two kernel range
// flushes per folio.
func (p *Pool) Alloc(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("hugetlb alloc %d %s: count must be at least 1: %w", n, SizeName(p.size), EINVAL)
	}
	if p.h.m.Knobs().HVOBatch {
		return p.allocBatched(n)
	}
	return p.allocUnbatched(n)
}

// allocBatched is set_max_huge_pages growing the pool since Linux 6.7:
// allocate every folio onto a list, then prep_and_add_allocated_folios
// optimises the list in one batch and enqueues it.
func (p *Pool) allocBatched(n int) (int, error) {
	// page_list: list_add puts each new folio at the head, so the list
	// runs from the last allocated to the first.
	var list []phys.Folio
	var allocErr error
	for len(list) < n {
		f, err := p.allocFresh()
		if err != nil {
			allocErr = err
			break
		}
		list = append([]phys.Folio{f}, list...)
	}
	if err := p.prepAndAdd(list); err != nil {
		return len(list), err
	}
	if allocErr != nil {
		return len(list), fmt.Errorf("hugetlb alloc %d %s: %d allocated: %w", n, SizeName(p.size), len(list), allocErr)
	}
	return len(list), nil
}

// prepAndAdd is prep_and_add_allocated_folios: optimise the list's
// vmemmap in one batch, then enqueue each folio in list order. Linux
// calls it even with an empty list when the first allocation fails; the
// batch then flushes once (twice before Linux 6.14).
func (p *Pool) prepAndAdd(list []phys.Folio) error {
	if p.compiledIn() {
		if err := p.optimizeFolios(list); err != nil {
			return err
		}
	}
	for _, f := range list {
		p.enqueue(f)
	}
	return nil
}

// allocUnbatched is set_max_huge_pages before Linux 6.7: each folio is
// allocated, prepared (hugetlb_vmemmap_optimize, with its own flushes) and
// enqueued before the next.
func (p *Pool) allocUnbatched(n int) (int, error) {
	for i := 0; i < n; i++ {
		f, err := p.allocFresh()
		if err != nil {
			return i, fmt.Errorf("hugetlb alloc %d %s: %d allocated: %w", n, SizeName(p.size), i, err)
		}
		var optErr error
		if p.shouldOptimize(f) {
			optErr = p.optimizeFolioV66(f)
		}
		// A folio whose vmemmap could not be optimised (ENOMEM) joins
		// the pool as it is.
		p.enqueue(f)
		if optErr != nil && !isENOMEM(optErr) {
			return i + 1, optErr
		}
	}
	return n, nil
}

// allocFresh is alloc_pool_huge_folio: a folio from the buddy allocator
// (prep_compound_page writes every struct page through the vmemmap),
// marked hugetlb. It fails with ENOMEM.
func (p *Pool) allocFresh() (phys.Folio, error) {
	m := p.h.m
	mem := m.Memory()
	pfn, err := mem.Alloc(p.order, phys.KindFolio)
	if err != nil {
		return phys.Folio{}, err
	}
	m.Meter().Note(cost.FolioAllocs, 1, 0, uint64(pfn))
	f := phys.Folio{PFN: pfn, Order: uint8(p.order)}
	if err := p.h.writeStructPages(f, true); err != nil {
		mem.Free(pfn, phys.KindFolio)
		return phys.Folio{}, err
	}
	// __folio_set_hugetlb: a store to the head struct page.
	if err := p.h.setFolioFlag(f, phys.FlagHugeTLB, true); err != nil {
		mem.Free(pfn, phys.KindFolio)
		return phys.Folio{}, err
	}
	return f, nil
}

// enqueue is enqueue_hugetlb_folio: the folio goes to the head of the
// free list.
func (p *Pool) enqueue(f phys.Folio) {
	p.free = append(p.free, f)
	p.member[f.PFN] = true
}

// Free shrinks the pool by n folios in one batch, as one write to
// nr_hugepages does: it takes n folios from the head of the free list,
// restores the vmemmap of those that are optimised (allocating their
// vmemmap pages again) and gives them back to the buddy allocator. It
// returns how many folios it freed.
//
// It fails with EINVAL, changing nothing, for n < 1 or n above the pool's
// size. A folio whose vmemmap cannot be restored for lack of memory stays
// in the pool, as Linux makes it a surplus page; then Free returns the
// number freed with an error wrapping ENOMEM.
//
// Cost: per folio a struct page write per base page and one folio free;
// for an optimised folio the allocation, copy and remap of its vmemmap
// pages and, batched, one flush_tlb_all per batch that restored anything,
// unbatched one kernel range flush per folio.
func (p *Pool) Free(n int) (int, error) {
	if n < 1 || n > len(p.free) {
		return 0, fmt.Errorf("hugetlb free %d %s: the pool holds %d: %w", n, SizeName(p.size), len(p.free), EINVAL)
	}
	// remove_pool_hugetlb_folio takes the free list's head each time;
	// list_add makes page_list run from the last removed to the first.
	list := make([]phys.Folio, 0, n)
	for i := 0; i < n; i++ {
		f := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		delete(p.member, f.PFN)
		list = append([]phys.Folio{f}, list...)
	}
	var kept int
	var err error
	if p.h.m.Knobs().HVOBatch {
		kept, err = p.updateAndFreeBulk(list)
	} else {
		kept, err = p.updateAndFreeV66(list)
	}
	if err != nil {
		return n - kept, err
	}
	if kept > 0 {
		return n - kept, fmt.Errorf("hugetlb free %d %s: %d folios kept in the pool, their vmemmap cannot be restored: %w",
			n, SizeName(p.size), kept, ENOMEM)
	}
	return n, nil
}

// updateAndFreeBulk is update_and_free_pages_bulk since Linux 6.7: restore
// the vmemmap of the whole list in one batch; on ENOMEM free what was
// restored (which gives memory back) and retry, or restore folio by folio,
// keeping in the pool (as surplus) those that still fail. It returns how
// many folios went back to the pool.
func (p *Pool) updateAndFreeBulk(list []phys.Folio) (int, error) {
	kept := 0
	var nonHVO []phys.Folio
	for {
		var err error
		var rest []phys.Folio
		rest, nonHVO, _, err = p.restoreFolios(list, nonHVO)
		list = rest
		if err == nil {
			break
		}
		if !isENOMEM(err) {
			return kept, err
		}
		// bulk_vmemmap_restore_error.
		if len(nonHVO) > 0 {
			for _, f := range nonHVO {
				if err := p.updateAndFreeFolio(f); err != nil {
					return kept, err
				}
			}
			nonHVO = nil
			continue
		}
		for len(list) > 0 {
			f := list[0]
			list = list[1:]
			if err := p.restoreFolio(f, 0); err != nil {
				if !isENOMEM(err) {
					return kept, err
				}
				p.addSurplus(f)
				kept++
				continue
			}
			if err := p.updateAndFreeFolio(f); err != nil {
				return kept, err
			}
			break
		}
	}
	for _, f := range nonHVO {
		if err := p.updateAndFreeFolio(f); err != nil {
			return kept, err
		}
	}
	return kept, nil
}

// updateAndFreeV66 is update_and_free_pages_bulk before Linux 6.7: each
// folio is restored (with its own flush) and freed; one that cannot be
// restored goes back to the pool.
func (p *Pool) updateAndFreeV66(list []phys.Folio) (int, error) {
	kept := 0
	for _, f := range list {
		if p.optimized(f) {
			if err := p.restoreFolioV66(f); err != nil {
				if !isENOMEM(err) {
					return kept, err
				}
				p.addSurplus(f)
				kept++
				continue
			}
		}
		if err := p.updateAndFreeFolio(f); err != nil {
			return kept, err
		}
	}
	return kept, nil
}

// addSurplus is add_hugetlb_folio(h, folio, true): the folio goes back
// to the free list (as a surplus page).
func (p *Pool) addSurplus(f phys.Folio) { p.enqueue(f) }

// updateAndFreeFolio is update_and_free_hugetlb_folio for a folio whose
// vmemmap is whole again: its struct pages are written (the hugetlb and
// compound state cleared) and it goes back to the buddy allocator.
func (p *Pool) updateAndFreeFolio(f phys.Folio) error {
	m := p.h.m
	mem := m.Memory()
	if p.optimized(f) {
		return fmt.Errorf("hugetlb: freeing folio %#x with its vmemmap optimised (model bug): %w", f.PFN, EFAULT)
	}
	if err := p.h.setFolioFlag(f, phys.FlagHugeTLB, false); err != nil {
		return err
	}
	if err := p.h.writeStructPages(f, false); err != nil {
		return err
	}
	mem.Put(f)
	m.Meter().Note(cost.FolioFrees, 1, 0, uint64(f.PFN))
	return nil
}

// lookup validates that f is a folio of this pool.
func (p *Pool) lookup(f phys.Folio) error {
	if !p.member[f.PFN] || f.Order != uint8(p.order) {
		return fmt.Errorf("hugetlb: folio %#x order %d is not in the %s pool: %w", f.PFN, f.Order, SizeName(p.size), EINVAL)
	}
	return nil
}

// isENOMEM reports whether err wraps ENOMEM.
func isENOMEM(err error) bool { return errors.Is(err, ENOMEM) }
