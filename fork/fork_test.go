package fork_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// rewrite changes the parent's PTEs for pages [first, first+n) of the
// mapping at va with fn, as some earlier kernel operation would have left
// them (clean, read-only, old...), and flushes the TLB so no cached
// translation grants more than the tables.
func rewrite(t testing.TB, mm *mmu.MM, va uint64, first, n int, fn func(*pgtable.Format, pgtable.Entry) pgtable.Entry) {
	t.Helper()
	pt := mm.PageTable()
	fm := pt.Format()
	ps := pt.Geometry().PageSize()
	for i := first; i < first+n; i++ {
		a := va + uint64(i)*ps
		tr, ok := pt.Lookup(a)
		if !ok || tr.Level != pgtable.PTE {
			t.Fatalf("%#x: no PTE", a)
		}
		pt.RawSet(a, tr.Ptr, fn(fm, tr.Entry))
	}
	mm.Machine().TLB().FlushTLBMM(mm.TLBContext())
	check(t, mm.Machine())
}

// TestBatchCounts checks fork_batches, fork_ptes and the per-batch work
// for known layouts, batched and one PTE at a time.
func TestBatchCounts(t *testing.T) {
	clean := func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.MkClean(e, pgtable.PTE) }
	rdonly := func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.Wrprotect(e, pgtable.PTE) }
	old := func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.MkOld(e, pgtable.PTE) }
	cases := []struct {
		name  string
		size  uint64
		folio uint64
		prot  mmu.Prot
		// setup changes the populated mapping before the fork.
		setup func(t *testing.T, mm *mmu.MM, va uint64)
		// batches, ptes and steps (copy_pte_iters: batches plus single
		// PTEs) expected with fork_batch=on.
		batches, ptes, steps uint64
		// compares is pte_batch_compares with fork_batch=on.
		compares uint64
	}{
		{name: "4K pages", size: 256 * kib, prot: rw, batches: 0, ptes: 64, steps: 64},
		{name: "16K folios", size: 256 * kib, folio: 16 * kib, prot: rw, batches: 16, ptes: 64, steps: 16, compares: 16 * 3},
		{name: "64K folios", size: mib, folio: 64 * kib, prot: rw, batches: 16, ptes: 256, steps: 16, compares: 16 * 15},
		{name: "2M PTE-mapped", size: 2 * mib, folio: 2 * mib, prot: rw, batches: 1, ptes: 512, steps: 1, compares: 511},
		{name: "zero page", size: 64 * kib, folio: 64 * kib, prot: mmu.ProtRead, batches: 0, ptes: 16, steps: 16},
		{
			// Private: dirty is respected, so a clean half ends the batch
			// (the failed compare counts).
			name: "dirty differs", size: 64 * kib, folio: 64 * kib, prot: rw,
			setup:   func(t *testing.T, mm *mmu.MM, va uint64) { rewrite(t, mm, va, 8, 8, clean) },
			batches: 2, ptes: 16, steps: 2, compares: 7 + 1 + 7,
		},
		{
			// Write is ignored and merged: one batch.
			name: "write differs", size: 64 * kib, folio: 64 * kib, prot: rw,
			setup:   func(t *testing.T, mm *mmu.MM, va uint64) { rewrite(t, mm, va, 3, 5, rdonly) },
			batches: 1, ptes: 16, steps: 1, compares: 15,
		},
		{
			// Young is always ignored.
			name: "young differs", size: 64 * kib, folio: 64 * kib, prot: rw,
			setup:   func(t *testing.T, mm *mmu.MM, va uint64) { rewrite(t, mm, va, 0, 5, old) },
			batches: 1, ptes: 16, steps: 1, compares: 15,
		},
		{
			// A VMA boundary inside a folio cuts the batch at the range end.
			name: "cut at the VMA end", size: 128 * kib, folio: 64 * kib, prot: rw,
			setup: func(t *testing.T, mm *mmu.MM, va uint64) {
				must(t, mm.Mprotect(va+40*kib, 88*kib, mmu.ProtRead))
				check(t, mm.Machine())
			},
			batches: 3, ptes: 32, steps: 3, compares: 15 + 9 + 5,
		},
	}
	for _, tc := range cases {
		for _, batch := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/batch=%v", tc.name, batch), func(t *testing.T) {
				m := newMachine(t, "x86_64", "thp", "never", "fork_batch", map[bool]string{true: "on", false: "off"}[batch])
				p := newMM(t, m, "parent")
				va := base(m)
				mmap(t, p, va, tc.size, tc.prot, mmu.MapFlags{FolioSize: tc.folio, Populate: true})
				if tc.prot == mmu.ProtRead {
					// Anonymous memory read-only: populate maps the zero page,
					// but fork copies only VMAs with anonymous pages.
					p.VMAs()[0].AnonVMA = true
				}
				if tc.setup != nil {
					tc.setup(t, p, va)
				}
				m.Reset()
				c, err := fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				wantBatches, wantCompares, wantSteps := tc.batches, tc.compares, tc.steps
				if !batch {
					wantBatches, wantCompares, wantSteps = 0, 0, tc.ptes
				}
				// folio_pte_batch runs once per step over a large folio;
				// every page but the zero page has its rmap duplicated.
				wantCalls, wantDups := uint64(0), tc.ptes
				if batch && tc.folio > 0 && tc.prot != mmu.ProtRead {
					wantCalls = wantSteps
				}
				if tc.prot == mmu.ProtRead {
					wantDups = 0
				}
				for _, x := range []struct {
					e    cost.Event
					want uint64
				}{
					{cost.PTEBatchCalls, wantCalls},
					{cost.RmapPageDups, wantDups},
					{cost.ForkPTEs, tc.ptes},
					{cost.ForkBatches, wantBatches},
					{cost.ForkPageCopies, 0},
					{cost.PTEBatchCompares, wantCompares},
					{cost.TLBFlushMM, 1},
					{cost.TLBFlushRange, 0},
					{cost.TLBFlushPage, 0},
				} {
					if got := count(p, x.e); got != x.want {
						t.Errorf("%s = %d, want %d", x.e, got, x.want)
					}
				}
				// One loop iteration and one folio lookup per copy step: a
				// batch or a single PTE.
				if got := count(p, cost.CopyPTEIters); got != wantSteps {
					t.Errorf("copy_pte_iters = %d, want %d", got, wantSteps)
				}
				if got := count(p, cost.FolioLookups); got != wantSteps {
					t.Errorf("folio_lookups = %d, want %d", got, wantSteps)
				}
				if c.Meter().Counts() != (cost.Counts{}) {
					t.Errorf("child counters not zero: %v", c.Meter().Counts())
				}
			})
		}
	}
}

// TestPTERules checks __copy_present_ptes' rules on the entries: the
// parent write-protected for COW, the child write-protected, old, dirty
// as the parent for private mappings, and the same frame.
func TestPTERules(t *testing.T) {
	for _, name := range archs.Names() {
		for _, folio := range []uint64{0, 4} {
			t.Run(fmt.Sprintf("%s/folio=%dpages", name, folio), func(t *testing.T) {
				m := newMachine(t, name)
				ps := m.Arch().PageSize()
				p := newMM(t, m, "parent")
				va := base(m)
				size := 32 * ps
				mmap(t, p, va, size, rw, mmu.MapFlags{FolioSize: folio * ps})
				writeAll(t, p, va, size, 100)
				c, err := fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				fm := &m.Arch().Format
				for a := va; a < va+size; a += ps {
					pe, ppfn := pte(t, p, a)
					ce, cpfn := pte(t, c, a)
					switch {
					case ppfn != cpfn:
						t.Fatalf("%#x: parent maps %#x, child %#x", a, ppfn, cpfn)
					case fm.Write(pe, pgtable.PTE) || fm.Write(ce, pgtable.PTE):
						t.Fatalf("%#x: COW PTE still writable (parent %#x, child %#x)", a, pe, ce)
					case fm.Young(ce, pgtable.PTE):
						t.Fatalf("%#x: child PTE %#x young", a, ce)
					case fm.Dirty(ce, pgtable.PTE) != fm.Dirty(pe, pgtable.PTE):
						t.Fatalf("%#x: private child dirty %v, parent %v", a, fm.Dirty(ce, pgtable.PTE), fm.Dirty(pe, pgtable.PTE))
					case m.Memory().Page(ppfn).Has(phys.FlagAnonExclusive):
						t.Fatalf("%#x: shared page still exclusive", a)
					}
				}
				// Every folio: two mappings of each page, a reference each.
				f := folioOf(t, p, va)
				if got, want := m.Memory().Mapcount(f), 2*int(f.NrPages()); got != want {
					t.Errorf("mapcount %d, want %d", got, want)
				}
				if got, want := m.Memory().Refcount(f), 2*int(f.NrPages()); got != want {
					t.Errorf("refcount %d, want %d", got, want)
				}
				if p.RSS(mmu.MMAnonPages) != int64(size/ps) || c.RSS(mmu.MMAnonPages) != int64(size/ps) {
					t.Errorf("rss parent %d child %d, want %d each", p.RSS(mmu.MMAnonPages), c.RSS(mmu.MMAnonPages), size/ps)
				}
			})
		}
	}
}

// TestRefcountBeforeMapcount watches every refcount and mapcount change
// of the fork: refcount never drops below mapcount, and it is tight after
// the rmap dup (so taking the mapcount first would be caught).
func TestRefcountBeforeMapcount(t *testing.T) {
	for _, batch := range []string{"on", "off"} {
		t.Run("batch="+batch, func(t *testing.T) {
			m := newMachine(t, "x86_64", "thp", "never", "fork_batch", batch)
			p := newMM(t, m, "parent")
			va := base(m)
			mmap(t, p, va, 4*mib, rw, mmu.MapFlags{FolioSize: 64 * kib, Populate: true})
			mmap(t, p, va+8*mib, 2*mib, rw, mmu.MapFlags{FolioSize: 2 * mib, Populate: true})
			must(t, p.Pin(va+64*kib, 4*kib)) // one pinned folio: EAGAIN path
			mem := m.Memory()
			steps, minSlack := 0, int(^uint(0)>>1)
			_, err := fork.ForkWithStepHook(p, "child", fork.Options{}, func(f phys.Folio) {
				steps++
				slack := mem.Refcount(f) - mem.Mapcount(f) - mem.Pincount(f)
				if mem.Refcount(f) < mem.Mapcount(f) {
					t.Fatalf("folio %#x: refcount %d below mapcount %d", f.PFN, mem.Refcount(f), mem.Mapcount(f))
				}
				if slack < minSlack {
					minSlack = slack
				}
			})
			must(t, err)
			check(t, m)
			if steps == 0 || minSlack != 0 {
				t.Fatalf("%d steps watched, least slack %d: want some, and 0 after a dup", steps, minSlack)
			}
		})
	}
}

// TestPinnedPagesCopied checks that pages that may be pinned are copied
// for the child at fork: the parent keeps its page, exclusive and
// writable; the child gets a writable, dirty copy with the same content.
func TestPinnedPagesCopied(t *testing.T) {
	cases := []struct {
		name  string
		folio uint64
		pin   []int // pages pinned (indices)
		unpin bool  // unpin again before the fork
	}{
		{name: "small pages", folio: 0, pin: []int{1, 5, 6}},
		// folio_maybe_dma_pinned is folio-wide and every page of a fresh
		// folio is exclusive: the whole folio is copied (where the arch
		// has large folios: UML's allocator has none).
		{name: "one page of a 16-page folio", folio: 16, pin: []int{3}},
		{name: "pinned then unpinned", folio: 16, pin: []int{3}, unpin: true},
	}
	for _, tc := range cases {
		for _, name := range []string{"x86_64", "arm64", "s390x", "sparc64", "um"} {
			for _, batch := range []string{"on", "off"} {
				t.Run(fmt.Sprintf("%s/%s/batch=%s", tc.name, name, batch), func(t *testing.T) {
					m := newMachine(t, name, "fork_batch", batch)
					ps := m.Arch().PageSize()
					p := newMM(t, m, "parent")
					va := base(m)
					size := 32 * ps
					mmap(t, p, va, size, rw, mmu.MapFlags{FolioSize: tc.folio * ps})
					writeAll(t, p, va, size, 500)
					for _, i := range tc.pin {
						must(t, p.Pin(va+uint64(i)*ps, ps))
						check(t, m)
					}
					if tc.unpin {
						for _, i := range tc.pin {
							must(t, p.Unpin(va+uint64(i)*ps, ps))
						}
					}
					// Pages copied: every page of a folio holding a pin.
					copied := map[int]bool{}
					var copiedList []int
					for j := 0; j < int(size/ps) && !tc.unpin; j++ {
						fj := folioOf(t, p, va+uint64(j)*ps)
						for _, i := range tc.pin {
							if fj == folioOf(t, p, va+uint64(i)*ps) && !copied[j] {
								copied[j] = true
								copiedList = append(copiedList, j)
							}
						}
					}
					before := map[uint64]phys.PFN{}
					for a := va; a < va+size; a += ps {
						_, before[a] = pte(t, p, a)
					}
					m.Reset()
					c, err := fork.Fork(p, "child")
					must(t, err)
					check(t, m)
					if got := count(p, cost.ForkPageCopies); got != uint64(len(copied)) {
						t.Errorf("fork_page_copies = %d, want %d", got, len(copied))
					}
					if c.HasPinned() {
						t.Error("child inherited MMF_HAS_PINNED")
					}
					fm := &m.Arch().Format
					mem := m.Memory()
					for i := 0; i < int(size/ps); i++ {
						a := va + uint64(i)*ps
						pe, ppfn := pte(t, p, a)
						ce, cpfn := pte(t, c, a)
						if ppfn != before[a] {
							t.Fatalf("page %d: parent's frame replaced", i)
						}
						if mem.Content(cpfn) != mem.Content(ppfn) {
							t.Fatalf("page %d: child sees %d, parent %d", i, mem.Content(cpfn), mem.Content(ppfn))
						}
						if !copied[i] {
							if cpfn != ppfn {
								t.Fatalf("page %d copied, want shared", i)
							}
							continue
						}
						switch {
						case cpfn == ppfn:
							t.Fatalf("page %d shared, want copied", i)
						case !fm.Write(pe, pgtable.PTE) || !mem.Page(ppfn).Has(phys.FlagAnonExclusive):
							t.Fatalf("page %d: parent PTE %#x not writable and exclusive", i, pe)
						case !fm.Write(ce, pgtable.PTE) || !fm.Dirty(ce, pgtable.PTE) || !mem.Page(cpfn).Has(phys.FlagAnonExclusive):
							t.Fatalf("page %d: child copy %#x not writable, dirty and exclusive", i, ce)
						}
					}
					// The parent writes its pinned pages without a fault: the
					// page under DMA is never replaced; the child keeps its copy.
					faults := count(p, cost.Faults)
					for _, i := range copiedList {
						a := va + uint64(i)*ps
						must(t, p.Write(0, a, 9000+uint64(i)))
						check(t, m)
						if _, pfn := pte(t, p, a); pfn != before[a] {
							t.Fatalf("page %d: parent's pinned page replaced by a write", i)
						}
						if v, _ := c.Read(1, a); v != 500+uint64(i) {
							t.Fatalf("page %d: child reads %d after the parent's write", i, v)
						}
					}
					if got := count(p, cost.Faults); got != faults {
						t.Errorf("parent took %d faults writing its own pinned pages", got-faults)
					}
					check(t, m)
				})
			}
		}
	}
}

// TestCOWAfterFork checks that writes after a fork are private in both
// address spaces, through the machine's COW faults.
func TestCOWAfterFork(t *testing.T) {
	for _, name := range archs.Names() {
		for _, folio := range []uint64{0, 16} {
			t.Run(fmt.Sprintf("%s/folio=%dpages", name, folio), func(t *testing.T) {
				m := newMachine(t, name)
				ps := m.Arch().PageSize()
				p := newMM(t, m, "parent")
				va := base(m)
				size := 32 * ps
				mmap(t, p, va, size, rw, mmu.MapFlags{FolioSize: folio * ps})
				writeAll(t, p, va, size, 1000)
				c, err := fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				must(t, p.Write(0, va, 7))
				check(t, m)
				must(t, c.Write(1, va+ps, 8))
				check(t, m)
				for _, x := range []struct {
					mm   *mmu.MM
					page uint64
					want uint64
				}{
					{p, 0, 7}, {c, 0, 1000}, {p, 1, 1001}, {c, 1, 8}, {p, 2, 1002}, {c, 2, 1002},
				} {
					if got, err := x.mm.Read(0, va+x.page*ps); err != nil || got != x.want {
						t.Errorf("%s page %d reads %d (%v), want %d", x.mm.Name(), x.page, got, err, x.want)
					}
				}
				if count(p, cost.FaultsCOW) != 1 || count(c, cost.FaultsCOW) != 1 {
					t.Errorf("COW faults: parent %d, child %d; want 1 each", count(p, cost.FaultsCOW), count(c, cost.FaultsCOW))
				}
				check(t, m)
				must(t, m.DestroyMM(c))
				check(t, m)
			})
		}
	}
}

// TestSharedMappingsStayShared checks shared anonymous and file mappings:
// the child sees the parent's writes and the parent the child's; no PTE
// is copied (the child refaults from the page cache).
func TestSharedMappingsStayShared(t *testing.T) {
	for _, name := range archs.Names() {
		for _, file := range []string{"", "data"} {
			t.Run(fmt.Sprintf("%s/file=%q", name, file), func(t *testing.T) {
				m := newMachine(t, name)
				ps := m.Arch().PageSize()
				p := newMM(t, m, "parent")
				va := base(m)
				size := 16 * ps
				mmap(t, p, va, size, rw, mmu.MapFlags{Shared: true, File: file, FolioSize: 4 * ps})
				writeAll(t, p, va, size, 40)
				m.Reset()
				c, err := fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				if got := count(p, cost.ForkPTEs); got != 0 {
					t.Errorf("fork_ptes = %d, want 0 for a shared mapping", got)
				}
				if v, _ := c.Read(0, va+3*ps); v != 43 {
					t.Errorf("child reads %d, want 43", v)
				}
				check(t, m)
				must(t, c.Write(1, va+3*ps, 77))
				check(t, m)
				if v, _ := p.Read(0, va+3*ps); v != 77 {
					t.Errorf("parent reads %d after the child's write, want 77", v)
				}
				check(t, m)
				must(t, p.Write(0, va+5*ps, 78))
				check(t, m)
				if v, _ := c.Read(1, va+5*ps); v != 78 {
					t.Errorf("child reads %d after the parent's write, want 78", v)
				}
				_, ppfn := pte(t, p, va+3*ps)
				_, cpfn := pte(t, c, va+3*ps)
				if ppfn != cpfn {
					t.Errorf("shared page: parent %#x, child %#x", ppfn, cpfn)
				}
				check(t, m)
			})
		}
	}
}

// TestSharedCopiedForUffdWP forks a shared mapping whose child keeps
// VM_UFFD_WP (UFFD_FEATURE_EVENT_FORK), so its PTEs are copied: the child
// is clean and old, the parent untouched (not COW), and the batch's write
// bits are merged into the child.
func TestSharedCopiedForUffdWP(t *testing.T) {
	for _, batch := range []string{"on", "off"} {
		t.Run("batch="+batch, func(t *testing.T) {
			m := newMachine(t, "x86_64", "fork_batch", batch)
			ps := m.Arch().PageSize()
			p := newMM(t, m, "parent")
			va := base(m)
			size := 16 * ps
			mmap(t, p, va, size, rw, mmu.MapFlags{Shared: true, File: "f", FolioSize: 16 * ps})
			writeAll(t, p, va, size, 40)
			p.VMAs()[0].Flags |= mmu.VMUffdWP
			// Page 2 read-only in the parent (as after a write-notify).
			rewrite(t, p, va, 2, 1, func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry {
				return fm.MkClean(fm.Wrprotect(e, pgtable.PTE), pgtable.PTE)
			})
			parentBefore := map[uint64]pgtable.Entry{}
			for a := va; a < va+size; a += ps {
				parentBefore[a], _ = pte(t, p, a)
			}
			c, err := fork.ForkWith(p, "child", fork.Options{UffdEventFork: true})
			must(t, err)
			check(t, m)
			if c.VMAs()[0].Flags&mmu.VMUffdWP == 0 {
				t.Fatal("child VMA lost VM_UFFD_WP with UFFD_FEATURE_EVENT_FORK")
			}
			fm := &m.Arch().Format
			for i := 0; i < int(size/ps); i++ {
				a := va + uint64(i)*ps
				pe, _ := pte(t, p, a)
				ce, _ := pte(t, c, a)
				if pe != parentBefore[a] {
					t.Fatalf("page %d: shared parent PTE changed %#x -> %#x", i, parentBefore[a], pe)
				}
				if fm.Dirty(ce, pgtable.PTE) || fm.Young(ce, pgtable.PTE) {
					t.Fatalf("page %d: child PTE %#x not clean and old", i, ce)
				}
				// Batched, write is merged over the folio's batch; one at a
				// time, each child PTE keeps its parent's write bit.
				want := fm.Write(pe, pgtable.PTE) || batch == "on"
				if fm.Write(ce, pgtable.PTE) != want {
					t.Fatalf("page %d: child write %v, want %v", i, fm.Write(ce, pgtable.PTE), want)
				}
			}
		})
	}
}

// TestUffdWPBit checks the child's uffd-wp bits: kept when the child's
// VMA is uffd-wp, cleared otherwise (and then the VMA loses the flag).
func TestUffdWPBit(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("event_fork=%v", keep), func(t *testing.T) {
			m := newMachine(t, "x86_64")
			ps := m.Arch().PageSize()
			p := newMM(t, m, "parent")
			va := base(m)
			mmap(t, p, va, 16*ps, rw, mmu.MapFlags{FolioSize: 16 * ps})
			writeAll(t, p, va, 16*ps, 1)
			p.VMAs()[0].Flags |= mmu.VMUffdWP
			rewrite(t, p, va, 0, 16, func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.MkUffdWP(e, pgtable.PTE) })
			c, err := fork.ForkWith(p, "child", fork.Options{UffdEventFork: keep})
			must(t, err)
			check(t, m)
			fm := &m.Arch().Format
			if got := c.VMAs()[0].Flags&mmu.VMUffdWP != 0; got != keep {
				t.Fatalf("child VMA uffd-wp %v, want %v", got, keep)
			}
			for a := va; a < va+16*ps; a += ps {
				ce, _ := pte(t, c, a)
				pe, _ := pte(t, p, a)
				if fm.UffdWP(ce, pgtable.PTE) != keep || !fm.UffdWP(pe, pgtable.PTE) {
					t.Fatalf("%#x: child uffd-wp %v (want %v), parent %v", a, fm.UffdWP(ce, pgtable.PTE), keep, fm.UffdWP(pe, pgtable.PTE))
				}
			}
		})
	}
}

// TestDontCopyWipeOnFork checks VM_DONTCOPY (no VMA in the child) and
// VM_WIPEONFORK (the VMA, empty).
func TestDontCopyWipeOnFork(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, name)
			ps := m.Arch().PageSize()
			p := newMM(t, m, "parent")
			va := base(m)
			mmap(t, p, va, 8*ps, rw, mmu.MapFlags{DontCopy: true})
			mmap(t, p, va+16*ps, 8*ps, rw, mmu.MapFlags{WipeOnFork: true})
			mmap(t, p, va+32*ps, 8*ps, rw, mmu.MapFlags{})
			for _, a := range []uint64{va, va + 16*ps, va + 32*ps} {
				writeAll(t, p, a, 8*ps, 60)
			}
			m.Reset()
			c, err := fork.Fork(p, "child")
			must(t, err)
			check(t, m)
			vmas := c.VMAs()
			if len(vmas) != 2 || vmas[0].Start != va+16*ps || vmas[1].Start != va+32*ps {
				t.Fatalf("child VMAs %v, want the wipe-on-fork and the plain one", vmas)
			}
			if vmas[0].Flags&mmu.VMWipeOnFork == 0 || vmas[0].AnonVMA {
				t.Errorf("wipe-on-fork VMA %v: want the flag kept and no anonymous pages", vmas[0])
			}
			if got := count(p, cost.ForkPTEs); got != 8 {
				t.Errorf("fork_ptes = %d, want 8 (the plain VMA)", got)
			}
			if _, err := c.Read(0, va); !errors.Is(err, mmu.EFAULT) {
				t.Errorf("child read of the don't-copy range: %v, want EFAULT", err)
			}
			check(t, m)
			if v, err := c.Read(0, va+17*ps); err != nil || v != 0 {
				t.Errorf("child reads %d (%v) in the wiped range, want 0", v, err)
			}
			check(t, m)
			if v, err := c.Read(0, va+33*ps); err != nil || v != 61 {
				t.Errorf("child reads %d (%v) in the copied range, want 61", v, err)
			}
			if v, _ := p.Read(0, va+17*ps); v != 61 {
				t.Errorf("parent's wipe-on-fork page reads %d, want 61", v)
			}
			check(t, m)
		})
	}
}

// TestOneFlushAndCharging checks, on every arch, that the fork flushes
// the parent's TLB exactly once with flush_tlb_mm, flushes nothing else,
// leaves no stale TLB entry, and charges everything to the parent.
func TestOneFlushAndCharging(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, name)
			ps := m.Arch().PageSize()
			p := newMM(t, m, "parent")
			va := base(m)
			mmap(t, p, va, 64*ps, rw, mmu.MapFlags{FolioSize: 16 * ps})
			writeAll(t, p, va, 64*ps, 1)
			// Both CPUs hold writable translations of the parent.
			for a := va; a < va+64*ps; a += ps {
				_, err := p.Access(1, a, mmu.Write)
				must(t, err)
				check(t, m)
			}
			m.Reset()
			c, err := fork.Fork(p, "child")
			must(t, err)
			check(t, m)
			for _, x := range []struct {
				e    cost.Event
				want uint64
			}{
				{cost.TLBFlushMM, 1}, {cost.TLBFlushRange, 0}, {cost.TLBFlushPage, 0}, {cost.Syscalls, 1},
			} {
				if got := count(p, x.e); got != x.want {
					t.Errorf("%s = %d, want %d", x.e, got, x.want)
				}
			}
			if count(p, cost.PTAllocs) == 0 || count(p, cost.ForkPTEs) != 64 {
				t.Errorf("parent charged pt_allocs %d, fork_ptes %d; want the child's tables and 64", count(p, cost.PTAllocs), count(p, cost.ForkPTEs))
			}
			if c.Meter().Counts() != (cost.Counts{}) {
				t.Errorf("child counters not zero after fork: %v", c.Meter().Counts())
			}
			// A write by either CPU now faults: no TLB kept write access.
			faults := count(p, cost.Faults)
			must(t, p.Write(1, va, 5))
			if count(p, cost.Faults) != faults+1 {
				t.Error("write after fork did not fault: a TLB kept write access")
			}
			check(t, m)
		})
	}
}

// TestHugePMD checks copy_huge_pmd: a THP shared whole, both PMDs
// write-protected, a table deposited in the child; a pinned THP split and
// copied page by page, with the split's flush.
func TestHugePMD(t *testing.T) {
	for _, name := range []string{"x86_64", "arm64", "s390x", "sparc64"} {
		for _, pinned := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/pinned=%v", name, pinned), func(t *testing.T) {
				m := newMachine(t, name, "thp", "always")
				geo := &m.Arch().Geometry
				pmd := geo.Size(pgtable.PMD)
				ps := geo.PageSize()
				p := newMM(t, m, "parent")
				va := base(m)
				mmap(t, p, va, 2*pmd, rw, mmu.MapFlags{FolioSize: pmd})
				writeAll(t, p, va, 2*pmd, 3)
				if tr, _ := p.Translate(va); tr.Level != pgtable.PMD {
					t.Fatalf("populated at %s, want a huge PMD", tr.Level)
				}
				if pinned {
					must(t, p.Pin(va+5*ps, ps))
				}
				m.Reset()
				c, err := fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				fm := &m.Arch().Format
				mem := m.Memory()
				// The second THP is always shared.
				ptr, _ := p.Translate(va + pmd)
				ctr, _ := c.Translate(va + pmd)
				f := mem.FolioOf(ptr.PFN)
				switch {
				case ptr.Level != pgtable.PMD || ctr.Level != pgtable.PMD || ptr.PFN != ctr.PFN:
					t.Fatalf("THP not shared whole: parent %s %#x, child %s %#x", ptr.Level, ptr.PFN, ctr.Level, ctr.PFN)
				case fm.Write(ptr.Entry, pgtable.PMD) || fm.Write(ctr.Entry, pgtable.PMD) || fm.Young(ctr.Entry, pgtable.PMD):
					t.Fatalf("PMDs parent %#x child %#x: want both read-only, child old", ptr.Entry, ctr.Entry)
				case mem.EntireMapcount(f) != 2 || mem.Refcount(f) != 2:
					t.Fatalf("THP entire mapcount %d refcount %d, want 2 and 2", mem.EntireMapcount(f), mem.Refcount(f))
				}
				wantDeposits := 2
				if pinned {
					wantDeposits = 1
				}
				if c.Deposits() != wantDeposits {
					t.Errorf("child deposits %d, want %d", c.Deposits(), wantDeposits)
				}
				ptr0, _ := p.Translate(va)
				ctr0, _ := c.Translate(va)
				if !pinned {
					if count(p, cost.TLBFlushRange) != 0 || count(p, cost.ForkPageCopies) != 0 {
						t.Errorf("flush_tlb_range %d, page copies %d: want none", count(p, cost.TLBFlushRange), count(p, cost.ForkPageCopies))
					}
					return
				}
				nr := uint64(pmd / ps)
				switch {
				case ptr0.Level != pgtable.PTE || ctr0.Level != pgtable.PTE:
					t.Fatalf("pinned THP: parent %s, child %s; want split to PTEs", ptr0.Level, ctr0.Level)
				case count(p, cost.ForkPageCopies) != nr:
					t.Fatalf("fork_page_copies = %d, want %d", count(p, cost.ForkPageCopies), nr)
				case count(p, cost.TLBFlushRange) != 1:
					t.Fatalf("flush_tlb_range = %d, want 1 (the split)", count(p, cost.TLBFlushRange))
				}
				for a := va; a < va+pmd; a += ps {
					_, pp := pte(t, p, a)
					_, cp := pte(t, c, a)
					if pp == cp || mem.Content(pp) != mem.Content(cp) {
						t.Fatalf("%#x: parent %#x child %#x contents %d %d", a, pp, cp, mem.Content(pp), mem.Content(cp))
					}
				}
			})
		}
	}
}

// TestForkErrors checks the argument errors.
func TestForkErrors(t *testing.T) {
	m := newMachine(t, "x86_64")
	p := newMM(t, m, "parent")
	mmap(t, p, base(m), mib, rw, mmu.MapFlags{Populate: true})
	if _, err := fork.Fork(p, "parent"); !errors.Is(err, fork.EEXIST) {
		t.Errorf("fork to a taken name: %v, want EEXIST", err)
	}
	if _, err := fork.Fork(m.Kernel(), "k"); !errors.Is(err, fork.EINVAL) {
		t.Errorf("fork of init_mm: %v, want EINVAL", err)
	}
	if _, err := fork.Fork(nil, "n"); !errors.Is(err, fork.EINVAL) {
		t.Errorf("fork of nil: %v, want EINVAL", err)
	}
	must(t, m.DestroyMM(p))
	if _, err := fork.Fork(p, "child"); !errors.Is(err, fork.EINVAL) {
		t.Errorf("fork of a dead mm: %v, want EINVAL", err)
	}
	if len(m.MMs()) != 0 {
		t.Errorf("failed forks left address spaces: %v", m.MMs())
	}
	check(t, m)
}

// TestENOMEMAtEveryAllocation fails each allocation of a fork in turn:
// the fork reports ENOMEM, no child remains, nothing leaks, the parent's
// contents are intact; then a fork succeeds.
func TestENOMEMAtEveryAllocation(t *testing.T) {
	for _, name := range []string{"x86_64", "arm64", "um32"} {
		for _, batch := range []string{"on", "off"} {
			t.Run(name+"/batch="+batch, func(t *testing.T) {
				m := newMachine(t, name, "fork_batch", batch)
				geo := &m.Arch().Geometry
				ps := geo.PageSize()
				p := newMM(t, m, "parent")
				va := base(m)
				// Small pages, large folios, a pinned page (the prealloc
				// path) and, where the arch has them, THPs (the deposit),
				// across several PTE tables.
				mmap(t, p, va, 64*ps, rw, mmu.MapFlags{})
				mmap(t, p, va+geo.Size(pgtable.PMD), 64*ps, rw, mmu.MapFlags{FolioSize: 16 * ps})
				writeAll(t, p, va, 64*ps, 10)
				writeAll(t, p, va+geo.Size(pgtable.PMD), 64*ps, 20)
				must(t, p.Pin(va+3*ps, ps))
				if m.Arch().Caps.THPLevels[pgtable.PMD] {
					h := va + 4*geo.Size(pgtable.PMD)
					mmap(t, p, h, geo.Size(pgtable.PMD), rw, mmu.MapFlags{FolioSize: geo.Size(pgtable.PMD)})
					writeAll(t, p, h, geo.Size(pgtable.PMD), 30)
				}
				contents := snapshot(t, p)
				mem := m.Memory()
				mem.SetFailPolicy(phys.FailPolicy{})
				c, err := fork.Fork(p, "probe")
				must(t, err)
				n := mem.Allocations()
				must(t, m.DestroyMM(c))
				check(t, m)
				if n < 4 {
					t.Fatalf("only %d allocations in a fork", n)
				}
				for i := uint64(1); i <= n; i++ {
					mem.SetFailPolicy(phys.FailPolicy{Nth: i})
					_, err := fork.Fork(p, "child")
					mem.SetFailPolicy(phys.FailPolicy{})
					if !errors.Is(err, fork.ENOMEM) {
						t.Fatalf("allocation %d of %d failed: fork returned %v, want ENOMEM", i, n, err)
					}
					if _, ok := m.MM("child"); ok || len(m.MMs()) != 1 {
						t.Fatalf("allocation %d: a child remains", i)
					}
					check(t, m)
					if got := snapshot(t, p); fmt.Sprint(got) != fmt.Sprint(contents) {
						t.Fatalf("allocation %d: parent contents changed", i)
					}
				}
				c, err = fork.Fork(p, "child")
				must(t, err)
				check(t, m)
				if got := snapshot(t, c); fmt.Sprint(got) != fmt.Sprint(contents) {
					t.Fatal("child contents differ from the parent's")
				}
			})
		}
	}
}

// snapshot returns the content of every mapped page of mm, in address
// order, read without side effects.
func snapshot(t testing.TB, mm *mmu.MM) []uint64 {
	t.Helper()
	var out []uint64
	ps := mm.Machine().Arch().PageSize()
	for _, v := range mm.VMAs() {
		for a := v.Start; a < v.End; a += ps {
			val, _ := mm.Content(a)
			out = append(out, a, val)
		}
	}
	return out
}

// TestHugePUD forks an x86_64 address space holding a 1 GiB PUD leaf (no
// Linux path makes an anonymous one; the model's copy_huge_pud shares it
// whole): one more reference and entire mapping, both write-protected,
// the child's old; a pinned one cannot be split, so the fork fails with
// ENOMEM and changes nothing.
func TestHugePUD(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		t.Run(fmt.Sprintf("pinned=%v", pinned), func(t *testing.T) {
			m := newMachine(t, "x86_64")
			p := newMM(t, m, "parent")
			va := base(m)
			const size = 1 << 30
			mmap(t, p, va, size, rw, mmu.MapFlags{})
			p.VMAs()[0].AnonVMA = true
			mem := m.Memory()
			pfn, err := mem.Alloc(18, phys.KindFolio)
			must(t, err)
			f := phys.Folio{PFN: pfn, Order: 18}
			mem.SetContent(pfn+5, 55)
			fm := &m.Arch().Format
			pt := p.PageTable()
			ptr, err := pt.WalkAlloc(va, pgtable.PUD)
			must(t, err)
			e := fm.MkWrite(fm.MkDirty(fm.MkYoung(fm.MkHugeAt(pgtable.PUD, pfn, pgtable.ProtRead|pgtable.ProtWrite), pgtable.PUD), pgtable.PUD), pgtable.PUD)
			must(t, pt.SetLeaf(va, ptr, e))
			p.AddEntireRmap(f, true, true)
			p.AddRSS(mmu.MMAnonPages, int64(f.NrPages()))
			check(t, m)
			if pinned {
				must(t, p.Pin(va, 4096))
				_, err := fork.Fork(p, "child")
				if !errors.Is(err, fork.ENOMEM) {
					t.Fatalf("fork of a pinned PUD leaf: %v, want ENOMEM", err)
				}
				check(t, m)
				if mem.EntireMapcount(f) != 1 {
					t.Fatalf("entire mapcount %d after the failed fork, want 1", mem.EntireMapcount(f))
				}
				return
			}
			c, err := fork.Fork(p, "child")
			must(t, err)
			check(t, m)
			ptr2, _ := p.Translate(va)
			ctr, _ := c.Translate(va)
			switch {
			case ctr.Level != pgtable.PUD || ctr.PFN != pfn:
				t.Fatalf("child maps %s %#x, want the PUD leaf %#x", ctr.Level, ctr.PFN, pfn)
			case fm.Write(ptr2.Entry, pgtable.PUD) || fm.Write(ctr.Entry, pgtable.PUD) || fm.Young(ctr.Entry, pgtable.PUD):
				t.Fatalf("parent %#x child %#x: want both read-only, the child old", ptr2.Entry, ctr.Entry)
			case mem.EntireMapcount(f) != 2 || mem.Refcount(f) != 2 || c.RSS(mmu.MMAnonPages) != int64(f.NrPages()):
				t.Fatalf("entire mapcount %d refcount %d child rss %d", mem.EntireMapcount(f), mem.Refcount(f), c.RSS(mmu.MMAnonPages))
			}
			if v, err := c.Read(0, va+5*4096); err != nil || v != 55 {
				t.Fatalf("child reads %d (%v), want 55", v, err)
			}
			must(t, m.DestroyMM(c))
			check(t, m)
		})
	}
}
