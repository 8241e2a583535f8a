package fork_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// op is one step of a random workload, replayed identically on the
// batched and the unbatched machine.
type op func(t *testing.T, m *mmu.Machine)

// randomLayout builds, from seed, the steps that populate a parent
// address space: VMAs of every kind (private anonymous with small and
// large folios and THPs, shared anonymous, private and shared file,
// don't-copy, wipe-on-fork), written and read pages, pins, and mprotects
// that split VMAs and leave read-only PTEs.
func randomLayout(m *mmu.Machine, seed uint64) []op {
	r := rand.New(rand.NewPCG(seed, 0xf0e1))
	geo := &m.Arch().Geometry
	ps := geo.PageSize()
	pmd := geo.Size(pgtable.PMD)
	pmdPages := pmd / ps
	va := base(m)
	var ops []op
	thp := []string{"never", "always"}[r.IntN(2)]
	if !m.Arch().Caps.THPLevels[pgtable.PMD] {
		thp = "never"
	}
	ops = append(ops, func(t *testing.T, m *mmu.Machine) { must(t, m.SetKnob("thp", thp)) })
	nv := 3 + r.IntN(4)
	for i := 0; i < nv; i++ {
		start := va + uint64(i)*2*pmd
		if start+2*pmd > m.Arch().User.End && m.Arch().User.End != 0 {
			break
		}
		kind := r.IntN(7)
		if i == 0 {
			kind = 0 // at least one private anonymous VMA
		}
		folio := uint64(0)
		switch r.IntN(4) {
		case 1:
			folio = 4 * ps
		case 2:
			folio = 16 * ps
		case 3:
			if pmdPages <= 2048 {
				folio = pmd
			}
		}
		pages := uint64(1 + r.IntN(int(min(pmdPages, 1024))))
		if folio == pmd || r.IntN(3) == 0 {
			pages = min(pmdPages+uint64(r.IntN(64)), pmdPages*3/2) // across a PTE table
			if pmdPages > 2048 {
				pages = 1024 + uint64(r.IntN(512))
			}
		}
		off := uint64(r.IntN(16)) * ps
		if folio == pmd {
			off = 0
		}
		size := pages * ps
		fl := mmu.MapFlags{FolioSize: folio}
		switch kind {
		case 1:
			fl.Shared = true
		case 2:
			fl.File = fmt.Sprintf("f%d", i)
		case 3:
			fl.File, fl.Shared = fmt.Sprintf("f%d", i), true
		case 4:
			fl.DontCopy = true
		case 5:
			fl.WipeOnFork = true
		}
		a := start + off
		ops = append(ops, func(t *testing.T, m *mmu.Machine) {
			p, _ := m.MM("parent")
			mmap(t, p, a, size, rw, fl)
		})
		// Write most pages, read some others, a run of pages per step.
		for pg := uint64(0); pg < pages; {
			n := min(pages-pg, 1+uint64(r.IntN(64)))
			from, x, val := a+pg*ps, r.IntN(10), r.Uint64()>>8
			pg += n
			switch {
			case x < 7:
				ops = append(ops, func(t *testing.T, m *mmu.Machine) {
					p, _ := m.MM("parent")
					for i := uint64(0); i < n; i++ {
						must(t, p.Write(0, from+i*ps, val+i))
					}
				})
			case x < 9:
				ops = append(ops, func(t *testing.T, m *mmu.Machine) {
					p, _ := m.MM("parent")
					for i := uint64(0); i < n; i++ {
						_, err := p.Read(1, from+i*ps)
						must(t, err)
					}
				})
			}
		}
		// Pins on written private anonymous pages.
		if kind == 0 || kind >= 4 {
			for n := r.IntN(3); n > 0; n-- {
				pa := a + uint64(r.IntN(int(pages)))*ps
				ops = append(ops, func(t *testing.T, m *mmu.Machine) {
					p, _ := m.MM("parent")
					must(t, p.Pin(pa, ps))
				})
			}
		}
		// A read-only stretch: VMA split, read-only PTEs.
		if r.IntN(3) == 0 && pages > 8 {
			from := uint64(r.IntN(int(pages - 4)))
			n := 1 + uint64(r.IntN(int(pages-from)))
			ops = append(ops, func(t *testing.T, m *mmu.Machine) {
				p, _ := m.MM("parent")
				must(t, p.Mprotect(a+from*ps, n*ps, mmu.ProtRead))
			})
			if r.IntN(2) == 0 {
				ops = append(ops, func(t *testing.T, m *mmu.Machine) {
					p, _ := m.MM("parent")
					must(t, p.Mprotect(a+from*ps, n*ps, rw))
				})
			}
		}
	}
	return ops
}

// afterFork builds random writes and reads in both address spaces after
// the fork (COW faults on either side) and a munmap in the child.
func afterFork(m *mmu.Machine, seed uint64) []op {
	r := rand.New(rand.NewPCG(seed, 0xa11))
	var ops []op
	p, _ := m.MM("parent")
	var pages []uint64
	ps := m.Arch().PageSize()
	for _, v := range p.VMAs() {
		for a := v.Start; a < v.End; a += ps {
			pages = append(pages, a)
		}
	}
	for i := 0; i < 40 && len(pages) > 0; i++ {
		// A burst of accesses by one side.
		who := []string{"parent", "child"}[r.IntN(2)]
		var as []uint64
		var writes []bool
		var vals []uint64
		for j := 0; j < 8; j++ {
			as = append(as, pages[r.IntN(len(pages))])
			writes = append(writes, r.IntN(2) == 0)
			vals = append(vals, r.Uint64()>>8)
		}
		ops = append(ops, func(t *testing.T, m *mmu.Machine) {
			mm, _ := m.MM(who)
			for j, a := range as {
				v := mm.FindVMA(a)
				if v == nil {
					continue
				}
				var err error
				if writes[j] && v.Flags&mmu.VMWrite != 0 {
					err = mm.Write(r2cpu(a), a, vals[j])
				} else {
					_, err = mm.Read(r2cpu(a), a)
				}
				must(t, err)
			}
		})
	}
	if len(pages) > 0 {
		a := pages[r.IntN(len(pages))]
		ops = append(ops, func(t *testing.T, m *mmu.Machine) {
			c, _ := m.MM("child")
			must(t, c.Munmap(a, 8*ps))
		})
	}
	return ops
}

// r2cpu spreads accesses over both CPUs by address.
func r2cpu(a uint64) int { return int(a>>14) & 1 }

// state is everything that must be equal after the batched and the
// unbatched fork: per address space its VMAs, RSS, deposits and every
// page's translation (level, frame, entry as ptep_get shows it without
// the arch-private contiguous bit) and content; per folio its refcount,
// mapcounts and exclusive pages.
type state struct {
	MMs    []mmState
	Folios []folioState
}

type mmState struct {
	Name     string
	VMAs     []string
	RSS      [4]int64
	Deposits int
	Pages    []pageState
}

type pageState struct {
	Addr    uint64
	Mapped  bool
	Level   pgtable.Level
	PFN     phys.PFN
	Entry   pgtable.Entry
	Content uint64
}

type folioState struct {
	PFN                 phys.PFN
	Order               uint8
	Ref, Map, EntireMap int
	PageMaps            []int
	Exclusive           []bool
}

func capture(t *testing.T, m *mmu.Machine) state {
	t.Helper()
	var s state
	fm := &m.Arch().Format
	mem := m.Memory()
	folios := map[phys.PFN]phys.Folio{}
	for _, mm := range m.MMs() {
		ms := mmState{Name: mm.Name(), Deposits: mm.Deposits()}
		for k := range ms.RSS {
			ms.RSS[k] = mm.RSS(mmu.RSSKind(k))
		}
		ps := m.Arch().PageSize()
		pt := mm.PageTable()
		for _, v := range mm.VMAs() {
			ms.VMAs = append(ms.VMAs, v.String())
			for a := v.Start; a < v.End; a += ps {
				ps := pageState{Addr: a}
				ps.Content, _ = mm.Content(a)
				if tr, ok := mm.Translate(a); ok {
					ps.Mapped, ps.Level, ps.PFN, ps.Entry = true, tr.Level, tr.PFN, tr.Entry
					if tr.Level == pgtable.PTE {
						ps.Entry = fm.MkNonCont(pt.PtepGet(a, tr.Ptr))
					}
					if tr.PFN != m.ZeroPage() && mem.IsAllocated(tr.PFN) {
						f := mem.FolioOf(tr.PFN)
						folios[f.PFN] = f
					}
				}
				ms.Pages = append(ms.Pages, ps)
			}
		}
		s.MMs = append(s.MMs, ms)
	}
	var heads []phys.PFN
	for h := range folios {
		heads = append(heads, h)
	}
	sort.Slice(heads, func(i, j int) bool { return heads[i] < heads[j] })
	for _, h := range heads {
		f := folios[h]
		fs := folioState{PFN: h, Order: f.Order, Ref: mem.Refcount(f), Map: mem.Mapcount(f), EntireMap: mem.EntireMapcount(f)}
		for i := phys.PFN(0); i < phys.PFN(f.NrPages()); i++ {
			fs.PageMaps = append(fs.PageMaps, mem.Page(h+i).Mapcount())
			fs.Exclusive = append(fs.Exclusive, mem.Page(h+i).Has(phys.FlagAnonExclusive))
		}
		s.Folios = append(s.Folios, fs)
	}
	return s
}

// diffStates reports the first difference between two states.
func diffStates(a, b state) string {
	if len(a.MMs) != len(b.MMs) {
		return fmt.Sprintf("%d address spaces vs %d", len(a.MMs), len(b.MMs))
	}
	for i := range a.MMs {
		x, y := a.MMs[i], b.MMs[i]
		if !reflect.DeepEqual(x.VMAs, y.VMAs) || x.RSS != y.RSS || x.Deposits != y.Deposits {
			return fmt.Sprintf("%s: vmas %v rss %v deposits %d vs vmas %v rss %v deposits %d", x.Name, x.VMAs, x.RSS, x.Deposits, y.VMAs, y.RSS, y.Deposits)
		}
		for j := range x.Pages {
			if x.Pages[j] != y.Pages[j] {
				return fmt.Sprintf("%s: page %+v vs %+v", x.Name, x.Pages[j], y.Pages[j])
			}
		}
	}
	if len(a.Folios) != len(b.Folios) {
		return fmt.Sprintf("%d folios vs %d", len(a.Folios), len(b.Folios))
	}
	for i := range a.Folios {
		if !reflect.DeepEqual(a.Folios[i], b.Folios[i]) {
			return fmt.Sprintf("folio %+v vs %+v", a.Folios[i], b.Folios[i])
		}
	}
	return ""
}

// TestBatchedForkMatchesUnbatched is the differential oracle: random
// address spaces forked with fork_batch on and off end in the same state
// in parent and child (translations, entries, contents, refcounts,
// mapcounts, RSS), and stay equal through COW faults afterwards; only the
// costs differ. m.Check runs after every step.
func TestBatchedForkMatchesUnbatched(t *testing.T) {
	seeds := 4
	if testing.Short() {
		seeds = 2
	}
	for _, name := range archs.Names() {
		for seed := uint64(1); seed <= uint64(seeds); seed++ {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				var ms [2]*mmu.Machine
				for i, batch := range []string{"on", "off"} {
					m := newMachine(t, name, "fork_batch", batch)
					newMM(t, m, "parent")
					for _, o := range randomLayout(m, seed) {
						o(t, m)
						check(t, m)
					}
					m.Reset()
					p, _ := m.MM("parent")
					_, err := fork.Fork(p, "child")
					must(t, err)
					check(t, m)
					ms[i] = m
				}
				on, off := ms[0], ms[1]
				pOn, _ := on.MM("parent")
				pOff, _ := off.MM("parent")
				for _, e := range []cost.Event{cost.ForkPTEs, cost.ForkPageCopies} {
					if a, b := count(pOn, e), count(pOff, e); a != b {
						t.Errorf("%s: batched %d, unbatched %d", e, a, b)
					}
				}
				if count(pOff, cost.ForkBatches) != 0 {
					t.Errorf("unbatched fork counted %d batches", count(pOff, cost.ForkBatches))
				}
				if d := diffStates(capture(t, on), capture(t, off)); d != "" {
					t.Fatalf("after fork: %s", d)
				}
				for _, m := range ms {
					for _, o := range afterFork(m, seed) {
						o(t, m)
						check(t, m)
					}
				}
				if d := diffStates(capture(t, on), capture(t, off)); d != "" {
					t.Fatalf("after COW faults: %s", d)
				}
				t.Logf("fork_ptes %d, batches %d, page copies %d, sim_ns batched %d unbatched %d",
					count(pOn, cost.ForkPTEs), count(pOn, cost.ForkBatches), count(pOn, cost.ForkPageCopies), on.SimNS(), off.SimNS())
			})
		}
	}
}
