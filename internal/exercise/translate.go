package exercise

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// translation is one address of a translate exercise and what the model
// says of it: the answer, kept for tests to check against the MMU.
type translation struct {
	// addr is the virtual address.
	addr uint64
	// pa and ok are the physical address the walk reaches, or ok false
	// for a fault.
	pa uint64
	ok bool
	// why names the case: "page", "huge", "zero", "pte-none", "upper-none".
	why string
}

// translateCase is what a translate generator built, for tests.
type translateCase struct {
	m     *mmu.Machine
	mm    *mmu.MM
	addrs []translation
}

func genTranslate(r *rng, archName string) (*Exercise, error) {
	e, _, err := buildTranslate(r, archName)
	return e, err
}

// buildTranslate maps a few regions (written pages, perhaps a huge page
// and a page only read), picks addresses of every case, and writes the
// tables as the problem and the walks as the answer.
func buildTranslate(r *rng, archName string) (*Exercise, *translateCase, error) {
	m, err := newMachine(archName, 1, 1)
	if err != nil {
		return nil, nil, err
	}
	a := m.Arch()
	mm, err := m.NewMM("task")
	if err != nil {
		return nil, nil, err
	}
	geo := &a.Geometry
	ps := a.PageSize()
	pmd, pud := geo.Size(pgtable.PMD), geo.Size(pgtable.PUD)
	top := a.User.End
	if a.DefaultUserTop != 0 && r.chance(1, 2) {
		top = a.DefaultUserTop
	}
	top = min(top, uint64(1)<<56)
	// An anchor PUD-aligned, away from 0 and from the top.
	span := top / pud
	anchor := uint64(r.between(1, int(min(span-4, 1<<20)))) * pud
	rw := mmu.ProtRead | mmu.ProtWrite

	var written []uint64 // pages written
	var regions [][2]uint64
	mapPages := func(base uint64, n int) error {
		if err := mm.Mmap(base, uint64(n)*ps, rw, mmu.MapFlags{}); err != nil {
			return err
		}
		regions = append(regions, [2]uint64{base, base + uint64(n)*ps})
		return nil
	}
	// Region 1: 3 to 5 pages, the first ones written.
	pmdIdx := uint64(r.intn(int(pud / pmd)))
	base1 := anchor + pmdIdx*pmd + uint64(r.intn(int(pmd/ps)-8))*ps
	n1 := r.between(3, 5)
	if err := mapPages(base1, n1); err != nil {
		return nil, nil, err
	}
	for i := 0; i < n1-1; i++ {
		written = append(written, base1+uint64(i)*ps)
	}
	untouched := base1 + uint64(n1-1)*ps // in a VMA, in a table, never touched
	// Region 2: 1 or 2 written pages in another PMD, or in another PUD.
	var base2 uint64
	if r.chance(1, 2) || pud >= top/4 {
		base2 = anchor + ((pmdIdx+uint64(r.between(1, 3)))%(pud/pmd))*pmd + uint64(r.intn(int(pmd/ps)-4))*ps
	} else {
		base2 = anchor + pud*uint64(r.between(1, 2)) + uint64(r.intn(int(pud/ps)-4))*ps
	}
	n2 := r.between(1, 2)
	if err := mapPages(base2, n2); err != nil {
		return nil, nil, err
	}
	for i := 0; i < n2; i++ {
		written = append(written, base2+uint64(i)*ps)
	}
	// A page only read: anonymous memory maps the shared zero page.
	zero := uint64(0)
	if r.chance(2, 3) {
		zero = base2 + uint64(n2)*ps
		if err := mapPages(zero, 1); err != nil {
			return nil, nil, err
		}
	}
	// A huge page where the arch has PMD leaves.
	huge := uint64(0)
	if a.Format.LeafLevels[pgtable.PMD] && r.chance(2, 3) {
		huge = anchor + ((pmdIdx+uint64(r.between(4, 8)))%(pud/pmd))*pmd
		if err := mm.Mmap(huge, pmd, rw, mmu.MapFlags{FolioSize: pmd}); err != nil {
			return nil, nil, err
		}
		regions = append(regions, [2]uint64{huge, huge + pmd})
	}
	for i, va := range written {
		if err := mm.Write(0, va, va|uint64(i)); err != nil {
			return nil, nil, err
		}
	}
	if zero != 0 {
		if _, err := mm.Read(0, zero); err != nil {
			return nil, nil, err
		}
	}
	if huge != 0 {
		if err := mm.Write(0, huge, huge); err != nil {
			return nil, nil, err
		}
	}
	if err := m.Check(); err != nil {
		return nil, nil, err
	}

	// The addresses: two written pages, the huge page, the zero page,
	// an untouched page of a VMA, and a hole far from everything.
	offset := func() uint64 { return uint64(r.intn(int(ps/8))) * 8 }
	var addrs []uint64
	p := r.perm(len(written))
	addrs = append(addrs, written[p[0]]+offset(), written[p[1]]+offset())
	if huge != 0 {
		addrs = append(addrs, huge+uint64(r.intn(int(pmd/8)))*8)
	}
	if zero != 0 {
		addrs = append(addrs, zero+offset())
	}
	addrs = append(addrs, untouched+offset())
	hole := anchor + pud*uint64(r.between(5, 9)) + uint64(r.intn(int(pud/ps)))*ps + offset()
	if hole >= top {
		hole = anchor - pud + offset()
	}
	addrs = append(addrs, hole)
	order := r.perm(len(addrs))

	pt := mm.PageTable()
	tc := &translateCase{m: m, mm: mm}
	for _, i := range order {
		va := addrs[i]
		steps, pa, ok := pt.WalkTrace(va)
		tr := translation{addr: va, pa: pa, ok: ok}
		t, mapped := mm.Translate(va)
		switch {
		case !ok && steps[len(steps)-1].Level == pgtable.PTE:
			tr.why = "pte-none"
		case !ok:
			tr.why = "upper-none"
		case mapped && t.Level != pgtable.PTE:
			tr.why = "huge"
		case mapped && t.PFN == m.ZeroPage():
			tr.why = "zero"
		default:
			tr.why = "page"
		}
		tc.addrs = append(tc.addrs, tr)
	}

	// The problem.
	var pb text
	pb.para("", fmt.Sprintf("A process on %s machine has the page tables below. Translate each virtual address "+
		"at the end to a physical address as the MMU does: split the address into an index per level, read the "+
		"entry at that index in the table, follow it to the next table, and stop at a leaf (a page) or at an entry "+
		"that maps nothing (a page fault).", article(archName)))
	pb.f("")
	describeGeometry(&pb, a.Name, geo, &a.Format, pt)
	pb.f("")
	pb.f("The tables, each listed by its frame number; only entries that are not empty are shown,")
	pb.f("as index: value (hex):")
	tables := listTables(pt)
	for _, t := range tables {
		pb.f("")
		pb.f("  frame %#x (%s table%s):", uint64(t.PFN()), t.Level(), map[bool]string{true: ", the root", false: ""}[t == pt.Root()])
		for i := 0; i < t.Len(); i++ {
			if e := t.Entry(i); t.Child(i) != nil || !pt.IsNone(e, t.Level()) {
				pb.f("    [%d] %#016x", i, uint64(e))
			}
		}
	}
	pb.f("")
	pb.f("Translate (give the physical address, or say at which level the walk faults):")
	for n, i := range order {
		pb.f("  %d. VA %#x", n+1, addrs[i])
	}

	// The answer: the walk of each address, and the rule behind its end.
	var ans text
	ans.para("", "Each walk starts at the root table and reads one entry per level "+
		"(Linux's software walk is the same: pgd_offset, p4d_offset, pud_offset, pmd_offset, "+
		"pte_offset_map, as follow_pte does):")
	for n, tr := range tc.addrs {
		ans.f("")
		ans.f("%d.", n+1)
		var w strings.Builder
		if err := pt.WriteWalk(&w, tr.addr); err != nil {
			return nil, nil, err
		}
		for _, l := range strings.Split(strings.TrimSuffix(w.String(), "\n"), "\n") {
			ans.f("  %s", l)
		}
		switch tr.why {
		case "page":
			ans.para("  ", "A base page: the PTE's frame number times the page size, plus the offset in the page.")
		case "huge":
			ans.para("  ", fmt.Sprintf("The %s entry is a leaf: one entry maps %s (a transparent huge page, "+
				"set by do_huge_pmd_anonymous_page), so the walk stops a level early and the offset has "+
				"%d bits.", pgtable.PMD, size(pmd), geo.Shift(pgtable.PMD)))
		case "zero":
			ans.para("  ", "This page was only read: do_anonymous_page maps the shared zero page, read-only, "+
				"on a read fault of anonymous memory, so the PTE points at the zero page's frame; a write "+
				"would fault and get a page of its own (wp_page_copy).")
		case "pte-none":
			ans.para("  ", "The PTE table exists (its neighbours are mapped) but this entry is empty: a page "+
				"fault. The address lies in a VMA never touched, so handle_mm_fault would allocate a page "+
				"(do_anonymous_page) and the access would be retried.")
		case "upper-none":
			vma := "no VMA covers it either, so the fault ends in SIGSEGV (bad_area)"
			if mm.FindVMA(tr.addr) != nil {
				vma = "it lies in a VMA, so handle_mm_fault would allocate the missing tables (__pud_alloc, __pte_alloc) and a page"
			}
			ans.para("  ", "An empty entry above the PTE level: no table maps this part of the address "+
				"space, so the walk faults early; "+vma+".")
		}
	}
	return &Exercise{Problem: pb.String(), Answer: ans.String()}, tc, nil
}

// describeGeometry writes how an address splits and how entries read.
func describeGeometry(t *text, name string, geo *pgtable.Geometry, f *pgtable.Format, pt *pgtable.PageTable) {
	levels := geo.Tables[len(geo.Tables)-pt.Levels():]
	t.f("%s: %s pages, %d levels of tables. A virtual address splits into:", name, size(geo.PageSize()), len(levels))
	for _, tg := range levels {
		bits := 0
		for 1<<bits < tg.Entries {
			bits++
		}
		t.f("  %-4s index  bits %2d:%-2d  (%d entries a table)", tg.Level, int(tg.Shift)+bits-1, tg.Shift, tg.Entries)
	}
	t.f("  offset      bits %2d:0", geo.PageShift-1)
	t.para("", fmt.Sprintf("Entries are 8 bytes. An entry that points to the next table holds that table's "+
		"physical address: frame = (entry & %#x) >> %d.", uint64(f.TableAddrMask), f.PageShift))
	leaf := fmt.Sprintf("A PTE maps a page when any of bits %#x is set (present); its frame is "+
		"(entry & %#x) >> %d.", uint64(f.PTE.Present), uint64(f.PTE.AddrMask), f.PageShift)
	t.para("", leaf)
	var huge []string
	for _, tg := range levels[:len(levels)-1] {
		if f.LeafLevels[tg.Level] {
			huge = append(huge, tg.Level.String())
		}
	}
	if len(huge) > 0 {
		rule := ""
		if f.Huge.LeafSet != 0 {
			rule = fmt.Sprintf("bits %#x set", uint64(f.Huge.LeafSet))
		}
		if f.Huge.LeafClear != 0 {
			if rule != "" {
				rule += " and "
			}
			rule += fmt.Sprintf("bits %#x clear", uint64(f.Huge.LeafClear))
		}
		t.para("", fmt.Sprintf("A present %s entry with %s is a leaf (a huge page): frame = (entry & %#x) >> %d, "+
			"and the offset is every bit below that level's index.", strings.Join(huge, " or "), rule,
			uint64(f.Huge.AddrMask), f.PageShift))
	}
	var none []string
	for _, tg := range levels {
		if v := f.None[tg.Level]; v != 0 {
			none = append(none, fmt.Sprintf("%s %#x", tg.Level, uint64(v)))
		}
	}
	if len(none) > 0 {
		t.para("", "An empty entry is not zero on this arch; empty values: "+strings.Join(none, ", ")+".")
	} else {
		t.f("An empty entry is 0.")
	}
}

// listTables returns every table of pt, parents before children, in
// address order.
func listTables(pt *pgtable.PageTable) []*pgtable.Table {
	out := []*pgtable.Table{pt.Root()}
	pt.Groups(0, 0, func(g pgtable.DumpGroup) bool {
		if g.Child != nil {
			out = append(out, g.Child)
		}
		return true
	})
	return out
}

// article puts "a" or "an" before an arch name, as it is read aloud.
func article(archName string) string {
	if strings.HasPrefix(archName, "x86") || strings.HasPrefix(archName, "arm") || strings.HasPrefix(archName, "s390") {
		return "an " + archName
	}
	return "a " + archName
}
