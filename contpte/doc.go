// Package contpte is arm64's transparent management of contiguous PTE
// blocks (arch/arm64/mm/contpte.c and the contpte wrappers of
// arch/arm64/include/asm/pgtable.h), as pgtable.ArchOps logic over
// pgtable's raw primitives.
//
// Constraints: deterministic; below mmu (folios are asked of phys.Memory,
// flushes go through the tlb package); arch-neutral in its code (the
// arm64 backend supplies CONT_PTES and installs the Ops for user address
// spaces, never for init_mm); no allocation per entry operation.
//
// Core code calls the public PTE functions (set_ptes, ptep_get,
// wrprotect_ptes, get_and_clear_full_ptes...), which reach Ops through
// pgtable.ArchOps. Ops keeps the contiguous bit (PTE_CONT) private to
// them: every setter strips it, and the getters may let it show. The raw
// __-prefixed functions underneath are pgtable's RawGet, RawSetPTEs,
// RawGetAndClear and RawClear, which never touch it.
//
// The rules, as Linux has them:
//   - Fold: only set_ptes(nr == 1) tries, after writing, and only when the
//     entry is the last of a block in both its virtual and its physical
//     address, valid, not contiguous and not special (contpte_try_fold).
//     __contpte_try_fold then checks that one folio covers the block and
//     that all CONT_PTES entries, made old and clean, equal pfn_pte of
//     consecutive frames with the new entry's protection. A fold is a
//     contpte_convert to the contiguous form.
//   - Unfold: a convert to the non-contiguous form, before any change of
//     one entry of a block (set_ptes(1), pte_clear, ptep_get_and_clear,
//     wrprotect of one entry, a write-permission change through
//     ptep_set_access_flags) and for the blocks a multi-entry clear or
//     write-protect cuts at its start or end. Fully covered blocks are
//     cleared or write-protected in place; young clearing works on the
//     whole block without unfolding.
//   - contpte_convert clears every entry of the block with the raw
//     get-and-clear, ORing their access and dirty bits, flushes the block
//     (__flush_tlb_range with a page stride, last level) unless the CPUs
//     have BBML2 without conflict aborts, and repaints all CONT_PTES
//     entries with the same ORed access and dirty bits.
//   - set_ptes(nr > 1) of not-present entries sets the contiguous bit
//     directly on every block it covers whole whose physical address is
//     aligned: no fold, no convert, no flush.
//   - ptep_get ORs access and dirty over the block; ptep_get_lockless does
//     the same but re-reads the block until it is stable.
//
// Costs: every raw primitive counts as pgtable counts it (entry reads,
// pte_sets, pte_clears). Each fold counts contpte_folds and
// contpte_converts; each unfold contpte_unfolds and contpte_converts; the
// direct contiguous set of set_ptes(nr > 1) counts neither. The convert's
// flush is arm64's internal __flush_tlb_range, not a call of the flush API
// by core code: it does not count tlb_flush_range. It is handed straight
// to the arm64 TLB policy (tlb.Policy.Flush), which invalidates the block
// on every CPU (a hardware broadcast) and counts the TLBI instructions,
// the DSB and the entries dropped, as for any range flush.
//
// With contpte switched off the Ops behave exactly as pgtable.GenericOps,
// with the same counts. Because a script may switch contpte off while
// blocks are folded (Linux cannot: it is a Kconfig option), blocks that
// are still folded keep being unfolded and gathered when touched; nothing
// new is folded.
package contpte
