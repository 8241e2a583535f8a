package exercise

import (
	"fmt"
	"strings"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// tlbCase is what a tlb generator built, for tests.
type tlbCase struct {
	m    *mmu.Machine
	mm   *mmu.MM
	base uint64
	// pages is the number of pages of the mapping.
	pages int
	// before and after say, per CPU and page, whether the CPU's TLB holds
	// a translation of the page.
	before, after [][]bool
	// initiator is the CPU that runs the operation; lo, hi the pages it
	// changes; full whether the flush was a full flush.
	initiator, lo, hi int
	counts            cost.Counts
}

func genTLB(r *rng, archName string) (*Exercise, error) {
	e, _, err := buildTLB(r, archName)
	return e, err
}

func buildTLB(r *rng, archName string) (*Exercise, *tlbCase, error) {
	cpus := r.between(2, 4)
	m, err := newMachine(archName, cpus, 1)
	if err != nil {
		return nil, nil, err
	}
	ps := m.Arch().PageSize()
	mm, err := m.NewMM("task")
	if err != nil {
		return nil, nil, err
	}
	const pages = 48
	base := uint64(0x7f00_0000_0000) + uint64(r.intn(256))*(2<<20)
	rw := mmu.ProtRead | mmu.ProtWrite
	if err := mm.Mmap(base, pages*ps, rw, mmu.MapFlags{Populate: true}); err != nil {
		return nil, nil, err
	}
	page := func(i int) uint64 { return base + uint64(i)*ps }
	var script text
	script.f("arch %s", archName)
	script.f("cpus %d", cpus)
	script.f("mmap %#x %s rw populate", base, size(pages*ps))
	// Every CPU touches a few runs of pages: its TLB then holds them.
	touched := make([][]bool, cpus)
	for c := range cpus {
		touched[c] = make([]bool, pages)
		for n := r.between(2, 3); n > 0; n-- {
			lo := r.intn(pages)
			hi := min(pages, lo+r.between(1, 8))
			for i := lo; i < hi; i++ {
				touched[c][i] = true
			}
		}
	}
	initiator := r.intn(cpus)
	// The initiator runs last, so the operation runs on it.
	order := append(r.perm(cpus), initiator)
	for _, c := range order {
		for i := 0; i < pages; i++ {
			if touched[c][i] {
				if _, err := mm.Read(c, page(i)); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	for _, c := range order[:cpus] {
		for i := 0; i < pages; {
			if !touched[c][i] {
				i++
				continue
			}
			j := i
			for j < pages && touched[c][j] {
				j++
			}
			if j-i == 1 {
				script.f("read %#x cpu=%d", page(i), c)
			} else {
				script.f("read %#x %s cpu=%d", page(i), size(uint64(j-i)*ps), c)
			}
			i = j
		}
	}
	script.f("read %#x cpu=%d    # CPU %d runs the next command", page(firstTouched(touched[initiator])), initiator, initiator)
	if _, err := mm.Read(initiator, page(firstTouched(touched[initiator]))); err != nil {
		return nil, nil, err
	}
	probe := func() [][]bool {
		out := make([][]bool, cpus)
		for c := range cpus {
			out[c] = make([]bool, pages)
			for i := 0; i < pages; i++ {
				_, out[c][i] = m.TLB().CPU(c).Probe(mm.TLBContext(), page(i))
			}
		}
		return out
	}
	tc := &tlbCase{m: m, mm: mm, base: base, pages: pages, initiator: initiator, before: probe()}
	// The operation: mprotect or munmap of a run of pages, short or long
	// enough to pass the 33-page ceiling.
	n := pickOf(r, r.between(1, 8), r.between(20, 33), r.between(34, pages))
	lo := r.intn(pages - n + 1)
	tc.lo, tc.hi = lo, lo+n
	munmap := r.chance(1, 2)
	m.Reset()
	var line string
	if munmap {
		line = fmt.Sprintf("munmap %#x %s", page(lo), size(uint64(n)*ps))
		err = mm.Munmap(page(lo), uint64(n)*ps)
	} else {
		line = fmt.Sprintf("mprotect %#x %s r", page(lo), size(uint64(n)*ps))
		err = mm.Mprotect(page(lo), uint64(n)*ps, mmu.ProtRead)
	}
	if err != nil {
		return nil, nil, err
	}
	script.f("%s", line)
	tc.after = probe()
	tc.counts = mm.Meter().Counts()
	if err := m.Check(); err != nil {
		return nil, nil, err
	}

	var pb text
	pb.para("", fmt.Sprintf("An x86_64 machine with %d CPUs runs one process. Its threads read pages of a "+
		"%d-page mapping on several CPUs, then CPU %d changes part of the mapping:", cpus, pages, initiator))
	pb.f("")
	for _, l := range strings.Split(strings.TrimSuffix(script.String(), "\n"), "\n") {
		pb.f("    %s", l)
	}
	pb.f("")
	pb.f("Before the last command each CPU's TLB holds the translations of these pages")
	pb.f("(page i is %#x + i*4K):", base)
	for c := range cpus {
		pb.f("    CPU %d: %s", c, pageList(tc.before[c]))
	}
	pb.f("")
	pb.para("", fmt.Sprintf("x86 flushes a range page by page (INVLPG) only up to tlb_single_page_flush_ceiling "+
		"= 33 pages; the command changes pages %d-%d (%d pages).", lo, lo+n-1, n))
	pb.f("")
	pb.f("Questions:")
	pb.para("  ", "1. Is the flush done page by page or as a full flush of the process's TLB entries?")
	pb.para("  ", "2. Which CPUs take part, and how many IPIs does CPU "+fmt.Sprint(initiator)+" send?")
	pb.para("  ", "3. Which TLB entries does each CPU drop, and which does it keep?")

	c := tc.counts
	full := c[cost.LocalFullFlushes] > 0
	var ans text
	ans.para("", "The rules (arch/x86/mm/tlb.c): "+map[bool]string{true: "munmap zaps the PTEs under an mmu_gather and tlb_finish_mmu flushes the gathered range",
		false: "mprotect's change_protection rewrites the PTEs and flush_tlb_range flushes the range"}[munmap]+
		"; flush_tlb_mm_range turns a range of more than tlb_single_page_flush_ceiling (33) pages into a "+
		"flush of everything the process has in the TLB (get_flush_tlb_info), bumps the mm's tlb_gen and "+
		"runs flush_tlb_func on every CPU in mm_cpumask: locally, and on each other CPU through an IPI "+
		"(flush_tlb_multi). flush_tlb_func flushes page by page with INVLPG when the flush is partial, "+
		"else reloads CR3, which drops every entry of the process's PCID.")
	ans.f("")
	if full {
		ans.f("1. A full flush: %d pages is more than 33 (local_full_flushes %d, invlpg %d).", n, c[cost.LocalFullFlushes], c[cost.Invlpg])
	} else {
		ans.f("1. Page by page: %d pages is at most 33 (invlpg %d on all CPUs, local_full_flushes 0).", n, c[cost.Invlpg])
	}
	ans.f("")
	ans.f("2. Every CPU that ran the process is in mm_cpumask: CPUs 0-%d. CPU %d flushes its own", cpus-1, initiator)
	ans.f("   TLB and sends %s (tlb_ipis %d); flush calls: tlb_flush_range %d.", plural(c[cost.TLBIPIs], "IPI", "IPIs"), c[cost.TLBIPIs], c[cost.TLBFlushRange])
	ans.f("")
	ans.f("3. Entries dropped and kept, per CPU:")
	for cpu := range cpus {
		var dropped, kept []bool
		for i := 0; i < pages; i++ {
			dropped = append(dropped, tc.before[cpu][i] && !tc.after[cpu][i])
			kept = append(kept, tc.before[cpu][i] && tc.after[cpu][i])
		}
		ans.f("    CPU %d: dropped %s; kept %s", cpu, pageList(dropped), pageList(kept))
	}
	ans.f("   tlb_invalidated %d in all.", c[cost.TLBInvalidated])
	if full {
		ans.para("   ", "A full flush drops the pages outside the range too: they will be walked again on their next use.")
	} else {
		ans.para("   ", "A page-by-page flush drops only the pages of the range; every other entry stays.")
	}
	return &Exercise{Problem: pb.String(), Answer: ans.String()}, tc, nil
}

// firstTouched returns the first page set in ts.
func firstTouched(ts []bool) int {
	for i, t := range ts {
		if t {
			return i
		}
	}
	return 0
}

// pageList spells the set pages as runs: "0-5, 9, 12-13", or "none".
func pageList(set []bool) string {
	var parts []string
	for i := 0; i < len(set); {
		if !set[i] {
			i++
			continue
		}
		j := i
		for j < len(set) && set[j] {
			j++
		}
		if j-i == 1 {
			parts = append(parts, fmt.Sprint(i))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", i, j-1))
		}
		i = j
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
