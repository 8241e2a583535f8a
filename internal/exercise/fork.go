package exercise

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// pteState is what one page's PTE says, in parent or child.
type pteState struct {
	present, write, dirty, young, cont bool
	pfn                                phys.PFN
}

// forkPage is one page of a fork exercise and what the model did to it.
type forkPage struct {
	va             uint64
	shared         bool     // in a MAP_SHARED mapping
	before, parent pteState // the parent's PTE before and after the fork
	child          pteState
}

// forkCase is what a fork generator built, for tests.
type forkCase struct {
	m             *mmu.Machine
	parent, child *mmu.MM
	pages         []forkPage
	// folio is the folio the refcount question asks about, with its
	// counts before and after.
	folio                  phys.Folio
	refBefore, refAfter    int
	mapBefore, mapAfter    int
	counts                 cost.Counts
	batchOn, protected     bool
	sharedVA, pinnedVA     uint64
	regions                []forkRegion
	wrprotectedPTEs        int
	childWritable, copied  int
	parentStillWritable    int
	childCleaned, childOld int
}

// forkRegion is one mapping of the exercise.
type forkRegion struct {
	start, end uint64
	desc       string
}

func genFork(r *rng, archName string) (*Exercise, error) {
	e, _, err := buildFork(r, archName)
	return e, err
}

func buildFork(r *rng, archName string) (*Exercise, *forkCase, error) {
	batch := r.chance(3, 4)
	knobs := []string{"thp=never", "fork_batch=" + onOff(batch)}
	m, err := newMachine(archName, 1, 1, knobs...)
	if err != nil {
		return nil, nil, err
	}
	a := m.Arch()
	ps := a.PageSize()
	mm, err := m.NewMM("parent")
	if err != nil {
		return nil, nil, err
	}
	tc := &forkCase{m: m, parent: mm, batchOn: batch}
	var script text
	script.f("arch %s", archName)
	script.f("config %s", strings.Join(knobs, " "))
	rw := mmu.ProtRead | mmu.ProtWrite
	base := uint64(0x7f00_0000_0000) + uint64(r.intn(64))*(2<<20)
	if a.User.End < base {
		base = 0x4000_0000
	}
	// Region 1: private anonymous memory in large folios, written.
	folio := pickOf(r, uint64(16<<10), 64<<10, 64<<10)
	if ps > 4096 {
		folio = 4 * ps
	}
	nFolios := r.between(2, 3)
	r1 := base
	len1 := uint64(nFolios) * folio
	if err := mm.Mmap(r1, len1, rw, mmu.MapFlags{FolioSize: folio}); err != nil {
		return nil, nil, err
	}
	script.f("mmap %#x %s rw folio=%s", r1, size(len1), size(folio))
	if err := writeRange(mm, &script, r1, len1, ps); err != nil {
		return nil, nil, err
	}
	tc.regions = append(tc.regions, forkRegion{r1, r1 + len1, fmt.Sprintf("private, %s folios, written", size(folio))})
	if r.chance(1, 3) {
		// Make one page read-only: the VMA splits, and a batch stops at
		// a VMA's end.
		pg := r1 + folio + uint64(r.intn(int(folio/ps)))*ps
		if err := mm.Mprotect(pg, ps, mmu.ProtRead); err != nil {
			return nil, nil, err
		}
		script.f("mprotect %#x %s r", pg, size(ps))
		tc.protected = true
	}
	next := r1 + len1 + 16*ps
	// Region 2: shared anonymous memory, written.
	if r.chance(1, 2) {
		n := uint64(r.between(2, 3))
		if err := mm.Mmap(next, n*ps, rw, mmu.MapFlags{Shared: true}); err != nil {
			return nil, nil, err
		}
		script.f("mmap %#x %s rw shared", next, size(n*ps))
		if err := writeRange(mm, &script, next, n*ps, ps); err != nil {
			return nil, nil, err
		}
		tc.sharedVA = next
		tc.regions = append(tc.regions, forkRegion{next, next + n*ps, "shared, written"})
		next += n*ps + 16*ps
	}
	// Region 3: private base pages, written, one pinned; or read only.
	n3 := uint64(r.between(2, 4))
	if err := mm.Mmap(next, n3*ps, rw, mmu.MapFlags{}); err != nil {
		return nil, nil, err
	}
	script.f("mmap %#x %s rw", next, size(n3*ps))
	if r.chance(2, 3) {
		if err := writeRange(mm, &script, next, n3*ps, ps); err != nil {
			return nil, nil, err
		}
		pin := next + uint64(r.intn(int(n3)))*ps
		if err := mm.Pin(pin, ps); err != nil {
			return nil, nil, err
		}
		script.f("pin %#x %s", pin, size(ps))
		tc.pinnedVA = pin
		tc.regions = append(tc.regions, forkRegion{next, next + n3*ps, "private, base pages, written, one pinned"})
	} else {
		for va := next; va < next+n3*ps; va += ps {
			if _, err := mm.Read(0, va); err != nil {
				return nil, nil, err
			}
		}
		script.f("read %#x %s", next, size(n3*ps))
		tc.regions = append(tc.regions, forkRegion{next, next + n3*ps, "private, only read"})
	}
	script.f("fork child")

	f := &a.Format
	state := func(mm *mmu.MM, va uint64) pteState {
		t, ok := mm.Translate(va)
		if !ok {
			return pteState{}
		}
		return pteState{present: true, write: f.Write(t.Entry, t.Level), dirty: f.Dirty(t.Entry, t.Level),
			young: f.Young(t.Entry, t.Level), cont: f.Cont(t.Entry, t.Level), pfn: t.PFN}
	}
	for _, reg := range tc.regions {
		for va := reg.start; va < reg.end; va += ps {
			tc.pages = append(tc.pages, forkPage{va: va, before: state(mm, va), shared: strings.HasPrefix(reg.desc, "shared")})
		}
	}
	var beforeDump text
	if err := dumpIndented(&beforeDump, mm, tc.regions, "parent, before fork"); err != nil {
		return nil, nil, err
	}
	mem := m.Memory()
	first, _ := mm.Translate(r1)
	tc.folio = mem.FolioOf(first.PFN)
	tc.refBefore, tc.mapBefore = mem.Refcount(tc.folio), mem.Mapcount(tc.folio)
	m.Reset()
	child, err := fork.Fork(mm, "child")
	if err != nil {
		return nil, nil, err
	}
	tc.child = child
	tc.counts = mm.Meter().Counts()
	tc.refAfter, tc.mapAfter = mem.Refcount(tc.folio), mem.Mapcount(tc.folio)
	for i := range tc.pages {
		p := &tc.pages[i]
		p.parent, p.child = state(mm, p.va), state(child, p.va)
		if p.before.write && !p.parent.write {
			tc.wrprotectedPTEs++
		}
		if p.parent.write {
			tc.parentStillWritable++
		}
		if p.child.write {
			tc.childWritable++
		}
		if p.child.present && p.child.pfn != p.parent.pfn {
			tc.copied++
		}
	}

	var pb text
	pb.para("", fmt.Sprintf("A process on %s sets up its memory with this script, then forks:", archName))
	pb.f("")
	for _, l := range strings.Split(strings.TrimSuffix(script.String(), "\n"), "\n") {
		pb.f("    %s", l)
	}
	pb.f("")
	pb.para("", fmt.Sprintf("Pages are %s; thp=never keeps large folios mapped by PTEs; fork_batch=%s %s.", size(ps), onOff(batch),
		map[bool]string{true: "lets fork copy a run of PTEs of one large folio in one step (Linux 6.9)",
			false: "makes fork copy one PTE at a time (before Linux 6.9)"}[batch]))
	pb.f("")
	pb.f("The parent's page tables before the fork:")
	pb.f("")
	pb.WriteString(beforeDump.String())
	pb.f("")
	pb.f("Questions:")
	pb.para("  ", "1. Which of the parent's PTEs does fork write-protect, and which stay writable?")
	pb.para("  ", "2. Which of the child's PTEs are writable, which are clean or old, and which map a page of their own?")
	pb.para("  ", "3. How many copy steps does copy_pte_range take (copy_pte_iters), how many of them copy more than one PTE (fork_batches), how many PTEs are copied (fork_ptes) and how many pages copied at once (fork_page_copies)?")
	pb.para("  ", fmt.Sprintf("4. The folio at %#x: what are its refcount and mapcount before and after the fork?", r1))
	pb.para("  ", "5. How many TLB flushes does the fork make, and of what?")

	var ans text
	ans.para("", "The rules (mm/memory.c): copy_page_range copies each VMA that has anonymous pages; "+
		"copy_pte_range walks a PTE table and hands each present PTE to copy_present_ptes. With batching, "+
		"folio_pte_batch counts the following PTEs that map the next pages of the same large folio, inside "+
		"one VMA and one PTE table (the write bit is ignored and merged; for a private mapping the dirty bit "+
		"must match), and the run is copied in one step: folio_ref_add(nr) first, then "+
		"folio_try_dup_anon_rmap_ptes (mapcount +nr: refcount is never below mapcount). __copy_present_ptes "+
		"then, for a private (COW) mapping with a writable PTE, write-protects the parent's run "+
		"(wrprotect_ptes) and the child's copy (pte_wrprotect); a shared mapping keeps its write bit and "+
		"the child's copy is made clean (pte_mkclean); every child PTE is made old (pte_mkold); "+
		"set_ptes writes the child's run. A page that may be pinned for DMA cannot be shared: "+
		"folio_try_dup_anon_rmap fails and copy_present_page gives the child a copy now, leaving the parent "+
		"writable. The zero page has no struct-page reference to take (vm_normal_page returns none). No "+
		"flush happens while copying: dup_mmap ends with one flush_tlb_mm of the parent.")
	ans.f("")
	ans.f("1 and 2. Page by page (parent before -> after | child):")
	for _, run := range forkRuns(tc.pages, ps) {
		ans.f("   %s", run)
	}
	c := tc.counts
	ans.f("")
	ans.f("   %s write-protected in the parent, %s still writable;", plural(uint64(tc.wrprotectedPTEs), "PTE", "PTEs"), plural(uint64(tc.parentStillWritable), "PTE", "PTEs"))
	ans.f("   in the child %s writable, %s mapping a page copied at fork.", plural(uint64(tc.childWritable), "PTE", "PTEs"), plural(uint64(tc.copied), "PTE", "PTEs"))
	ans.f("")
	ans.f("3. copy_pte_iters %d, fork_batches %d, fork_ptes %d, fork_page_copies %d.", c[cost.CopyPTEIters], c[cost.ForkBatches], c[cost.ForkPTEs], c[cost.ForkPageCopies])
	if batch {
		ans.para("   ", fmt.Sprintf("A %s folio is %d pages: its PTEs are one batch unless a VMA boundary "+
			"(an mprotect split) or a PTE table's end cuts the run; base pages and the zero page take one "+
			"step each.", size(folio), folio/ps))
	} else {
		ans.para("   ", "Without batching every present PTE is its own step, large folio or not.")
	}
	ans.f("")
	ans.f("4. folio at pfn %#x (%s): refcount %d -> %d, mapcount %d -> %d.", uint64(tc.folio.PFN), size(tc.folio.NrPages()*ps),
		tc.refBefore, tc.refAfter, tc.mapBefore, tc.mapAfter)
	ans.para("   ", "Each PTE the child gets adds one reference and one mapping (folio_ref_add then the rmap dup).")
	ans.f("")
	ans.f("5. tlb_flush_mm %d, tlb_flush_range %d, tlb_flush_page %d: dup_mmap's one flush_tlb_mm(oldmm), after every VMA is copied.",
		c[cost.TLBFlushMM], c[cost.TLBFlushRange], c[cost.TLBFlushPage])
	ans.f("")
	ans.f("The child's page tables after the fork:")
	ans.f("")
	if err := dumpIndented(&ans, child, tc.regions, "child, after fork"); err != nil {
		return nil, nil, err
	}
	return &Exercise{Problem: pb.String(), Answer: ans.String()}, tc, nil
}

// writeRange writes every page of [va, va+n) and records the script line.
func writeRange(mm *mmu.MM, script *text, va, n, ps uint64) error {
	for p := va; p < va+n; p += ps {
		if err := mm.Write(0, p, p); err != nil {
			return err
		}
	}
	script.f("write %#x %s", va, size(n))
	return nil
}

// dumpIndented writes the tree dump of each region, indented.
func dumpIndented(t *text, mm *mmu.MM, regions []forkRegion, title string) error {
	lo, hi := regions[0].start, regions[len(regions)-1].end
	var b strings.Builder
	if err := mm.PageTable().Dump(&b, pgtable.DumpOptions{Start: lo, End: hi, Title: title}); err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		t.f("    %s", l)
	}
	return nil
}

// spell describes a PTE state in a few letters.
func (s pteState) spell() string {
	if !s.present {
		return "none"
	}
	w := []string{map[bool]string{true: "rw", false: "r-"}[s.write]}
	if s.dirty {
		w = append(w, "dirty")
	} else {
		w = append(w, "clean")
	}
	if !s.young {
		w = append(w, "old")
	}
	if s.cont {
		w = append(w, "cont")
	}
	return strings.Join(w, " ")
}

// forkRuns groups consecutive pages whose states read alike.
func forkRuns(pages []forkPage, ps uint64) []string {
	var out []string
	for i := 0; i < len(pages); {
		j := i + 1
		key := func(p forkPage) string {
			same := p.child.present && p.child.pfn == p.parent.pfn
			return p.before.spell() + "|" + p.parent.spell() + "|" + p.child.spell() + fmt.Sprint(same)
		}
		for j < len(pages) && pages[j].va == pages[j-1].va+ps && key(pages[j]) == key(pages[i]) {
			j++
		}
		p := pages[i]
		rng := fmt.Sprintf("%#x", p.va)
		if j-i > 1 {
			rng = fmt.Sprintf("%#x-%#x", p.va, pages[j-1].va+ps-1)
		}
		why := ""
		switch {
		case !p.before.present:
			why = "not mapped: nothing to copy"
		case p.child.present && p.child.pfn != p.parent.pfn:
			why = "pinned: copied now (copy_present_page), parent keeps its write bit"
		case !p.child.present && p.shared:
			why = "shared, no anon_vma: not copied (vma_needs_copy), the child faults it in from shmem"
		case !p.child.present:
			why = "not copied: the child will fault it in"
		case p.before.write && !p.parent.write:
			why = "private and writable: write-protected on both sides (COW)"
		case p.before.write && p.parent.write:
			why = "shared: stays writable, the child's copy is clean"
		default:
			why = "read-only already: nothing to protect"
		}
		out = append(out, fmt.Sprintf("%-31s %-22s -> %-16s | child %-16s %s", rng, p.before.spell(), p.parent.spell(), p.child.spell(), why))
		i = j
	}
	return out
}
