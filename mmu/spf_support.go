package mmu

// Exported helpers for the spf package (speculative page faults and
// per-VMA locks). They expose small pieces of the fault and unmap paths so
// that spf can run them in steps, with its deterministic scheduler
// choosing what other simulated threads do in between.

import (
	"fmt"
	"slices"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// SPFPTLModel says when munmap frees a PTE table's split lock relative to
// the table itself, and how table freeing waits for speculative walkers
// (`config spf_ptl=...`). David Hildenbrand's objection to speculative
// faults (2022-01-31) is the difference between the first two.
type SPFPTLModel uint8

const (
	// PTLRCU: tables (and their locks) are freed by RCU once every
	// speculative walker that could see them has left its read section;
	// munmap does not wait (MMU_GATHER_RCU_TABLE_FREE, and today's Linux,
	// where the PTE lock is destroyed in the RCU callback).
	PTLRCU SPFPTLModel = iota
	// PTLTableLifetime: the lock lives as long as the table; the table is
	// freed after munmap's TLB flush, which waits for walkers with IRQs
	// off (the IPI cannot be answered until they leave).
	PTLTableLifetime
	// PTLFreeEarly: free_pte_range -> pte_free_tlb -> ptlock_free frees
	// the lock at once and only the table page waits for the flush, as in
	// Linux 5.17: a speculative commit's trylock can touch a freed lock.
	PTLFreeEarly
)

var spfPTLNames = [...]string{"rcu", "table_lifetime", "free_early"}

// String spells the model as `config spf_ptl=` does.
func (p SPFPTLModel) String() string {
	if int(p) < len(spfPTLNames) {
		return spfPTLNames[p]
	}
	return fmt.Sprintf("spf_ptl(%d)", uint8(p))
}

func init() {
	knobSetters["spf_ptl"] = func(k *Knobs, a *arch.Arch, v string) error {
		for i, n := range spfPTLNames {
			if n == v {
				k.SPFPTL = SPFPTLModel(i)
				return nil
			}
		}
		return fmt.Errorf("spf_ptl=%s: want rcu, table_lifetime or free_early", v)
	}
}

// TryAccess is one attempt of an access by CPU cpu at addr: TLB lookup,
// and on a miss a hardware walk that fills the TLB; ok is false when the
// access must fault. It never runs a fault handler. Errors: EINVAL for a
// bad CPU or a dead address space.
func (mm *MM) TryAccess(cpu int, addr uint64, kind AccessKind) (pfn phys.PFN, ok bool, err error) {
	if cpu < 0 || cpu >= mm.m.cpus {
		return 0, false, fmt.Errorf("access %#x: cpu %d of %d: %w", addr, cpu, mm.m.cpus, EINVAL)
	}
	if mm.dead || mm.kernel || kind > Exec {
		return 0, false, fmt.Errorf("access %#x (%v): address space %s is not a live user mm, or a bad kind: %w", addr, kind, mm.name, EINVAL)
	}
	c := mm.m.tlb.CPU(cpu)
	if c.Current() != mm.tlb {
		c.Switch(mm.tlb)
	}
	pfn, ok = mm.translate(c, addr, kind)
	return pfn, ok, nil
}

// AccessAllowed reports whether v's protection allows the access
// (access_error, inverted).
func AccessAllowed(v *VMA, kind AccessKind) bool { return v != nil && accessOK(v, kind) }

// FaultLocked is the body of a classic fault once the caller holds
// mmap_lock for reading (or its VMA's per-VMA lock): find_vma, the access
// check, and the handlers. Unlike HandleFault it counts neither the fault
// nor the lock, which the caller's path counts. EFAULT when no VMA allows
// the access, ENOMEM when memory runs out.
func (mm *MM) FaultLocked(addr uint64, kind AccessKind) error {
	vma := mm.FindVMA(addr)
	if vma == nil {
		return fmt.Errorf("%s fault at %#x: no mapping: %w", kind, addr, EFAULT)
	}
	if !accessOK(vma, kind) {
		return fmt.Errorf("%s fault at %#x: %s mapping forbids it: %w", kind, addr, vma.Flags, EFAULT)
	}
	return mm.HandleVMAFault(&Fault{VMA: vma, Addr: addr &^ (mm.pageSize() - 1), Kind: kind})
}

// PrepareAnonPage allocates and zeroes one base page for a speculative
// anonymous fault, before its commit (do_anonymous_page's
// alloc_zeroed_user_highpage_movable). The folio holds one reference that
// CommitAnonPage hands to the page table or ReleasePage drops. ENOMEM when
// memory runs out.
func (mm *MM) PrepareAnonPage() (phys.Folio, error) { return mm.allocFolio(0, false) }

// ReleasePage drops a prepared page that was never mapped (an aborted
// speculative fault).
func (mm *MM) ReleasePage(f phys.Folio) { mm.RefSub(f, 1) }

// CommitAnonPage maps the prepared page f at addr through ptep, the
// commit of do_anonymous_page under the PTE lock: a new exclusive
// anonymous mapping, RSS, set_pte_at. It reports false, changing nothing,
// when the PTE is no longer empty (another thread mapped it first); the
// caller then releases f.
// Precondition: the caller holds ptep's table lock; v is anonymous and
// its range contains addr.
func (mm *MM) CommitAnonPage(v *VMA, addr uint64, ptep pgtable.Ptr, f phys.Folio) bool {
	fm := &mm.m.arch.Format
	if e := mm.pt.PtepGet(addr, ptep); !fm.IsNone(e, pgtable.PTE) {
		return false
	}
	mm.meter.Add(cost.FaultsAnon, 1)
	mm.AddNewAnonRmap(f, f.PFN, 1, true)
	mm.AddRSS(MMAnonPages, 1)
	mm.pt.SetPTEAt(addr, ptep, mm.newAnonPTE(v, f.PFN))
	return true
}

// SplitEnds splits the VMAs that straddle start or end, so that every VMA
// overlapping [start, end) lies inside it (the first step of munmap).
// Precondition: the caller holds mmap_lock for writing.
func (mm *MM) SplitEnds(start, end uint64) error { return mm.splitEnds(start, end) }

// UnmapDetach is munmap's teardown of [start, end) with the freeing of
// page tables left to the caller: the VMAs in the range (already split
// and write-locked) are removed, their pages zapped, the tables that only
// they used detached (free_pgtables), the TLBs flushed once with
// freed_tables (so no walk cache keeps a detached table), and the pages
// freed. It returns the detached tables, still allocated; the caller frees
// them with FreeDetached once no speculative walker can reach them. With
// freePTLEarly each PTE table's lock is freed at detach time, as
// pte_free_tlb's ptlock_free does in Linux 5.17.
//
// While detached tables wait, the invariant checker counts them as held
// (parked) tables.
// Precondition: the caller holds mmap_lock for writing.
func (mm *MM) UnmapDetach(start, end uint64, freePTLEarly bool) []*pgtable.Table {
	vmas := mm.vmas.intersecting(start, end)
	if len(vmas) == 0 {
		return nil
	}
	lo, hi := vmas[0].Start, vmas[len(vmas)-1].End
	prev, next := mm.vmas.neighbours(lo, hi)
	floor, ceiling := uint64(0), uint64(0)
	if prev != nil {
		floor = prev.End
	}
	if next != nil {
		ceiling = next.Start
	}
	g := mm.m.tlb.NewGather(mm.tlb, false)
	for _, v := range vmas {
		mm.VMAStartWrite(v)
		mm.ZapRange(g, v, v.Start, v.End)
	}
	col := &detachCollector{g: g, freePTL: freePTLEarly}
	mm.pt.FreePgtables(lo, hi, floor, ceiling, col)
	// tlb_flush_mmu with the gathered range and freed_tables: the policy
	// carries it out as the gather's own flush would.
	if s, e := g.Range(); g.Pending() {
		mm.m.tlb.FlushTLBMMRange(mm.tlb, s, e, g.StrideShift(), len(col.tables) > 0)
	}
	mm.dropPending()
	for _, v := range vmas {
		mm.RemoveVMA(v)
	}
	// Park the detached tables in front of the THP deposits: the checker
	// counts deposits as held table frames, and withdrawals take from the
	// back, so a parked table is never withdrawn while a deposit remains.
	mm.deposits = append(append([]*pgtable.Table(nil), col.tables...), mm.deposits...)
	return col.tables
}

// FreeDetached frees tables that UnmapDetach returned (the end of the
// grace period, or of the IPI wait). EINVAL for a table not parked.
func (mm *MM) FreeDetached(tables []*pgtable.Table) error {
	for _, t := range tables {
		if t == nil || !slices.Contains(mm.deposits, t) {
			return fmt.Errorf("free detached table %v: not parked: %w", t, EINVAL)
		}
	}
	for _, t := range tables {
		i := -1
		for j, d := range mm.deposits {
			if d == t {
				i = j
				break
			}
		}
		if i < 0 {
			return fmt.Errorf("free detached table pfn %#x: not parked: %w", t.PFN(), EINVAL)
		}
		mm.deposits = append(mm.deposits[:i], mm.deposits[i+1:]...)
		if err := mm.pt.FreeTable(t); err != nil {
			return err
		}
	}
	return nil
}

// detachCollector receives the tables free_pgtables detaches: it widens
// the gather's flush range as pte_free_tlb does and keeps the tables.
type detachCollector struct {
	// g is the gather whose range grows.
	g interface {
		AddRange(start, end uint64, strideShift uint)
	}
	// freePTL frees each PTE table's lock at once (ptlock_free).
	freePTL bool
	// tables are the detached tables, in detach order.
	tables []*pgtable.Table
}

// RemoveTable takes one detached table (pte_free_tlb, pmd_free_tlb...).
func (d *detachCollector) RemoveTable(pt *pgtable.PageTable, t *pgtable.Table) {
	geo := pt.Geometry()
	shift := geo.PageShift
	for i, tg := range geo.Tables {
		if tg.Level == t.Level() && i > 0 {
			shift = geo.Tables[i-1].Shift
		}
	}
	d.g.AddRange(t.Base(), t.Base()+geo.PageSize(), shift)
	if d.freePTL && t.Level() == pgtable.PTE {
		t.PTL().Free()
	}
	d.tables = append(d.tables, t)
}

// AnonMergeTargets returns the neighbours that a private anonymous Mmap of
// [addr, addr+length) with prot would merge with (vma_merge's prev and
// next), nil where it would not: the VMAs whose vma_start_write a Linux
// 6.4 writer takes before expanding or removing them.
func (mm *MM) AnonMergeTargets(addr, length uint64, prot Prot) (prev, next *VMA) {
	probe := &VMA{Start: addr, End: addr + length, Flags: prot.flags() | VMMayRead | VMMayWrite | VMMayExec}
	p, n := mm.vmas.neighbours(probe.Start, probe.End)
	if p != nil && mergeable(p, probe, mm.pageShift()) {
		prev = p
	}
	if n != nil && mergeable(probe, n, mm.pageShift()) {
		next = n
	}
	return prev, next
}
