package fork_test

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// batchRuleCase is one parent layout for TestBatchRules: built the same
// way on a machine with fork_batch on and one with it off.
type batchRuleCase struct {
	name   string
	arches []string
	// build maps and populates the parent and returns the range forked.
	build func(t *testing.T, m *mmu.Machine, p *mmu.MM) (va, size uint64)
	opts  fork.Options
	// batches and ptes are fork_batches and fork_ptes with fork_batch on.
	batches, ptes uint64
	// verify checks rule-specific facts on the parent's and the child's
	// PTEs (both machines).
	verify func(t *testing.T, fm *pgtable.Format, pe, ce pgtable.Entry, i int)
	// softDirtyIgnored leaves the soft-dirty bit out of the comparison
	// of the twins: with tracking off Linux's batch ignores it, and
	// set_ptes gives every child PTE of a batch the first one's bit.
	softDirtyIgnored bool
}

// TestBatchRules checks folio_pte_batch's cut points and its ignore,
// respect and merge rules as copy_present_ptes uses them, each on a
// layout made for it: the batch count with fork_batch on, the rule's
// effect on the parent's and the child's PTEs, and the batched fork's end
// state equal to the PTE-by-PTE fork's (the slow twin), before and after
// COW writes in both. m.Check runs after every step.
func TestBatchRules(t *testing.T) {
	rdonly := func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.Wrprotect(e, pgtable.PTE) }
	clean := func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.MkClean(e, pgtable.PTE) }
	uffd := func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.MkUffdWP(e, pgtable.PTE) }
	noSoftDirty := func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.ClearSoftDirty(e, pgtable.PTE) }
	folio16 := func(fl mmu.MapFlags, vmaFlags mmu.VMFlags, edits ...func(t *testing.T, p *mmu.MM, va uint64)) func(t *testing.T, m *mmu.Machine, p *mmu.MM) (uint64, uint64) {
		return func(t *testing.T, m *mmu.Machine, p *mmu.MM) (uint64, uint64) {
			ps := m.Arch().PageSize()
			va, size := base(m), 16*ps
			fl.FolioSize = 16 * ps
			mmap(t, p, va, size, rw, fl)
			writeAll(t, p, va, size, 10)
			p.VMAs()[0].Flags |= vmaFlags
			for _, ed := range edits {
				ed(t, p, va)
			}
			return va, size
		}
	}
	edit := func(first, n int, fn func(*pgtable.Format, pgtable.Entry) pgtable.Entry) func(t *testing.T, p *mmu.MM, va uint64) {
		return func(t *testing.T, p *mmu.MM, va uint64) { rewrite(t, p, va, first, n, fn) }
	}
	x86 := []string{"x86_64"}
	// Every arch whose allocator gives large folios (UML's has none).
	largeFolioArches := []string{"x86_64", "x86_64-la57", "arm64", "arm64-16k", "arm64-64k", "s390x", "sparc64"}
	cases := []batchRuleCase{
		{
			// FPB_MERGE_WRITE: write is ignored for the compare and
			// merged, so one writable PTE write-protects the whole batch
			// in the parent, even when the first PTE was read-only.
			name: "write merged from a later PTE", arches: x86,
			build:   folio16(mmu.MapFlags{}, 0, edit(0, 4, rdonly)),
			batches: 1, ptes: 16,
			verify: func(t *testing.T, fm *pgtable.Format, pe, ce pgtable.Entry, i int) {
				if fm.Write(pe, pgtable.PTE) || fm.Write(ce, pgtable.PTE) {
					t.Fatalf("page %d: parent %#x child %#x, want both read-only", i, pe, ce)
				}
			},
		},
		{
			// uffd-wp is never ignored: a change of it ends the batch; the
			// child keeps the bits (UFFD_FEATURE_EVENT_FORK).
			name: "uffd-wp differs, kept", arches: x86,
			build:   folio16(mmu.MapFlags{}, mmu.VMUffdWP, edit(0, 6, uffd)),
			opts:    fork.Options{UffdEventFork: true},
			batches: 2, ptes: 16,
			verify: func(t *testing.T, fm *pgtable.Format, pe, ce pgtable.Entry, i int) {
				if fm.UffdWP(ce, pgtable.PTE) != (i < 6) || fm.UffdWP(pe, pgtable.PTE) != (i < 6) {
					t.Fatalf("page %d: uffd-wp parent %v child %v", i, fm.UffdWP(pe, pgtable.PTE), fm.UffdWP(ce, pgtable.PTE))
				}
			},
		},
		{
			// Without EVENT_FORK the child loses the bits, but the
			// parent's differing bits still cut the batch.
			name: "uffd-wp differs, dropped", arches: x86,
			build:   folio16(mmu.MapFlags{}, mmu.VMUffdWP, edit(0, 6, uffd)),
			batches: 2, ptes: 16,
			verify: func(t *testing.T, fm *pgtable.Format, pe, ce pgtable.Entry, i int) {
				if fm.UffdWP(ce, pgtable.PTE) {
					t.Fatalf("page %d: child %#x kept uffd-wp", i, ce)
				}
			},
		},
		{
			// Shared: dirty is ignored (not FPB_RESPECT_DIRTY) and the
			// child is cleaned; the parent keeps its bits (not COW). The
			// copy happens because the child keeps VM_UFFD_WP.
			name: "shared: dirty ignored, child clean", arches: x86,
			build:   folio16(mmu.MapFlags{File: "f", Shared: true}, mmu.VMUffdWP, edit(8, 8, clean)),
			opts:    fork.Options{UffdEventFork: true},
			batches: 1, ptes: 16,
			verify: func(t *testing.T, fm *pgtable.Format, pe, ce pgtable.Entry, i int) {
				if fm.Dirty(ce, pgtable.PTE) || fm.Dirty(pe, pgtable.PTE) != (i < 8) {
					t.Fatalf("page %d: parent dirty %v child dirty %v", i, fm.Dirty(pe, pgtable.PTE), fm.Dirty(ce, pgtable.PTE))
				}
			},
		},
		{
			// Private: dirty is respected; the child keeps each PTE's.
			name: "private: dirty respected", arches: x86,
			build:   folio16(mmu.MapFlags{}, 0, edit(8, 8, clean)),
			batches: 2, ptes: 16,
			verify: func(t *testing.T, fm *pgtable.Format, pe, ce pgtable.Entry, i int) {
				if fm.Dirty(ce, pgtable.PTE) != (i < 8) {
					t.Fatalf("page %d: child dirty %v", i, fm.Dirty(ce, pgtable.PTE))
				}
			},
		},
		{
			// Soft-dirty tracking armed on the VMA: soft-dirty is
			// respected (FPB_RESPECT_SOFT_DIRTY) and copied as it is.
			name: "soft-dirty differs, tracking on", arches: x86,
			build:   folio16(mmu.MapFlags{}, mmu.VMSoftDirty, edit(4, 12, noSoftDirty)),
			batches: 2, ptes: 16,
			verify: func(t *testing.T, fm *pgtable.Format, pe, ce pgtable.Entry, i int) {
				if fm.SoftDirty(ce, pgtable.PTE) != (i < 4) {
					t.Fatalf("page %d: child soft-dirty %v", i, fm.SoftDirty(ce, pgtable.PTE))
				}
			},
		},
		{
			// Tracking off: soft-dirty is ignored, one batch; the first
			// PTE's bits go to every child PTE of the batch (set_ptes).
			name: "soft-dirty differs, tracking off", arches: x86,
			build:   folio16(mmu.MapFlags{}, 0, edit(4, 12, noSoftDirty)),
			batches: 1, ptes: 16, softDirtyIgnored: true,
		},
		{
			// A folio moved (PTE by PTE) so that it straddles two PTE
			// tables: the batch stops at the table's end, and the next one
			// starts in the middle of the folio and runs to its end.
			name: "straddles a PTE table", arches: largeFolioArches,
			build: func(t *testing.T, m *mmu.Machine, p *mmu.MM) (uint64, uint64) {
				ps := m.Arch().PageSize()
				pmd := m.Arch().Geometry.Size(pgtable.PMD)
				va, size := base(m), 16*ps
				mmap(t, p, va, size, rw, mmu.MapFlags{FolioSize: 16 * ps})
				writeAll(t, p, va, size, 10)
				dst := base(m) + 4*pmd - 8*ps
				if _, err := mremap.Mremap(p, va, size, size, mremap.MayMove|mremap.Fixed, dst); err != nil {
					t.Fatal(err)
				}
				check(t, m)
				return dst, size
			},
			batches: 2, ptes: 16,
		},
		{
			// The first PTE maps page 4 of its folio (the VMA's first
			// pages were unmapped): the batch runs to that folio's end and
			// never into the next folio, even where its frames follow on.
			name: "starts mid-folio, cut at the folio end", arches: largeFolioArches,
			build: func(t *testing.T, m *mmu.Machine, p *mmu.MM) (uint64, uint64) {
				ps := m.Arch().PageSize()
				va, size := base(m), 32*ps
				mmap(t, p, va, size, rw, mmu.MapFlags{FolioSize: 16 * ps})
				writeAll(t, p, va, size, 10)
				must(t, p.Munmap(va, 4*ps))
				check(t, m)
				return va + 4*ps, size - 4*ps
			},
			batches: 2, ptes: 28,
		},
	}
	for _, tc := range cases {
		for _, name := range tc.arches {
			t.Run(fmt.Sprintf("%s/%s", tc.name, name), func(t *testing.T) {
				var ms [2]*mmu.Machine
				var va, size uint64
				for i, batch := range []string{"on", "off"} {
					m := newMachine(t, name, "thp", "never", "fork_batch", batch)
					p := newMM(t, m, "parent")
					va, size = tc.build(t, m, p)
					m.Reset()
					c, err := fork.ForkWith(p, "child", tc.opts)
					must(t, err)
					check(t, m)
					if batch == "on" {
						if got := count(p, cost.ForkBatches); got != tc.batches {
							t.Errorf("fork_batches = %d, want %d", got, tc.batches)
						}
					}
					if got := count(p, cost.ForkPTEs); got != tc.ptes {
						t.Errorf("batch=%s: fork_ptes = %d, want %d", batch, got, tc.ptes)
					}
					if tc.verify != nil {
						ps := m.Arch().PageSize()
						for j := 0; j < int(size/ps); j++ {
							pe, _ := pte(t, p, va+uint64(j)*ps)
							ce, _ := pte(t, c, va+uint64(j)*ps)
							tc.verify(t, &m.Arch().Format, pe, ce, j)
						}
					}
					ms[i] = m
				}
				snap := func(m *mmu.Machine) state {
					s := capture(t, m)
					if tc.softDirtyIgnored {
						for i := range s.MMs {
							for j := range s.MMs[i].Pages {
								s.MMs[i].Pages[j].Entry = m.Arch().Format.ClearSoftDirty(s.MMs[i].Pages[j].Entry, s.MMs[i].Pages[j].Level)
							}
						}
					}
					return s
				}
				if d := diffStates(snap(ms[0]), snap(ms[1])); d != "" {
					t.Fatalf("batched and unbatched forks differ: %s", d)
				}
				// COW writes in both: private stays private, shared shared.
				for _, m := range ms {
					p, _ := m.MM("parent")
					c, _ := m.MM("child")
					ps := m.Arch().PageSize()
					for a := va; a < va+size; a += 3 * ps {
						must(t, c.Write(1, a, 7000+a))
						check(t, m)
						if a+ps < va+size {
							must(t, p.Write(0, a+ps, 9000+a))
							check(t, m)
						}
					}
				}
				if d := diffStates(snap(ms[0]), snap(ms[1])); d != "" {
					t.Fatalf("after COW writes: %s", d)
				}
			})
		}
	}
}

// TestChildVMAFlags checks the flags of the child's VMAs as dup_mmap sets
// them: memory locks are not inherited (VM_LOCKED cleared), VM_UFFD_WP
// only with UFFD_FEATURE_EVENT_FORK, everything else kept; the parent's
// flags are unchanged. The child's pages are still copied for a locked
// VMA (it has anonymous pages).
func TestChildVMAFlags(t *testing.T) {
	kept := mmu.VMAccount | mmu.VMSoftDirty | mmu.VMDontExpand
	for _, eventFork := range []bool{false, true} {
		for _, name := range []string{"x86_64", "arm64", "s390x", "um32"} {
			t.Run(fmt.Sprintf("%s/event_fork=%v", name, eventFork), func(t *testing.T) {
				m := newMachine(t, name)
				ps := m.Arch().PageSize()
				p := newMM(t, m, "parent")
				va := base(m)
				mmap(t, p, va, 8*ps, rw, mmu.MapFlags{})
				writeAll(t, p, va, 8*ps, 30)
				set := mmu.VMLocked | mmu.VMUffdWP | kept
				p.VMAs()[0].Flags |= set
				before := p.VMAs()[0].Flags
				c, err := fork.ForkWith(p, "child", fork.Options{UffdEventFork: eventFork})
				must(t, err)
				check(t, m)
				if p.VMAs()[0].Flags != before {
					t.Fatalf("parent flags %v, want %v", p.VMAs()[0].Flags, before)
				}
				want := before &^ mmu.VMLocked
				if !eventFork {
					want &^= mmu.VMUffdWP
				}
				if got := c.VMAs()[0].Flags; got != want {
					t.Fatalf("child flags %v, want %v", got, want)
				}
				if got := count(p, cost.ForkPTEs); got != 8 {
					t.Errorf("fork_ptes = %d, want 8", got)
				}
				if v, err := c.Read(1, va+3*ps); err != nil || v != 33 {
					t.Fatalf("child reads %d, %v", v, err)
				}
				check(t, m)
			})
		}
	}
}

// TestRSSOncePerPass counts the child's RSS updates: copy_pte_range adds
// its local rss[] to the child once per pass (add_mm_rss_vec, one update
// per counter that changed), so one per PTE table and kind, and one more
// for each pass that a pinned page cut short (the locks are dropped to
// preallocate a page).
func TestRSSOncePerPass(t *testing.T) {
	cases := []struct {
		name string
		// build populates the parent at va (PMD-aligned).
		build func(t *testing.T, p *mmu.MM, va, ps, pmd uint64)
		// updates is rss_updates of the fork; anon and file the child's
		// RSS.
		updates    uint64
		anon, file int64
	}{
		{"anon, three PTE tables", func(t *testing.T, p *mmu.MM, va, ps, pmd uint64) {
			mmap(t, p, va, 3*pmd, rw, mmu.MapFlags{})
			for i := uint64(0); i < 3; i++ {
				writeAll(t, p, va+i*pmd, 4*ps, 1)
			}
		}, 3, 12, 0},
		{"anon and file pages in one table", func(t *testing.T, p *mmu.MM, va, ps, pmd uint64) {
			mmap(t, p, va, 8*ps, rw, mmu.MapFlags{File: "f"})
			writeAll(t, p, va, 3*ps, 1) // COW: anonymous copies
			for a := va + 3*ps; a < va+8*ps; a += ps {
				if _, err := p.Read(0, a); err != nil {
					t.Fatal(err)
				}
			}
			check(t, p.Machine())
		}, 2, 3, 5},
		{"a pinned page cuts the pass", func(t *testing.T, p *mmu.MM, va, ps, pmd uint64) {
			mmap(t, p, va, 8*ps, rw, mmu.MapFlags{})
			writeAll(t, p, va, 8*ps, 1)
			must(t, p.Pin(va+4*ps, ps))
			check(t, p.Machine())
		}, 2, 8, 0},
	}
	for _, tc := range cases {
		for _, name := range []string{"x86_64", "arm64", "s390x"} {
			for _, batch := range []string{"on", "off"} {
				t.Run(fmt.Sprintf("%s/%s/batch=%s", tc.name, name, batch), func(t *testing.T) {
					m := newMachine(t, name, "thp", "never", "fork_batch", batch)
					p := newMM(t, m, "parent")
					ps := m.Arch().PageSize()
					pmd := m.Arch().Geometry.Size(pgtable.PMD)
					va := base(m)
					tc.build(t, p, va, ps, pmd)
					m.Reset()
					c, err := fork.Fork(p, "child")
					must(t, err)
					check(t, m)
					if got := count(p, cost.RSSUpdates); got != tc.updates {
						t.Errorf("rss_updates = %d, want %d", got, tc.updates)
					}
					if c.RSS(mmu.MMAnonPages) != tc.anon || c.RSS(mmu.MMFilePages) != tc.file {
						t.Errorf("child rss anon %d file %d, want %d and %d", c.RSS(mmu.MMAnonPages), c.RSS(mmu.MMFilePages), tc.anon, tc.file)
					}
				})
			}
		}
	}
}

// TestPinnedCopyKeepsUffdWP forks a pinned page whose PTE is uffd-wp
// marked: copy_present_page gives the child a dirty copy, writable
// (maybe_mkwrite) unless it keeps the mark, which it does only when the
// child's VMA stays uffd-wp (userfaultfd_pte_wp(dst_vma, src pte)), and
// pte_mkuffd_wp write-protects.
func TestPinnedCopyKeepsUffdWP(t *testing.T) {
	for _, eventFork := range []bool{false, true} {
		for _, batch := range []string{"on", "off"} {
			t.Run(fmt.Sprintf("event_fork=%v/batch=%s", eventFork, batch), func(t *testing.T) {
				m := newMachine(t, "x86_64", "fork_batch", batch)
				ps := m.Arch().PageSize()
				p := newMM(t, m, "parent")
				va := base(m)
				mmap(t, p, va, 16*ps, rw, mmu.MapFlags{FolioSize: 16 * ps})
				writeAll(t, p, va, 16*ps, 3)
				must(t, p.Pin(va+2*ps, ps))
				p.VMAs()[0].Flags |= mmu.VMUffdWP
				rewrite(t, p, va, 0, 16, func(fm *pgtable.Format, e pgtable.Entry) pgtable.Entry { return fm.MkUffdWP(e, pgtable.PTE) })
				m.Reset()
				c, err := fork.ForkWith(p, "child", fork.Options{UffdEventFork: eventFork})
				must(t, err)
				check(t, m)
				if got := count(p, cost.ForkPageCopies); got != 16 {
					t.Fatalf("fork_page_copies = %d, want 16 (the pinned folio)", got)
				}
				fm := &m.Arch().Format
				for a := va; a < va+16*ps; a += ps {
					ce, cpfn := pte(t, c, a)
					_, ppfn := pte(t, p, a)
					// pte_mkuffd_wp write-protects: a kept mark leaves the
					// copy read-only (x86 keeps the dirty bit as saved-dirty).
					if cpfn == ppfn || fm.UffdWP(ce, pgtable.PTE) != eventFork || fm.Write(ce, pgtable.PTE) == eventFork || !fm.Dirty(ce, pgtable.PTE) {
						t.Fatalf("%#x: child %#x (frame %#x, parent's %#x): want a dirty copy, uffd-wp %v, writable %v", a, ce, cpfn, ppfn, eventFork, !eventFork)
					}
				}
			})
		}
	}
}

// TestSpecialHugePMD forks a huge PFN map (a special PMD leaf, built by
// hand as a driver's remap would leave it): copy_huge_pmd copies it as
// it is, made old, with no reference, mapping, deposit or RSS, whether
// or not the VMA counts as anonymous; the parent's entry is unchanged.
func TestSpecialHugePMD(t *testing.T) {
	for _, name := range []string{"x86_64", "arm64"} {
		t.Run(name, func(t *testing.T) {
			m := newMachine(t, name)
			p := newMM(t, m, "parent")
			fm := &m.Arch().Format
			pmd := m.Arch().Geometry.Size(pgtable.PMD)
			va := base(m)
			pt := p.PageTable()
			p.MmapWriteLock()
			v := &mmu.VMA{Start: va, End: va + pmd,
				Flags: mmu.VMRead | mmu.VMWrite | mmu.VMShared | mmu.VMMayRead | mmu.VMMayWrite | mmu.VMMayShare | mmu.VMPFNMap}
			must(t, p.InsertVMA(v))
			ptr, err := pt.WalkAlloc(va, pgtable.PMD)
			must(t, err)
			raw := m.Memory().Frames() - pmd/m.Arch().PageSize() // a frame range nothing allocates
			leaf := fm.MkSpecial(fm.MkYoung(fm.MkHugeAt(pgtable.PMD, phys.PFN(raw), pgtable.ProtRead|pgtable.ProtWrite|pgtable.ProtShared), pgtable.PMD), pgtable.PMD)
			must(t, pt.SetLeaf(va, ptr, leaf))
			p.MmapWriteUnlock()
			check(t, m)
			before, _ := p.Translate(va)
			c, err := fork.Fork(p, "child")
			must(t, err)
			check(t, m)
			after, _ := p.Translate(va)
			ct, ok := c.Translate(va)
			switch {
			case after.Entry != before.Entry:
				t.Fatalf("parent PMD %#x changed to %#x", before.Entry, after.Entry)
			case !ok || ct.Level != pgtable.PMD || ct.PFN != before.PFN || fm.Young(ct.Entry, pgtable.PMD) || !fm.Special(ct.Entry, pgtable.PMD):
				t.Fatalf("child maps %+v (%v), want the special PMD, old", ct, ok)
			case c.Deposits() != 0 || c.RSS(mmu.MMAnonPages) != 0 || c.RSS(mmu.MMFilePages) != 0:
				t.Fatalf("child deposits %d rss %d/%d, want none", c.Deposits(), c.RSS(mmu.MMAnonPages), c.RSS(mmu.MMFilePages))
			}
			must(t, m.DestroyMM(c))
			check(t, m)
		})
	}
}
