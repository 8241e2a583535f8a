package pgtable

// TableFreer receives the tables that FreePgtables detaches. An mmu_gather
// collects them and frees them after the TLB flush, so that no CPU's walk
// cache can reach a freed table; FreeNow frees them at once.
type TableFreer interface {
	// RemoveTable takes a detached, empty table (pte_free_tlb).
	RemoveTable(pt *PageTable, t *Table)
}

// FreeNow is a TableFreer that frees each table at once.
type FreeNow struct{}

// RemoveTable frees t immediately.
func (FreeNow) RemoveTable(pt *PageTable, t *Table) { _ = pt.FreeTable(t) }

// FreePgtables frees the page tables that map only [addr, end), as Linux's
// free_pgd_range does after an unmap: floor is the end of the previous
// mapping (or 0) and ceiling the start of the next one (or 0 for the top),
// so tables shared with a neighbour survive. PTE tables go at PMD
// granularity; an upper table goes when its whole span lies in
// [floor, ceiling). Each detached table is handed to fr.
// Precondition: nothing is mapped in [addr, end).
func (pt *PageTable) FreePgtables(addr, end, floor, ceiling uint64, fr TableFreer) {
	pmdMask := pt.geo.Mask(PMD)
	pmdSize := pt.geo.Size(PMD)
	addr &= pmdMask
	if addr < floor {
		addr += pmdSize
		if addr == 0 {
			return
		}
	}
	if ceiling != 0 {
		ceiling &= pmdMask
		if ceiling == 0 {
			return
		}
	}
	if end-1 > ceiling-1 {
		end -= pmdSize
	}
	if addr > end-1 {
		return
	}
	pt.freeRange(pt.root, addr, end, floor, ceiling, fr)
}

// freeRange frees the tables below t in [addr, end) (free_p4d_range,
// free_pud_range, free_pmd_range, free_pte_range in one loop).
func (pt *PageTable) freeRange(t *Table, addr, end, floor, ceiling uint64, fr TableFreer) {
	size := t.entrySize()
	mask := ^(size - 1)
	for a := addr; ; {
		next := (a + size) & mask
		if next-1 >= end-1 {
			next = end
		}
		i := pt.index(t, a)
		if c := t.next[i]; c != nil {
			if c.level == PTE {
				pt.ClearTable(a, Ptr{T: t, I: i})
				fr.RemoveTable(pt, c)
			} else {
				pt.freeRange(c, a, next, floor, ceiling, fr)
				if pt.spanFree(a, next, mask, floor, ceiling) && c.used == 0 {
					pt.ClearTable(a, Ptr{T: t, I: i})
					fr.RemoveTable(pt, c)
				}
			}
		}
		if next == end {
			return
		}
		a = next
	}
}

// spanFree reports whether the table behind the entry covering [a, next)
// lies inside [floor, ceiling) (the tail checks of free_pXd_range).
func (pt *PageTable) spanFree(a, next, mask, floor, ceiling uint64) bool {
	if a&mask < floor {
		return false
	}
	if ceiling != 0 {
		c := ceiling & mask
		if c == 0 || next-1 > c-1 {
			return false
		}
	}
	return true
}
