package exercise

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
	"github.com/ptsim/ptsim/pgtable"
)

// recorder keeps every primitive step the model traces.
type recorder struct{ recs []cost.Record }

// Trace records r.
func (t *recorder) Trace(r cost.Record) { t.recs = append(t.recs, r) }

// moveStep is one thing move_page_tables did, read off the trace: a
// whole entry moved, or a run of PTEs moved one by one, with the flushes
// that followed it.
type moveStep struct {
	// path is "pud", "pmd", "huge-pmd" or "pte".
	path string
	// oldStart, oldEnd bound the old addresses moved.
	oldStart, oldEnd uint64
	// entries is how many entries moved (PTEs for "pte").
	entries uint64
	// flushes are the flush_tlb_range calls (start, length) it made.
	flushes [][2]uint64
	// dcache counts sparc64 D-cache flushes in the step.
	dcache uint64
}

// mremapCase is what an mremap generator built, for tests.
type mremapCase struct {
	m            *mmu.Machine
	mm           *mmu.MM
	src, dst, ln uint64
	// values maps each written old page to the value written.
	values map[uint64]uint64
	steps  []moveStep
	// afterFlushes are flushes after the last move step (the old VMA's
	// unmap).
	afterFlushes [][2]uint64
	counts       cost.Counts
}

func genMremap(r *rng, archName string) (*Exercise, error) {
	e, _, err := buildMremap(r, archName)
	return e, err
}

func buildMremap(r *rng, archName string) (*Exercise, *mremapCase, error) {
	var knobs []string
	switch archName {
	case "x86_64", "arm64":
		switch r.intn(5) {
		case 0:
			knobs = []string{"move_pud=off"}
		case 1:
			knobs = []string{"move_pmd=off", "move_pud=off"}
		}
	}
	m, err := newMachine(archName, 1, 1, knobs...)
	if err != nil {
		return nil, nil, err
	}
	a := m.Arch()
	geo := &a.Geometry
	ps, pmd, pud := a.PageSize(), geo.Size(pgtable.PMD), geo.Size(pgtable.PUD)
	mm, err := m.NewMM("task")
	if err != nil {
		return nil, nil, err
	}
	top := a.User.End
	if a.DefaultUserTop != 0 {
		top = a.DefaultUserTop
	}
	top = min(top, uint64(1)<<47)
	// Source and destination in different PUD-sized regions, far apart.
	slots := top / pud / 4
	srcRegion := uint64(r.between(1, int(min(slots, 1<<16)))) * pud
	dstRegion := srcRegion + uint64(r.between(2, 3))*pud
	if archName == "um32" {
		srcRegion, dstRegion = 0x10000000+uint64(r.intn(8))*pmd, 0x40000000+uint64(r.intn(8))*pmd
	}
	k := m.Knobs()
	big := k.MovePUD && r.chance(1, 3)
	var src, dst, ln uint64
	values := map[uint64]uint64{}
	var writes [][2]uint64
	if big {
		// One PUD's worth, sparsely written: a PUD move carries a whole
		// PMD table whatever it holds.
		src, ln = srcRegion, pud
		dst = dstRegion
		if r.chance(1, 3) {
			dst += pmd * uint64(r.between(1, 8))
		}
		for n := r.between(2, 4); n > 0; n-- {
			va := src + uint64(r.intn(int(pud/ps)))*ps
			writes = append(writes, [2]uint64{va, ps})
		}
	} else {
		off := uint64(0)
		if r.chance(1, 2) {
			off = uint64(r.between(1, int(pmd/ps)-1)) * ps
		}
		src = srcRegion + pmd*uint64(r.intn(4)) + off
		ln = pmd*uint64(r.between(1, 2)) + uint64(r.intn(int(pmd/ps)/2))*ps
		if ln == 0 {
			ln = ps
		}
		dstOff := off
		if r.chance(1, 2) {
			dstOff = uint64(r.intn(int(pmd/ps))) * ps
		}
		dst = dstRegion + pmd*uint64(r.intn(4)) + dstOff
		// Write every page of some PMD windows, a few pages of others,
		// and leave some untouched.
		for w := src &^ (pmd - 1); w < src+ln; w += pmd {
			lo, hi := max(w, src), min(w+pmd, src+ln)
			switch r.intn(4) {
			case 0, 1:
				writes = append(writes, [2]uint64{lo, hi - lo})
			case 2:
				for n := r.between(1, 3); n > 0; n-- {
					writes = append(writes, [2]uint64{lo + uint64(r.intn(int((hi-lo)/ps)))*ps, ps})
				}
			}
		}
	}
	rw := mmu.ProtRead | mmu.ProtWrite
	if err := mm.Mmap(src, ln, rw, mmu.MapFlags{}); err != nil {
		return nil, nil, err
	}
	var script text
	script.f("arch %s", archName)
	for _, kv := range knobs {
		script.f("config %s", kv)
	}
	script.f("mmap %#x %s rw", src, size(ln))
	for _, w := range writes {
		for va := w[0]; va < w[0]+w[1]; va += ps {
			if _, seen := values[va]; seen {
				continue
			}
			values[va] = va
			if err := mm.Write(0, va, va); err != nil {
				return nil, nil, err
			}
		}
		if w[1] == ps {
			script.f("write %#x", w[0])
		} else {
			script.f("write %#x %s", w[0], size(w[1]))
		}
	}
	var before strings.Builder
	if err := mm.PageTable().Dump(&before, pgtable.DumpOptions{Start: src, End: src + ln, Title: "before, old range"}); err != nil {
		return nil, nil, err
	}
	// Which PMD windows of the source have no PTE table (or no PMD
	// table): move_page_tables skips them.
	var empty []uint64
	for w := src &^ (pmd - 1); w < src+ln; w += pmd {
		if p, ok := mm.PageTable().Walk(w, pgtable.PMD); !ok || (p.Child() == nil && mm.PageTable().IsNone(p.Peek(), pgtable.PMD)) {
			empty = append(empty, w)
		}
	}
	m.Reset()
	rec := &recorder{}
	m.SetTracer(rec)
	got, err := mremap.Mremap(mm, src, ln, ln, mremap.MayMove|mremap.Fixed, dst)
	m.SetTracer(nil)
	if err != nil {
		return nil, nil, err
	}
	if got != dst {
		return nil, nil, fmt.Errorf("mremap moved to %#x, want %#x", got, dst)
	}
	script.f("mremap %#x %s %s maymove fixed=%#x", src, size(ln), size(ln), dst)
	tc := &mremapCase{m: m, mm: mm, src: src, dst: dst, ln: ln, values: values, counts: mm.Meter().Counts()}
	delta := dst - src // new = old + delta (wraps for a move down)
	var cur *moveStep
	var clears []uint64
	for _, rec := range rec.recs {
		switch rec.Event {
		case cost.PTEClears:
			clears = append(clears, rec.Addr, rec.N)
		case cost.PUDMoves, cost.PMDMoves, cost.HugePMDMoves:
			path := map[cost.Event]string{cost.PUDMoves: "pud", cost.PMDMoves: "pmd", cost.HugePMDMoves: "huge-pmd"}[rec.Event]
			sz := map[string]uint64{"pud": pud, "pmd": pmd, "huge-pmd": pmd}[path]
			old := rec.Addr - delta
			tc.steps = append(tc.steps, moveStep{path: path, oldStart: old, oldEnd: old + sz, entries: rec.N})
			cur = &tc.steps[len(tc.steps)-1]
			clears = nil
		case cost.PTEMoves:
			st := moveStep{path: "pte", oldStart: rec.Addr - delta, entries: rec.N}
			st.oldEnd = st.oldStart + rec.N*ps
			if len(clears) > 0 {
				st.oldStart = clears[0]
				st.oldEnd = clears[len(clears)-2] + clears[len(clears)-1]*ps
			}
			tc.steps = append(tc.steps, st)
			cur = &tc.steps[len(tc.steps)-1]
			clears = nil
		case cost.DcacheFlushes:
			if cur != nil {
				cur.dcache += rec.N
			}
		case cost.TLBFlushRange:
			f := [2]uint64{rec.Addr, rec.Val}
			if cur != nil && rec.Addr < cur.oldEnd && rec.Addr+rec.Val > cur.oldStart && len(cur.flushes) == 0 {
				cur.flushes = append(cur.flushes, f)
			} else {
				tc.afterFlushes = append(tc.afterFlushes, f)
			}
		}
	}
	// The clears of one move_ptes extent precede its pte_moves record,
	// and its flush (over the whole extent's old range) follows it.

	var pb text
	pb.para("", fmt.Sprintf("This script maps %s of anonymous memory on %s, writes some of it, and moves it "+
		"with mremap(MREMAP_MAYMOVE|MREMAP_FIXED) to a new address:", size(ln), archName))
	pb.f("")
	for _, l := range strings.Split(strings.TrimSuffix(script.String(), "\n"), "\n") {
		pb.f("    %s", l)
	}
	pb.f("")
	pb.para("", fmt.Sprintf("On %s a page is %s, a PTE table maps %s (PMD_SIZE) and a PMD table maps %s "+
		"(PUD_SIZE). Whole-table moves: PMD %s, PUD %s%s.", archName, size(ps), size(pmd), size(pud),
		onOff(k.MovePMD), onOff(k.MovePUD), tableMoveNote(archName)))
	pb.f("")
	pb.f("The old range's tables before the move:")
	pb.f("")
	for _, l := range strings.Split(strings.TrimSuffix(before.String(), "\n"), "\n") {
		pb.f("    %s", l)
	}
	pb.f("")
	pb.f("Questions:")
	pb.para("  ", "1. move_page_tables goes extent by extent. For each part of the old range, which path moves it: "+
		"a whole PMD table (one PUD entry), a whole PTE table (one PMD entry), or the PTEs one by one "+
		"(move_ptes); and which parts are skipped?")
	pb.para("  ", "2. How many entries move at each level (pte_moves, pmd_moves, pud_moves)?")
	pb.para("  ", "3. How many flush_tlb_range calls does the move make, and how many more does unmapping the "+
		"old, now empty, VMA add?")

	var ans text
	ans.para("", "The rules (mm/mremap.c): move_page_tables works extent by extent; get_extent ends an extent at "+
		"the next PUD or PMD boundary of the old address and of the new one, whichever comes first, so an "+
		"extent is a whole PUD_SIZE or PMD_SIZE only when both addresses are aligned to it and that much "+
		"remains. A whole extent moves one entry (move_normal_pud, move_normal_pmd: clear the old entry, "+
		"populate the new one with the same table) when the arch selects HAVE_MOVE_PUD/HAVE_MOVE_PMD and the "+
		"destination entry is empty, and then flushes the old range with flush_tlb_range, always. Otherwise "+
		"move_ptes moves the PTEs one by one (get_and_clear at the old place, set_ptes at the new) and flushes "+
		"the extent's old range once if it moved a present PTE. An extent whose old PMD (or PUD) entry is empty "+
		"is skipped and allocates nothing at the destination.")
	ans.f("")
	ans.f("1. What the model did, in order:")
	for i, st := range tc.steps {
		var what string
		switch st.path {
		case "pud":
			what = "one PUD entry moved (move_normal_pud): the whole PMD table under it, with everything it maps"
		case "pmd":
			what = "one PMD entry moved (move_normal_pmd): the whole PTE table"
		case "huge-pmd":
			what = "one huge PMD moved (move_huge_pmd)"
		case "pte":
			what = fmt.Sprintf("%s moved one by one (move_ptes)", plural(st.entries, "PTE", "PTEs"))
		}
		ans.f("   %d) old %#x-%#x -> new %#x: %s", i+1, st.oldStart, st.oldEnd, st.oldStart+delta, what)
		for _, f := range st.flushes {
			ans.f("      then flush_tlb_range(old %#x, %s)", f[0], size(f[1]))
		}
		if st.path == "pte" && len(st.flushes) == 0 {
			ans.f("      no flush: no present PTE moved")
		}
		if st.dcache > 0 {
			ans.f("      and %s: move_pte flushes the D-cache when VA bit 13 (the colour) changes", plural(st.dcache, "D-cache flush", "D-cache flushes"))
		}
		if i == 0 && st.oldStart < src {
			ans.para("      ", fmt.Sprintf("The move starts below the mapping (%#x): try_realign_addr aligned both addresses "+
				"down to the PMD boundary, since they are equally aligned inside a PMD and nothing else is mapped "+
				"below them in that PMD (the 2023 realignment), so the first PTE table moves whole.", src))
		}
	}
	if len(tc.steps) == 0 {
		ans.f("   nothing: no page of the old range was ever touched, so no table maps it")
	}
	if len(empty) > 0 {
		var ws []string
		for _, w := range empty {
			ws = append(ws, fmt.Sprintf("%#x", w))
		}
		ans.para("   ", fmt.Sprintf("Skipped (no PTE table there, nothing ever written): the %s at %s.",
			map[bool]string{true: "PMD windows", false: "PMD window"}[len(ws) > 1], strings.Join(ws, ", ")))
	}
	ans.f("")
	c := tc.counts
	ans.f("2. pte_moves %d, pmd_moves %d, pud_moves %d, huge_pmd_moves %d.", c[cost.PTEMoves], c[cost.PMDMoves], c[cost.PUDMoves], c[cost.HugePMDMoves])
	if c[cost.PUDMoves] > 0 {
		ans.para("   ", "A PUD move counts one entry, however many PTE tables the PMD table under it holds.")
	}
	ans.f("")
	moving := uint64(0)
	for _, st := range tc.steps {
		moving += uint64(len(st.flushes))
	}
	after := "none more when the old VMA is unmapped"
	if n := uint64(len(tc.afterFlushes)); n > 0 {
		after = plural(n, "more", "more") + " when the old VMA is unmapped"
	}
	ans.f("3. %s during the move, %s: tlb_flush_range %d in all.",
		plural(moving, "flush_tlb_range", "flush_tlb_range calls"), after, c[cost.TLBFlushRange])
	if len(tc.afterFlushes) > 0 {
		ans.para("   ", "Unmapping the old VMA zaps nothing (its PTEs are gone) but frees its now empty page "+
			"tables (free_pgtables); the mmu_gather flushes the range of the freed tables so no CPU keeps "+
			"a walk through them (tlb_finish_mmu).")
	}
	ans.f("   Tables allocated %d (destination tables, alloc_new_pud/alloc_new_pmd/pte_alloc), freed %d.", c[cost.PTAllocs], c[cost.PTFrees])
	var afterDump strings.Builder
	if err := mm.PageTable().Dump(&afterDump, pgtable.DumpOptions{Start: dst, End: dst + ln, Title: "after, new range"}); err != nil {
		return nil, nil, err
	}
	ans.f("")
	ans.f("The new range's tables after the move:")
	ans.f("")
	for _, l := range strings.Split(strings.TrimSuffix(afterDump.String(), "\n"), "\n") {
		ans.f("    %s", l)
	}
	return &Exercise{Problem: pb.String(), Answer: ans.String()}, tc, nil
}

// onOff spells a switch.
func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// tableMoveNote says why an arch never moves tables.
func tableMoveNote(archName string) string {
	switch archName {
	case "s390x":
		return " (s390 does not select HAVE_MOVE_PMD: a live segment entry must be invalidated with IDTE, never cleared with a plain store)"
	case "sparc64":
		return " (sparc64 moves PTE by PTE so that move_pte can flush the D-cache when the virtual colour, bit 13, changes)"
	case "um32":
		return " (UML with 2 levels has no PMD table to move)"
	case "um":
		return " (UML does not select HAVE_MOVE_PMD)"
	}
	return ""
}
