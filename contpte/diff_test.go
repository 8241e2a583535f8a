package contpte_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// ad is an entry's access and dirty state.
type ad uint8

const (
	adYoung ad = 1 << iota
	adDirty
)

// adOf returns the access and dirty bits of e.
func adOf(f *pgtable.Format, e pgtable.Entry) ad {
	var a ad
	if f.Young(e, pgtable.PTE) {
		a |= adYoung
	}
	if f.Dirty(e, pgtable.PTE) {
		a |= adDirty
	}
	return a
}

// normal returns e without access, dirty and contiguous state: what a
// translation is, apart from the bits contpte may spread or gather.
func normal(f *pgtable.Format, e pgtable.Entry) pgtable.Entry {
	return f.MkNonCont(f.MkOld(f.MkClean(e, pgtable.PTE), pgtable.PTE))
}

// twin is the same workload on contpte=on and contpte=off machines.
type twin struct {
	t       *testing.T
	on, off *env
	// pages is the arena's size in pages from base.
	pages int
	// sticky holds, per block of the arena, the access and dirty bits
	// the contpte=off machine has shown on any page of the block since
	// the block was last wholly unmapped: all contpte may spread there.
	sticky []ad
	// folded counts the comparisons that found a folded block on the
	// contpte=on machine (so the test is known to exercise contpte).
	folded int
}

// both runs op on both machines and requires the same outcome.
func (w *twin) both(what string, op func(e *env) error) {
	w.t.Helper()
	errOn, errOff := op(w.on), op(w.off)
	var eOn, eOff mmu.Errno
	if (errOn == nil) != (errOff == nil) ||
		(errOn != nil && (!errors.As(errOn, &eOn) || !errors.As(errOff, &eOff) || eOn != eOff)) {
		w.t.Fatalf("%s: contpte on: %v, off: %v", what, errOn, errOff)
	}
	w.on.check(what + " (contpte on)")
	w.off.check(what + " (contpte off)")
	w.compare(what)
}

// ptep returns ptep_get of addr on e, or false when nothing maps it.
func ptep(e *env, addr uint64) (pgtable.Entry, bool) {
	t := tlb.TableFor(e.pt, addr, pgtable.PTE)
	if t == nil || t.Level() != pgtable.PTE {
		return 0, false
	}
	p := pgtable.Ptr{T: t, I: e.pt.IndexOf(t, addr)}
	if !e.f.Present(p.Peek(), pgtable.PTE) {
		return 0, false
	}
	return e.pt.PtepGet(addr, p), true
}

// compare checks the two machines map the arena alike: the same entries
// apart from access, dirty and contiguous state, the same contents and
// RSS; and through ptep_get, contpte=on shows every access and dirty bit
// contpte=off shows, and no bit the block never had.
func (w *twin) compare(what string) {
	w.t.Helper()
	f := w.on.f
	n := w.on.n
	for b := 0; b*n < w.pages; b++ {
		// First what contpte=off shows over the block, then each page
		// of contpte=on against it.
		type pair struct{ on, off ad }
		var ads []pair
		var seen ad
		mapped := false
		for i := b * n; i < (b+1)*n && i < w.pages; i++ {
			a := w.on.page(base, i)
			eOn, okOn := ptep(w.on, a)
			eOff, okOff := ptep(w.off, a)
			if okOn != okOff {
				w.t.Fatalf("%s: page %#x mapped on %v off %v", what, a, okOn, okOff)
			}
			cOn, _ := w.on.mm.Content(a)
			cOff, _ := w.off.mm.Content(a)
			if cOn != cOff {
				w.t.Fatalf("%s: page %#x content on %#x off %#x", what, a, cOn, cOff)
			}
			if !okOn {
				ads = append(ads, pair{})
				continue
			}
			mapped = true
			if normal(f, eOn) != normal(f, eOff) {
				w.t.Fatalf("%s: page %#x maps %#x with contpte, %#x without", what, a, eOn, eOff)
			}
			p := pair{adOf(f, eOn), adOf(f, eOff)}
			if p.off&^p.on != 0 {
				w.t.Fatalf("%s: page %#x lost access/dirty: on %b off %b", what, a, p.on, p.off)
			}
			seen |= p.off
			ads = append(ads, p)
		}
		if !mapped {
			w.sticky[b] = 0
			continue
		}
		w.sticky[b] |= seen
		for i, p := range ads {
			if p.on&^w.sticky[b] != 0 {
				w.t.Fatalf("%s: page %#x has access/dirty %b the block never had (%b)", what, w.on.page(base, b*n+i), p.on, w.sticky[b])
			}
		}
		if b*n+n <= w.pages && w.on.folded(w.on.page(base, b*n)) {
			w.folded++
		}
	}
	for k := mmu.MMFilePages; k <= mmu.MMShmemPages; k++ {
		if w.on.mm.RSS(k) != w.off.mm.RSS(k) {
			w.t.Fatalf("%s: rss[%d] on %d off %d", what, k, w.on.mm.RSS(k), w.off.mm.RSS(k))
		}
	}
}

// TestDifferential: seeded random sequences of mmap (anonymous, shared
// and private file, several folio sizes), loads and stores from every
// CPU, runs of stores that complete blocks, mprotect and munmap give the
// same translations, contents and RSS with contpte on and off, and the
// access and dirty bits ptep_get shows differ only as contpte allows
// (gathered and spread within a block, never lost). Check runs on both
// machines after every operation.
func TestDifferential(t *testing.T) {
	for _, g := range granules {
		for _, tc := range []struct {
			seed  uint64
			knobs []string
		}{
			{1, nil},
			{2, []string{"fault_whole_folio", "off"}},
			{3, []string{"fault_whole_folio", "off", "bbml2", "on", "range_tlbi", "on"}},
		} {
			t.Run(fmt.Sprintf("%s/seed%d", g.name, tc.seed), func(t *testing.T) {
				runTwin(t, g.g, tc.seed, tc.knobs)
			})
		}
	}
}

func runTwin(t *testing.T, g arm64.Granule, seed uint64, knobs []string) {
	on := newEnv(t, g, append([]string{"contpte", "on"}, knobs...)...)
	off := newEnv(t, g, append([]string{"contpte", "off"}, knobs...)...)
	blocks := 8
	if on.n > 32 {
		blocks = 3
	}
	w := &twin{t: t, on: on, off: off, pages: blocks * on.n, sticky: make([]ad, blocks)}
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	n := on.n
	ps := on.ps
	folioSizes := []uint64{0, 4 * ps, on.block, 2 * on.block}
	pick := func() (start uint64, pages int) {
		if rng.IntN(2) == 0 {
			b := rng.IntN(blocks)
			return on.page(base, b*n), n * (1 + rng.IntN(min(2, blocks-b)))
		}
		s := rng.IntN(w.pages)
		return on.page(base, s), 1 + rng.IntN(min(2*n, w.pages-s))
	}
	mapping := func() (mmu.Prot, mmu.MapFlags) {
		fl := mmu.MapFlags{FolioSize: folioSizes[rng.IntN(len(folioSizes))]}
		prot := mmu.ProtRead | mmu.ProtWrite
		switch rng.IntN(3) {
		case 1:
			fl.File, fl.Shared = "f", true
		case 2:
			fl.File = "f"
		}
		if rng.IntN(8) == 0 {
			prot = mmu.ProtRead
		}
		return prot, fl
	}
	// Map the arena two blocks at a time, of random kinds.
	for b := 0; b < blocks; b += 2 {
		start := on.page(base, b*n)
		length := uint64(min(2, blocks-b)*n) * ps
		prot, fl := mapping()
		fl.Offset = start - base
		w.both(fmt.Sprintf("map %#x+%#x %s %+v", start, length, prot, fl), func(e *env) error { return e.mm.Mmap(start, length, prot, fl) })
	}
	steps := 300
	if n > 32 {
		steps = 250
	}
	for step := 0; step < steps; step++ {
		start, pages := pick()
		length := uint64(pages) * ps
		cpu := rng.IntN(4)
		var what string
		var op func(e *env) error
		switch r := rng.IntN(20); {
		case r < 2:
			prot, fl := mapping()
			fl.Offset = start - base
			if fl.File != "" && rng.IntN(4) == 0 {
				fl.Offset += ps
			}
			what = fmt.Sprintf("step %d: mmap %#x+%#x %s %+v", step, start, length, prot, fl)
			op = func(e *env) error { return e.mm.Mmap(start, length, prot, fl) }
		case r < 8:
			what = fmt.Sprintf("step %d: cpu%d stores %#x+%#x", step, cpu, start, length)
			op = func(e *env) error {
				for i := 0; i < pages; i++ {
					if err := e.mm.Write(cpu, e.page(start, i), uint64(step)); err != nil {
						return err
					}
				}
				return nil
			}
		case r < 10:
			what = fmt.Sprintf("step %d: cpu%d store %#x", step, cpu, start)
			op = func(e *env) error { return e.mm.Write(cpu, start, uint64(step)<<8) }
		case r < 12:
			what = fmt.Sprintf("step %d: cpu%d loads %#x+%#x", step, cpu, start, length)
			op = func(e *env) error {
				for i := 0; i < pages; i++ {
					if _, err := e.mm.Read(cpu, e.page(start, i)); err != nil {
						return err
					}
				}
				return nil
			}
		case r < 16:
			prot := []mmu.Prot{mmu.ProtRead, mmu.ProtRead | mmu.ProtWrite, mmu.ProtRead | mmu.ProtWrite, mmu.ProtNone}[rng.IntN(4)]
			if rng.IntN(2) == 0 {
				// One page, often a block's last: the refold path.
				start, length = on.page(base, rng.IntN(blocks)*n+n-1-rng.IntN(2)), ps
			}
			what = fmt.Sprintf("step %d: mprotect %#x+%#x %s", step, start, length, prot)
			op = func(e *env) error { return e.mm.Mprotect(start, length, prot) }
		case r < 18:
			what = fmt.Sprintf("step %d: munmap %#x+%#x", step, start, length)
			op = func(e *env) error { return e.mm.Munmap(start, length) }
		default:
			prot, fl := mapping()
			b := rng.IntN(blocks)
			start, length = on.page(base, b*n), on.block
			fl.Offset = start - base
			what = fmt.Sprintf("step %d: remap %#x+%#x %s %+v", step, start, length, prot, fl)
			op = func(e *env) error {
				if err := e.mm.Munmap(start, length); err != nil {
					return err
				}
				return e.mm.Mmap(start, length, prot, fl)
			}
		}
		w.both(what, op)
	}
	w.both("munmap everything", func(e *env) error { return e.mm.Munmap(base, uint64(w.pages)*ps) })
	if on.m.Memory().FreeFrames() != off.m.Memory().FreeFrames() {
		t.Fatalf("free frames on %d off %d", on.m.Memory().FreeFrames(), off.m.Memory().FreeFrames())
	}
	cOn, cOff := on.m.Counts(), off.m.Counts()
	isTrue(t, cOn[cost.ContpteConverts] > 0 && w.folded > 0, "precondition: the run folds (%d converts, %d folded sightings)", cOn[cost.ContpteConverts], w.folded)
	zero(t, cOff[cost.ContpteConverts], "contpte off never converts")
	t.Logf("contpte on: %d folds, %d unfolds, %d folded-block sightings", cOn[cost.ContpteFolds], cOn[cost.ContpteUnfolds], w.folded)
}
