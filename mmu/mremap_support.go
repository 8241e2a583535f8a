package mmu

import (
	"fmt"

	"github.com/ptsim/ptsim/pgtable"
)

// The helpers below serve package mremap, whose move_page_tables and
// move_vma live inside mm/ in Linux and so reach two mm internals: the
// s390 table upgrade that get_unmapped_area performs, and the PTE table a
// THP mapping keeps deposited.

// GrowFor makes the page table able to map [addr, addr+size), adding
// table levels as s390's crst_table_upgrade does when get_unmapped_area
// hands out an address above the current limit (and reloading the
// address space on every CPU, which flushes its TLB). On other arches,
// and when the range fits already, it does nothing. It fails with ENOMEM
// when the range lies beyond the user address space or a table cannot be
// allocated; then the table is as it was. Cost: one table allocation per
// level added, and a flush_tlb_mm.
func (mm *MM) GrowFor(addr, size uint64) error { return mm.growFor(addr, size) }

// MoveHugePMDDeposit is the deposit half of move_huge_pmd: when
// pmd_move_must_withdraw says so (the two PMDs have different split PMD
// locks and the VMA is anonymous), Linux withdraws the PTE table
// deposited under the old PMD (pgtable_trans_huge_withdraw) and deposits
// it under the new one, so that a later split or zap at the new address
// finds it. The model keeps every deposit of an address space on one
// list (Linux's layout without split PMD locks, mm->pmd_huge_pte), so the
// withdrawn table goes straight back on the list: the table follows the
// mapping and the count of deposits does not change. It reports whether
// a withdraw and deposit happened, and fails with EINVAL, changing
// nothing, when no table is deposited (a huge PMD without its deposit is
// a model bug). It counts nothing: Linux does it under the PMD locks the
// caller has counted.
func (mm *MM) MoveHugePMDDeposit(oldPMD, newPMD pgtable.Ptr, anon bool) (bool, error) {
	if len(mm.deposits) == 0 {
		return false, fmt.Errorf("move huge pmd: no deposited page table: %w", EINVAL)
	}
	if oldPMD.T == newPMD.T || !anon {
		return false, nil
	}
	t := mm.withdrawDeposit(false)
	mm.deposits = append(mm.deposits, t)
	return true, nil
}
