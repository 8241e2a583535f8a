package phys

import (
	"fmt"

	"github.com/ptsim/ptsim/internal/errno"
)

// SplitPage turns the allocated block of order k whose first frame is pfn
// into 2^k blocks of order 0, each of which can then be freed on its own
// (Linux's split_page on a non-compound higher-order allocation). The head
// keeps its refcount, flags and content; every other frame gets refcount 1,
// the head's flags and keeps its content. Frames stay allocated and counted
// under the same kind. The vmemmap optimisation needs it: the vmemmap is
// backed by PMD-sized blocks, and once a vmemmap PMD is split into PTEs its
// 4 KiB pieces are freed one by one.
//
// It fails with EINVAL, changing nothing, when pfn is not the head of an
// allocated block or when a frame of the block is mapped by a page table.
// Splitting an order-0 block is a no-op. Cost: one metadata write per frame.
func (m *Memory) SplitPage(pfn PFN) error {
	if !m.Valid(pfn) {
		return fmt.Errorf("phys: split_page %#x: beyond memory: %w", pfn, errno.EINVAL)
	}
	head := m.Page(pfn)
	if head.flags&FlagAllocated == 0 || head.flags&FlagTail != 0 {
		return fmt.Errorf("phys: split_page %#x: not the head of an allocated block: %w", pfn, errno.EINVAL)
	}
	order := head.Order()
	if order == 0 {
		return nil
	}
	ps := m.pages(pfn, 1<<order)
	for i := range ps {
		if ps[i].mapcnt != 0 {
			return fmt.Errorf("phys: split_page %#x: page %d is mapped: %w", pfn, i, errno.EINVAL)
		}
	}
	flags := head.flags &^ (orderMask | FlagTail)
	ps[0].flags = flags
	for i := 1; i < len(ps); i++ {
		ps[i].flags = flags
		ps[i].ref = 1
	}
	return nil
}
