package exercise

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// contStep is one operation of a contpte exercise and what it did.
type contStep struct {
	// op is the script line.
	op string
	// folds, unfolds, converts are the step's counts.
	folds, unfolds, converts uint64
	// folded says whether every entry of the block carries PTE_CONT after
	// the step; present counts the block's present entries.
	folded  bool
	present int
	// setLast is set when the step wrote the block's last entry alone
	// (set_ptes with nr == 1); setWhole when it wrote the whole block in
	// one set_ptes.
	setLast, setWhole bool
	// blockers lists why a fold could not happen at this step's end:
	// absent entries or entries whose write bit differs.
	blockers string
}

// contCase is what a contpte generator built, for tests.
type contCase struct {
	m     *mmu.Machine
	mm    *mmu.MM
	block uint64
	steps []contStep
}

func genContpte(r *rng, archName string) (*Exercise, error) {
	e, _, err := buildContpte(r, archName)
	return e, err
}

func buildContpte(r *rng, archName string) (*Exercise, *contCase, error) {
	file := r.chance(1, 2)
	var knobs []string
	if file {
		knobs = []string{"fault_whole_folio=off"}
	}
	m, err := newMachine(archName, 1, 1, knobs...)
	if err != nil {
		return nil, nil, err
	}
	a := m.Arch()
	ps := a.PageSize()
	const nr = 16 // CONT_PTES with 4K pages
	blk := uint64(nr) * ps
	mm, err := m.NewMM("task")
	if err != nil {
		return nil, nil, err
	}
	block := uint64(0x7f00_0000_0000) + uint64(r.intn(512))*blk
	var script text
	script.f("arch %s", archName)
	for _, kv := range knobs {
		script.f("config %s", kv)
	}
	rw := mmu.ProtRead | mmu.ProtWrite
	fl := mmu.MapFlags{FolioSize: blk}
	mapLine := fmt.Sprintf("mmap %#x %s rw folio=%s", block, size(blk), size(blk))
	if file {
		fl.File, fl.Shared = "data", true
		mapLine = fmt.Sprintf("mmap %#x %s rw file=data shared folio=%s", block, size(blk), size(blk))
	}
	if err := mm.Mmap(block, blk, rw, fl); err != nil {
		return nil, nil, err
	}
	script.f("%s", mapLine)
	tc := &contCase{m: m, mm: mm, block: block}
	page := func(i int) uint64 { return block + uint64(i)*ps }
	f := &a.Format

	// The operations: a file mapping is faulted one page per write
	// (fault_whole_folio=off), in some order; an anonymous one is faulted
	// whole by its first write. Then a few mprotect and write steps.
	type op struct {
		line string
		run  func() error
	}
	var ops []op
	write := func(i int) op {
		return op{fmt.Sprintf("write %#x", page(i)), func() error { return mm.Write(0, page(i), page(i)) }}
	}
	prot := func(i, n int, p mmu.Prot) op {
		word := map[mmu.Prot]string{mmu.ProtRead: "r", rw: "rw"}[p]
		return op{fmt.Sprintf("mprotect %#x %s %s", page(i), size(uint64(n)*ps), word),
			func() error { return mm.Mprotect(page(i), uint64(n)*ps, p) }}
	}
	if file {
		order := r.perm(nr)
		// Often write the last page last, so the fold gate is reached
		// with the others in place; sometimes not.
		if r.chance(2, 3) {
			for i, v := range order {
				if v == nr-1 {
					order[i], order[nr-1] = order[nr-1], order[i]
				}
			}
		}
		skip := -1
		if r.chance(1, 4) {
			skip = order[r.intn(nr-1)]
		}
		var group []int
		for _, i := range order {
			if i != skip {
				group = append(group, i)
			}
		}
		// Sequential runs become one write line of several pages.
		for k := 0; k < len(group); {
			j := k + 1
			for j < len(group) && group[j] == group[j-1]+1 {
				j++
			}
			lo, n := group[k], j-k
			if n == 1 {
				ops = append(ops, write(lo))
			} else {
				ops = append(ops, op{fmt.Sprintf("write %#x %s", page(lo), size(uint64(n)*ps)), func() error {
					for i := lo; i < lo+n; i++ {
						if err := mm.Write(0, page(i), page(i)); err != nil {
							return err
						}
					}
					return nil
				}})
			}
			k = j
		}
	} else {
		ops = append(ops, write(r.intn(nr)))
	}
	for n := r.between(2, 3); n > 0; n-- {
		i := pickOf(r, nr-1, nr-1, r.intn(nr))
		c := r.intn(4)
		if c == 2 && n > 1 {
			c = 0 // a page left read-only could not be written later
		}
		switch c {
		case 0:
			ops = append(ops, prot(i, 1, mmu.ProtRead), prot(i, 1, rw))
		case 1:
			ops = append(ops, prot(0, nr, mmu.ProtRead), prot(0, nr, rw))
		case 2:
			ops = append(ops, prot(i, 1, mmu.ProtRead))
		default:
			ops = append(ops, write(i))
		}
	}

	for _, o := range ops {
		before := mm.Meter().Counts()
		rec := &recorder{}
		m.SetTracer(rec)
		err := o.run()
		m.SetTracer(nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", o.line, err)
		}
		after := mm.Meter().Counts()
		st := contStep{op: o.line,
			folds:    after[cost.ContpteFolds] - before[cost.ContpteFolds],
			unfolds:  after[cost.ContpteUnfolds] - before[cost.ContpteUnfolds],
			converts: after[cost.ContpteConverts] - before[cost.ContpteConverts]}
		for _, rc := range rec.recs {
			if rc.Event == cost.PTESets && rc.Addr == page(nr-1) && rc.N == 1 {
				st.setLast = true
			}
			if rc.Event == cost.PTESets && rc.Addr == block && rc.N == nr {
				st.setWhole = st.setWhole || st.folds == 0
			}
		}
		st.folded = true
		var absent, differ []string
		var w0 *bool
		for i := 0; i < nr; i++ {
			t, ok := mm.Translate(page(i))
			if !ok {
				st.folded = false
				absent = append(absent, fmt.Sprint(i))
				continue
			}
			st.present++
			if !f.Cont(t.Entry, t.Level) {
				st.folded = false
			}
			w := f.Write(t.Entry, t.Level)
			if w0 == nil {
				w0 = &w
			} else if w != *w0 {
				differ = append(differ, fmt.Sprint(i))
			}
		}
		switch {
		case len(absent) > 0:
			st.blockers = "entries " + strings.Join(absent, ", ") + " are not present"
		case len(differ) > 0:
			st.blockers = "the entries' write permissions differ (entries " + strings.Join(differ, ", ") + " against entry 0)"
			if len(differ) == 1 {
				st.blockers = "the entries' write permissions differ (entry " + differ[0] + " against entry 0)"
			}
		}
		tc.steps = append(tc.steps, st)
		script.f("%s", o.line)
	}
	if err := m.Check(); err != nil {
		return nil, nil, err
	}

	var pb text
	kindWords := "anonymous memory in one 64K folio: its first write fault maps the whole folio"
	if file {
		kindWords = "a shared file whose page cache holds 64K folios, faulted one page per write (fault_whole_folio=off, as before Linux 6.18)"
	}
	pb.para("", fmt.Sprintf("On arm64 with 4K pages, contpte groups 16 PTEs (64K, CONT_PTES) that map one "+
		"folio into a block with the contiguous bit (PTE_CONT), so the TLB holds one entry for all 16. "+
		"This script maps %s, then changes it:", kindWords))
	pb.f("")
	for _, l := range strings.Split(strings.TrimSuffix(script.String(), "\n"), "\n") {
		pb.f("    %s", l)
	}
	pb.f("")
	pb.f("Questions: after each command from the mmap on,")
	pb.para("  ", "1. is the block at "+fmt.Sprintf("%#x", block)+" folded (all 16 entries carry PTE_CONT)?")
	pb.para("  ", "2. how many folds and unfolds did the command make, and how many contpte_convert calls?")

	var ans text
	ans.para("", "The rules (arch/arm64/mm/contpte.c, asm/pgtable.h): only set_ptes with nr == 1 tries to fold, "+
		"after writing, and only when it wrote the block's last entry (entry 15, with the last frame of an "+
		"aligned 64K; contpte_try_fold). __contpte_try_fold then needs all 16 entries valid, mapping the 16 "+
		"consecutive pages of one folio with the same permissions (access and dirty aside); a fold is a "+
		"contpte_convert: clear the 16 entries, flush the block from the TLB (a TLBI per page and a DSB, "+
		"unless the CPUs have BBML2), write all 16 back with PTE_CONT. Changing one entry of a folded block "+
		"(set_ptes(1), ptep_get_and_clear, mprotect's ptep_modify_prot_start, a write-permission change) "+
		"first unfolds it: contpte_try_unfold, another contpte_convert, without the bit. set_ptes with "+
		"nr > 1 over a whole aligned block sets PTE_CONT directly, with no convert (contpte_set_ptes).")
	ans.f("")
	for i, st := range tc.steps {
		state := "not folded"
		if st.folded {
			state = "FOLDED"
		}
		ans.f("%d. %s", i+1, st.op)
		ans.f("   block %s (%d of 16 entries present); folds %d, unfolds %d, converts %d", state, st.present, st.folds, st.unfolds, st.converts)
		var why []string
		if st.unfolds > 0 {
			why = append(why, "the command changed an entry of a folded block, so contpte_try_unfold converted it back to 16 plain entries first")
		}
		if st.folds > 0 {
			why = append(why, "set_ptes(1) wrote entry 15 with all 16 entries alike, so contpte_try_fold converted the block to PTE_CONT")
		}
		if st.setWhole && st.folded && st.converts == 0 {
			why = append(why, "the fault mapped the whole folio with one set_ptes(16): PTE_CONT is set directly, no convert")
		}
		if st.setLast && st.folds == 0 && !st.folded {
			if st.blockers != "" {
				why = append(why, "entry 15 was set alone, so the fold gate looked, but "+st.blockers)
			} else {
				why = append(why, "entry 15 was set alone but the block did not fold")
			}
		}
		if !st.setLast && st.folds == 0 && !st.folded && st.unfolds == 0 && st.present > 0 {
			why = append(why, "entry 15 was not set alone by this command, so contpte_try_fold never looked")
		}
		if len(why) > 0 {
			ans.para("   ", strings.Join(why, "; ")+".")
		}
	}
	c := mm.Meter().Counts()
	ans.f("")
	ans.f("In all: contpte_folds %d, contpte_unfolds %d, contpte_converts %d.", c[cost.ContpteFolds], c[cost.ContpteUnfolds], c[cost.ContpteConverts])
	return &Exercise{Problem: pb.String(), Answer: ans.String()}, tc, nil
}
