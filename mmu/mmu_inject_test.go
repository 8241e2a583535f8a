package mmu_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/internal/proptest"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// injEnv is one fault-injection run: a small machine, an address space
// and what the run needs to compare against.
type injEnv struct {
	m      *mmu.Machine
	mm     *mmu.MM
	va     uint64
	ps     uint64
	before proptest.Snapshot
	// used are the frames in use, by kind, before the operation.
	used [3]uint64
}

// injMachine builds a 512 MiB machine for arch name with knobs ("key",
// "value" pairs) and an address space "p".
func injMachine(t testing.TB, name string, knobs ...string) *injEnv {
	t.Helper()
	a, err := archs.ByName(name)
	require.NoError(t, err)
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 512 << 20, CPUs: 2})
	require.NoError(t, err)
	for i := 0; i+1 < len(knobs); i += 2 {
		require.NoError(t, m.SetKnob(knobs[i], knobs[i+1]))
	}
	mm, err := m.NewMM("p")
	require.NoError(t, err)
	va := uint64(0x10_0000_0000)
	if a.User.End < 1<<32 {
		va = 0x4000_0000
	}
	return &injEnv{m: m, mm: mm, va: va, ps: a.PageSize()}
}

// mark records the state the operation starts from.
func (e *injEnv) mark() (*injEnv, *phys.Memory) {
	e.before = proptest.Take(e.m)
	for k := range e.used {
		e.used[k] = e.m.Memory().InUse(phys.Kind(k))
	}
	return e, e.m.Memory()
}

// checked fails the test unless the machine's invariants hold.
func (e *injEnv) checked(t testing.TB) {
	t.Helper()
	if err := e.m.Check(); err != nil {
		t.Fatalf("invariants: %v", err)
	}
}

// unchanged fails the test unless the state is the one mark recorded.
func (e *injEnv) unchanged(t testing.TB) {
	t.Helper()
	if after := proptest.Take(e.m); !reflect.DeepEqual(e.before, after) {
		t.Fatalf("state changed (-before +after):\n%s", cmp.Diff(e.before, after))
	}
}

// isENOMEM fails the test unless err wraps ENOMEM.
func isENOMEM(t testing.TB, n uint64, err error) {
	t.Helper()
	if !errors.Is(err, mmu.ENOMEM) {
		t.Fatalf("allocation %d failed: got %v, want ENOMEM", n, err)
	}
}

var rwProt = mmu.ProtRead | mmu.ProtWrite

// TestInjectNewMM fails the root table's allocation: ENOMEM, no address
// space, nothing leaked.
func TestInjectNewMM(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			proptest.EachAllocation(t, proptest.Injection[*injEnv]{
				Setup: func(t testing.TB) (*injEnv, *phys.Memory) { return injMachine(t, name).mark() },
				Op:    func(e *injEnv) error { _, err := e.m.NewMM("q"); return err },
				After: func(t testing.TB, e *injEnv, n uint64, err error) {
					e.checked(t)
					if n == 0 {
						return
					}
					isENOMEM(t, n, err)
					if _, ok := e.m.MM("q"); ok {
						t.Fatal("the address space exists after ENOMEM")
					}
					e.unchanged(t)
				},
			})
		})
	}
}

// TestInjectVMAAlloc fails the VMA allocation of mmap (vm_area_alloc),
// fork (vm_area_dup) and the VMA splits of munmap and mprotect
// (__split_vma): ENOMEM each time. mmap and fork change nothing (a failed
// fork's child is torn down); a split that fails leaves the address space
// unchanged, except that when the second of two splits fails the first
// stays split, as in Linux (vma_modify and vms_gather_munmap_vmas return
// without merging it back), mapping exactly what it mapped.
func TestInjectVMAAlloc(t *testing.T) {
	slab := []phys.Kind{phys.KindSlab}
	for _, name := range archs.Names() {
		setup := func(t testing.TB) *injEnv {
			e := injMachine(t, name)
			require.NoError(t, e.mm.Mmap(e.va, 8*e.ps, rwProt, mmu.MapFlags{}))
			for i := uint64(0); i < 8; i++ {
				require.NoError(t, e.mm.Write(0, e.va+i*e.ps, 100+i))
			}
			return e
		}
		ops := []struct {
			name string
			op   func(e *injEnv) error
		}{
			{"mmap", func(e *injEnv) error { return e.mm.Mmap(e.va+16*e.ps, 4*e.ps, rwProt, mmu.MapFlags{}) }},
			{"fork", func(e *injEnv) error { _, err := fork.Fork(e.mm, "c"); return err }},
			{"munmap", func(e *injEnv) error { return e.mm.Munmap(e.va+2*e.ps, 2*e.ps) }},
			{"mprotect", func(e *injEnv) error { return e.mm.Mprotect(e.va+2*e.ps, 2*e.ps, mmu.ProtRead) }},
		}
		for _, o := range ops {
			t.Run(name+"/"+o.name, func(t *testing.T) {
				n := proptest.EachAllocation(t, proptest.Injection[*injEnv]{
					Kinds: slab,
					Setup: func(t testing.TB) (*injEnv, *phys.Memory) { return setup(t).mark() },
					Op:    o.op,
					After: func(t testing.TB, e *injEnv, n uint64, err error) {
						e.checked(t)
						if n == 0 {
							return
						}
						isENOMEM(t, n, err)
						if n == 1 {
							e.unchanged(t)
							return
						}
						// The second split failed: the first stays.
						after := proptest.Take(e.m)
						require.Equal(t, len(e.before.MMs[0].VMAs)+1, len(after.MMs[0].VMAs), "vmas")
						require.Equal(t, e.before.MMs[0].Leaves, after.MMs[0].Leaves, "mappings")
					},
				})
				want := map[string]uint64{"mmap": 1, "fork": 1, "munmap": 2, "mprotect": 2}[o.name]
				require.Equal(t, want, n, "VMA allocations")
			})
		}
	}
}

// TestInjectWriteFault fails each allocation of an anonymous write fault,
// for every folio size: base pages, small large folios, arm64's contiguous
// block, a PMD-mapped THP and a PTE-mapped THP. A large folio that cannot
// be allocated falls back to one page (alloc_anon_folio), a THP to the PTE
// level (VM_FAULT_FALLBACK); any other failure is ENOMEM (VM_FAULT_OOM)
// with no folio leaked and the page still unmapped. Page tables allocated
// on the way stay, as __pte_alloc leaves them in Linux.
func TestInjectWriteFault(t *testing.T) {
	for _, name := range archs.Names() {
		a, _ := archs.ByName(name)
		ps := a.PageSize()
		pmd := a.Geometry.Size(pgtable.PMD)
		type fc struct {
			name  string
			folio uint64
			knobs []string
		}
		cases := []fc{{"base", 0, nil}, {"4pages", 4 * ps, nil}}
		if n := a.Caps.ContPTEs; n > 0 && uint64(n)*ps < pmd {
			cases = append(cases, fc{"contpte", uint64(n) * ps, nil})
		}
		if a.Caps.THPLevels[pgtable.PMD] && pmd <= 32<<20 {
			cases = append(cases, fc{"thp", pmd, []string{"thp", "always"}}, fc{"pte-mapped-thp", pmd, []string{"thp", "never"}})
		}
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				fallbacks := 0
				proptest.EachAllocation(t, proptest.Injection[*injEnv]{
					Setup: func(t testing.TB) (*injEnv, *phys.Memory) {
						e := injMachine(t, name, c.knobs...)
						require.NoError(t, e.mm.Mmap(e.va, 2*pmd, rwProt, mmu.MapFlags{FolioSize: c.folio}))
						return e.mark()
					},
					Op: func(e *injEnv) error { return e.mm.Write(0, e.va+3*e.ps, 42) },
					After: func(t testing.TB, e *injEnv, n uint64, err error) {
						e.checked(t)
						if err == nil {
							v, rerr := e.mm.Read(1, e.va+3*e.ps)
							require.NoError(t, rerr)
							require.Equal(t, uint64(42), v)
							if n > 0 {
								fallbacks++
							}
							return
						}
						isENOMEM(t, n, err)
						require.Equal(t, e.used[phys.KindFolio], e.m.Memory().InUse(phys.KindFolio), "folio frames leaked")
						_, mapped := e.mm.Translate(e.va + 3*e.ps)
						require.False(t, mapped, "page mapped after ENOMEM")
					},
				})
				if c.folio > 0 && fallbacks == 0 {
					t.Errorf("no failure fell back to a smaller folio")
				}
			})
		}
	}
}

// TestInjectCOW fails the new page of a copy-on-write fault (after fork,
// and on a private file mapping): ENOMEM, nothing changed.
func TestInjectCOW(t *testing.T) {
	for _, name := range archs.Names() {
		for _, file := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/file=%v", name, file), func(t *testing.T) {
				proptest.EachAllocation(t, proptest.Injection[*injEnv]{
					Kinds: []phys.Kind{phys.KindFolio},
					Setup: func(t testing.TB) (*injEnv, *phys.Memory) {
						e := injMachine(t, name)
						fl := mmu.MapFlags{}
						if file {
							fl.File = "f"
							require.NoError(t, e.mm.Mmap(e.va+64*e.ps, 4*e.ps, rwProt, mmu.MapFlags{File: "f", Shared: true}))
							require.NoError(t, e.mm.Write(0, e.va+64*e.ps, 9))
						}
						require.NoError(t, e.mm.Mmap(e.va, 4*e.ps, rwProt, fl))
						if file {
							_, err := e.mm.Read(0, e.va) // the page-cache page, read-only
							require.NoError(t, err)
						} else {
							require.NoError(t, e.mm.Write(0, e.va, 9))
							c, err := fork.Fork(e.mm, "c")
							require.NoError(t, err)
							e.mm = c
						}
						return e.mark()
					},
					Op: func(e *injEnv) error { return e.mm.Write(1, e.va, 7) },
					After: func(t testing.TB, e *injEnv, n uint64, err error) {
						e.checked(t)
						if n == 0 {
							return
						}
						isENOMEM(t, n, err)
						e.unchanged(t)
						v, rerr := e.mm.Read(1, e.va)
						require.NoError(t, rerr)
						require.Equal(t, uint64(9), v)
					},
				})
			})
		}
	}
}

// TestInjectFileFault fails each allocation of read and write faults on a
// file (page-cache folios of one page and large ones, page tables): a
// large page-cache folio that cannot be allocated falls back to one page
// (__filemap_get_folio tries smaller orders); any other failure is ENOMEM
// with the page unmapped and every reference accounted for (a page-cache
// folio read before the failing copy stays cached, as in Linux).
func TestInjectFileFault(t *testing.T) {
	for _, name := range archs.Names() {
		a, _ := archs.ByName(name)
		ps := a.PageSize()
		for _, folio := range []uint64{0, 16 * ps} {
			for _, kind := range []string{"read", "shared-write", "private-write"} {
				t.Run(fmt.Sprintf("%s/%s/folio=%#x", name, kind, folio), func(t *testing.T) {
					fallbacks := 0
					proptest.EachAllocation(t, proptest.Injection[*injEnv]{
						Setup: func(t testing.TB) (*injEnv, *phys.Memory) {
							e := injMachine(t, name)
							require.NoError(t, e.mm.Mmap(e.va, 32*e.ps, rwProt,
								mmu.MapFlags{File: "f", Shared: kind == "shared-write", FolioSize: folio}))
							return e.mark()
						},
						Op: func(e *injEnv) error {
							if kind == "read" {
								_, err := e.mm.Read(0, e.va+5*e.ps)
								return err
							}
							return e.mm.Write(0, e.va+5*e.ps, 3)
						},
						After: func(t testing.TB, e *injEnv, n uint64, err error) {
							e.checked(t)
							if err == nil {
								_, err := e.mm.Read(1, e.va+5*e.ps)
								require.NoError(t, err)
								if n > 0 {
									fallbacks++
								}
								return
							}
							isENOMEM(t, n, err)
							_, mapped := e.mm.Translate(e.va + 5*e.ps)
							require.False(t, mapped, "page mapped after ENOMEM")
						},
					})
					if (folio > 0) != (fallbacks > 0) {
						t.Errorf("%d failures fell back to a one-page folio", fallbacks)
					}
				})
			}
		}
	}
}

// TestInjectPopulate fails each allocation of MAP_POPULATE: mmap still
// succeeds (Linux ignores mm_populate's result), the pages before the
// failure are mapped and the rest are not.
func TestInjectPopulate(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			proptest.EachAllocation(t, proptest.Injection[*injEnv]{
				Setup: func(t testing.TB) (*injEnv, *phys.Memory) { return injMachine(t, name).mark() },
				Op: func(e *injEnv) error {
					return e.mm.Mmap(e.va, 8*e.ps, rwProt, mmu.MapFlags{Populate: true})
				},
				After: func(t testing.TB, e *injEnv, n uint64, err error) {
					require.NoError(t, err)
					e.checked(t)
					require.Len(t, e.mm.VMAs(), 1)
					rss := e.mm.RSS(mmu.MMAnonPages)
					if n == 0 {
						require.Equal(t, int64(8), rss)
						return
					}
					require.Less(t, rss, int64(8))
					for i := uint64(0); i < 8; i++ {
						_, mapped := e.mm.Translate(e.va + i*e.ps)
						require.Equal(t, int64(i) < rss, mapped, "page %d", i)
					}
				},
			})
		})
	}
}

// TestInjectPin fails each allocation of pin_user_pages' faults: ENOMEM,
// the pins taken before the failure stay (as a short pin_user_pages count
// leaves them to its caller), and every pin is accounted for.
func TestInjectPin(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			proptest.EachAllocation(t, proptest.Injection[*injEnv]{
				Setup: func(t testing.TB) (*injEnv, *phys.Memory) {
					e := injMachine(t, name)
					require.NoError(t, e.mm.Mmap(e.va, 4*e.ps, rwProt, mmu.MapFlags{}))
					return e.mark()
				},
				Op: func(e *injEnv) error { return e.mm.Pin(e.va, 4*e.ps) },
				After: func(t testing.TB, e *injEnv, n uint64, err error) {
					e.checked(t)
					if n == 0 {
						return
					}
					isENOMEM(t, n, err)
					// Exactly the pages given their own frame before the
					// failure are pinned (a read fault maps the zero page
					// first, which pin then unshares).
					for i := uint64(0); i < 4; i++ {
						tr, mapped := e.mm.Translate(e.va + i*e.ps)
						if mapped && tr.PFN != e.m.ZeroPage() {
							require.NoError(t, e.mm.Unpin(e.va+i*e.ps, e.ps), "page %d", i)
						} else {
							require.Error(t, e.mm.Unpin(e.va+i*e.ps, e.ps), "page %d", i)
						}
					}
					e.checked(t)
				},
			})
		})
	}
}

// TestInjectTableGrowth fails each allocation of an s390 mmap high enough
// to need five table levels (crst_table_upgrade twice, then the VMA):
// ENOMEM, no mapping; a failed upgrade leaves the levels as they were.
func TestInjectTableGrowth(t *testing.T) {
	proptest.EachAllocation(t, proptest.Injection[*injEnv]{
		Kinds: []phys.Kind{phys.KindTable, phys.KindSlab},
		Setup: func(t testing.TB) (*injEnv, *phys.Memory) { return injMachine(t, "s390x").mark() },
		Op:    func(e *injEnv) error { return e.mm.Mmap(1<<53, e.ps, rwProt, mmu.MapFlags{}) },
		After: func(t testing.TB, e *injEnv, n uint64, err error) {
			e.checked(t)
			if n == 0 {
				require.Equal(t, 5, e.mm.PageTable().Levels())
				require.NoError(t, e.mm.Write(0, 1<<53, 1))
				return
			}
			isENOMEM(t, n, err)
			require.Empty(t, e.mm.VMAs())
			if n <= 2 {
				require.Equal(t, 3, e.mm.PageTable().Levels(), "a failed upgrade added levels")
			}
		},
	})
}

// TestPinNeedsReadPermission: pin_user_pages without FOLL_FORCE refuses a
// VMA without VM_READ (check_vma_flags) with EFAULT, faulting nothing in.
// Found by the property tests: pinning a PROT_NONE sparc64 mapping faulted
// its pages in with young PAGE_NONE entries, which sparc64 makes valid.
func TestPinNeedsReadPermission(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			e := injMachine(t, name)
			require.NoError(t, e.mm.Mmap(e.va, 4*e.ps, mmu.ProtNone, mmu.MapFlags{Shared: true}))
			e.mark()
			err := e.mm.Pin(e.va, 4*e.ps)
			require.ErrorIs(t, err, mmu.EFAULT)
			e.unchanged(t)
			e.checked(t)
		})
	}
}

// TestDestroyMMWithGrownTables: an s390 address space whose only mapping
// needed five table levels is torn down whole. Found by the property
// tests: exit left the old top table (now under entry 0 of the new top),
// which no VMA covers, so freeing the top failed with EINVAL half-way.
func TestDestroyMMWithGrownTables(t *testing.T) {
	e := injMachine(t, "s390x")
	tables := e.m.Memory().InUse(phys.KindTable)
	q, err := e.m.NewMM("q")
	require.NoError(t, err)
	require.NoError(t, q.Mmap(1<<53, e.ps, rwProt, mmu.MapFlags{}))
	require.NoError(t, q.Write(0, 1<<53, 5))
	require.Equal(t, 5, q.PageTable().Levels())
	require.NoError(t, e.m.DestroyMM(q))
	e.checked(t)
	require.Equal(t, tables, e.m.Memory().InUse(phys.KindTable), "table frames left behind")
}

// TestOutOfRangeArguments feeds out-of-range values to every exported
// function of the machine's public API on every arch: none may panic, each
// fails with the errno it documents (or reports nothing) and the state is
// as it was. The mm's kernel-internal helpers that take page-table pointers
// or folios (ZapRange, SplitHugePMD, CommitAnonPage, FolioPTEBatch, the
// rmap helpers...) are internal-contract primitives with documented
// preconditions (see ARCHITECTURE.md) and are left out.
func TestOutOfRangeArguments(t *testing.T) {
	const top = ^uint64(0) &^ 0xffff
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			e := injMachine(t, name)
			require.NoError(t, e.mm.Mmap(e.va, 4*e.ps, rwProt, mmu.MapFlags{}))
			require.NoError(t, e.mm.Write(0, e.va, 1))
			dead, err := e.m.NewMM("dead")
			require.NoError(t, err)
			require.NoError(t, e.m.DestroyMM(dead))
			k := e.m.Kernel()
			bogus := &mmu.VMA{Start: e.va + 64*e.ps, End: e.va + 65*e.ps}
			var growErr error // GrowFor does nothing where tables do not grow
			if e.m.Arch().Caps.GrowLevels {
				growErr = mmu.ENOMEM
			}
			cases := []struct {
				name string
				call func() error
				want error // nil: the call reports no error
			}{
				{"New without arch", func() error { _, err := mmu.New(mmu.Config{}); return err }, mmu.EINVAL},
				{"New negative cpus", func() error { _, err := mmu.New(mmu.Config{Arch: e.m.Arch(), CPUs: -1}); return err }, mmu.EINVAL},
				{"New too many cpus", func() error { _, err := mmu.New(mmu.Config{Arch: e.m.Arch(), CPUs: mmu.MaxCPUs + 1}); return err }, mmu.EINVAL},
				{"New bad TLB", func() error { _, err := mmu.New(mmu.Config{Arch: e.m.Arch(), TLBEntries: -1, TLBWays: 7}); return err }, mmu.EINVAL},
				{"NewMM empty name", func() error { _, err := e.m.NewMM(""); return err }, mmu.EINVAL},
				{"NewMM taken", func() error { _, err := e.m.NewMM("p"); return err }, mmu.EEXIST},
				{"Access bad cpu", func() error { _, err := e.mm.Access(-1, e.va, mmu.Read); return err }, mmu.EINVAL},
				{"Access cpu past the end", func() error { _, err := e.mm.Access(e.m.CPUs(), e.va, mmu.Read); return err }, mmu.EINVAL},
				{"Access bad kind", func() error { _, err := e.mm.Access(0, e.va, mmu.AccessKind(9)); return err }, mmu.EINVAL},
				{"Access top", func() error { _, err := e.mm.Access(0, top, mmu.Write); return err }, mmu.EFAULT},
				{"Access dead", func() error { _, err := dead.Access(0, e.va, mmu.Read); return err }, mmu.EINVAL},
				{"TryAccess bad kind", func() error { _, _, err := e.mm.TryAccess(0, e.va, mmu.AccessKind(9)); return err }, mmu.EINVAL},
				{"TryAccess bad cpu", func() error { _, _, err := e.mm.TryAccess(99, e.va, mmu.Read); return err }, mmu.EINVAL},
				{"HandleFault bad kind", func() error { return e.mm.HandleFault(e.va, mmu.AccessKind(9)) }, mmu.EINVAL},
				{"HandleFault top", func() error { return e.mm.HandleFault(top, mmu.Write) }, mmu.EFAULT},
				{"HandleFault dead", func() error { return dead.HandleFault(e.va, mmu.Write) }, mmu.EINVAL},
				{"HandleVMAFault nil", func() error { return e.mm.HandleVMAFault(nil) }, mmu.EINVAL},
				{"HandleVMAFault outside its VMA", func() error { return e.mm.HandleVMAFault(&mmu.Fault{VMA: bogus, Addr: top}) }, mmu.EINVAL},
				{"FaultLocked top", func() error { return e.mm.FaultLocked(top, mmu.Read) }, mmu.EFAULT},
				{"Read top", func() error { _, err := e.mm.Read(0, top); return err }, mmu.EFAULT},
				{"Write bad cpu", func() error { return e.mm.Write(7, e.va, 1) }, mmu.EINVAL},
				{"Mmap length 0", func() error { return e.mm.Mmap(e.va, 0, rwProt, mmu.MapFlags{}) }, mmu.EINVAL},
				{"Mmap unaligned", func() error { return e.mm.Mmap(e.va+1, e.ps, rwProt, mmu.MapFlags{}) }, mmu.EINVAL},
				{"Mmap wraps", func() error { return e.mm.Mmap(top, top, rwProt, mmu.MapFlags{}) }, mmu.ENOMEM},
				{"Mmap beyond user space", func() error { return e.mm.Mmap(e.m.Arch().User.End, e.ps, rwProt, mmu.MapFlags{}) }, mmu.ENOMEM},
				{"Mmap bad prot", func() error { return e.mm.Mmap(e.va+64*e.ps, e.ps, 0xff, mmu.MapFlags{}) }, mmu.EINVAL},
				{"Mmap bad folio", func() error {
					return e.mm.Mmap(e.va+64*e.ps, e.ps, rwProt, mmu.MapFlags{FolioSize: 1 << 63})
				}, mmu.EINVAL},
				{"Mmap unaligned offset", func() error {
					return e.mm.Mmap(e.va+64*e.ps, e.ps, rwProt, mmu.MapFlags{File: "f", Offset: 1})
				}, mmu.EINVAL},
				{"Mmap overlap", func() error { return e.mm.Mmap(e.va, e.ps, rwProt, mmu.MapFlags{}) }, mmu.EEXIST},
				{"Mmap dead", func() error { return dead.Mmap(e.va, e.ps, rwProt, mmu.MapFlags{}) }, mmu.EINVAL},
				{"Mmap init_mm", func() error { return k.Mmap(e.va, e.ps, rwProt, mmu.MapFlags{}) }, mmu.EINVAL},
				{"Munmap length 0", func() error { return e.mm.Munmap(e.va, 0) }, mmu.EINVAL},
				{"Munmap top", func() error { return e.mm.Munmap(top, top) }, mmu.EINVAL},
				{"Munmap dead", func() error { return dead.Munmap(e.va, e.ps) }, mmu.EINVAL},
				{"Munmap init_mm", func() error { return k.Munmap(e.va, e.ps) }, mmu.EINVAL},
				{"Mprotect bad prot", func() error { return e.mm.Mprotect(e.va, e.ps, 0xff) }, mmu.EINVAL},
				{"Mprotect unmapped", func() error { return e.mm.Mprotect(top, e.ps, mmu.ProtRead) }, mmu.ENOMEM},
				{"Mprotect wraps", func() error { return e.mm.Mprotect(top, top, mmu.ProtRead) }, mmu.ENOMEM},
				{"Mprotect dead", func() error { return dead.Mprotect(e.va, e.ps, mmu.ProtRead) }, mmu.EINVAL},
				{"Pin top", func() error { return e.mm.Pin(top, top) }, mmu.EINVAL},
				{"Pin unmapped", func() error { return e.mm.Pin(e.va+64*e.ps, e.ps) }, mmu.EFAULT},
				{"Pin init_mm", func() error { return k.Pin(e.va, e.ps) }, mmu.EINVAL},
				{"Unpin unpinned", func() error { return e.mm.Unpin(e.va, e.ps) }, mmu.EINVAL},
				{"Unpin top", func() error { return e.mm.Unpin(top, top) }, mmu.EINVAL},
				{"Unpin dead", func() error { return dead.Unpin(e.va, e.ps) }, mmu.EINVAL},
				{"GrowFor beyond user space", func() error { return e.mm.GrowFor(top, top) }, growErr},
				{"SplitVMA nil", func() error { _, err := e.mm.SplitVMA(nil, e.va); return err }, mmu.EINVAL},
				{"SplitVMA at its start", func() error { _, err := e.mm.SplitVMA(e.mm.VMAs()[0], e.va); return err }, mmu.EINVAL},
				{"InsertVMA nil", func() error { return e.mm.InsertVMA(nil) }, mmu.EINVAL},
				{"InsertVMA empty", func() error { return e.mm.InsertVMA(&mmu.VMA{Start: top, End: top}) }, mmu.EINVAL},
				{"InsertVMA overlap", func() error { return e.mm.InsertVMA(&mmu.VMA{Start: e.va, End: e.va + e.ps}) }, mmu.EEXIST},
				{"FreeDetached nil", func() error { return e.mm.FreeDetached([]*pgtable.Table{nil}) }, mmu.EINVAL},
				{"MoveHugePMDDeposit without deposit", func() error {
					_, err := e.mm.MoveHugePMDDeposit(pgtable.Ptr{}, pgtable.Ptr{}, true)
					return err
				}, mmu.EINVAL},
				{"DestroyMM nil", func() error { return e.m.DestroyMM(nil) }, mmu.EINVAL},
				{"DestroyMM twice", func() error { return e.m.DestroyMM(dead) }, mmu.EINVAL},
				{"DestroyMM init_mm", func() error { return e.m.DestroyMM(k) }, mmu.EINVAL},
				{"SetCPUs 0", func() error { return e.m.SetCPUs(0, 0, 0) }, mmu.EINVAL},
				{"SetCPUs too many", func() error { return e.m.SetCPUs(mmu.MaxCPUs+1, 0, 0) }, mmu.EINVAL},
				{"SetCPUs bad TLB", func() error { return e.m.SetCPUs(2, -1, 3) }, mmu.EINVAL},
				{"SetKnob unknown", func() error { return e.m.SetKnob("zz", "on") }, mmu.ErrUnknownKnob},
				{"SetKnob bad value", func() error { return e.m.SetKnob("spf", "zz") }, mmu.EINVAL},
				{"SetKnob negative limit", func() error { return e.m.SetKnob("mremap_latency_limit", "-1") }, mmu.EINVAL},
				{"Knobs.Set without arch", func() error { var kn mmu.Knobs; return kn.Set(nil, "thp", "never") }, mmu.EINVAL},
				{"KernelAccess bad kind", func() error { _, err := e.m.KernelAccess(0, top, mmu.AccessKind(9)); return err }, mmu.EINVAL},
				{"the rest", func() error {
					// Calls that report nothing: they must not panic, and
					// change nothing.
					_ = mmu.AccessAllowed(nil, mmu.Read)
					_ = mmu.AccessKind(9).String() + mmu.SPFMode(9).String() + mmu.SPFPTLModel(9).String()
					_ = mmu.Prot(0xff).String() + mmu.VMFlags(^uint32(0)).String()
					var nv *mmu.VMA
					_ = nv.String()
					_ = e.mm.RSS(99)
					e.mm.AddRSS(99, 5)
					e.mm.RemoveVMA(nil)
					e.mm.VMAStartWrite(nil)
					_ = e.mm.VMAWriteLocked(nil)
					e.mm.DepositTable(nil)
					e.mm.ChargeCountsTo(nil)
					e.mm.FinishGather(nil)
					e.m.AddHolder(nil)
					_, _ = e.mm.Translate(top)
					_, _ = e.mm.Content(top)
					_ = e.mm.FindVMA(top)
					_ = e.mm.VMAsIn(top, 0)
					_, _ = e.mm.Neighbours(top, 0)
					_, _ = e.m.MM("")
					return nil
				}, nil},
			}
			for _, c := range cases {
				e.mark()
				err := c.call()
				if c.want == nil {
					require.NoError(t, err, c.name)
				} else {
					require.ErrorIs(t, err, c.want, c.name)
				}
				e.checked(t)
				if after := proptest.Take(e.m); !e.before.Equal(&after) {
					t.Fatalf("%s changed the state:\n%s", c.name, cmp.Diff(e.before, after))
				}
			}
		})
	}
}

// TestAccessOutsideSpace reads and writes addresses past the end of the
// page table's space whose index bits alias a mapped page (va plus a
// power of two above every table's reach): the MMU must refuse them
// (EFAULT), not walk onto the aliased entries and cache a translation the
// tables do not give. Found by FuzzRun.
func TestAccessOutsideSpace(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			e := injMachine(t, name)
			require.NoError(t, e.mm.Mmap(e.va, 4*e.ps, rwProt, mmu.MapFlags{}))
			require.NoError(t, e.mm.Write(0, e.va, 7))
			space := e.mm.PageTable().Space()
			for shift := uint(32); shift < 64; shift++ {
				alias := e.va + 1<<shift
				if space.Contains(alias, 1) {
					continue // a real address of this space, not an alias
				}
				_, err := e.mm.Read(0, alias)
				require.ErrorIs(t, err, mmu.EFAULT, "read %#x", alias)
				require.ErrorIs(t, e.mm.Write(1, alias, 1), mmu.EFAULT, "write %#x", alias)
				_, ok, err := e.mm.TryAccess(0, alias, mmu.Read)
				require.NoError(t, err)
				require.False(t, ok, "TryAccess %#x", alias)
			}
			got, err := e.mm.Read(0, e.va)
			require.NoError(t, err)
			require.Equal(t, uint64(7), got)
			e.checked(t)
		})
	}
}

// TestUnmappedAreaTopDown finds the highest free range below high, around
// VMAs above, across and inside the window.
func TestUnmappedAreaTopDown(t *testing.T) {
	e := injMachine(t, "x86_64")
	ps := e.ps
	// VMAs at pages [10,12), [20,30) and [40,41) above e.va.
	for _, r := range [][2]uint64{{10, 12}, {20, 30}, {40, 41}} {
		require.NoError(t, e.mm.Mmap(e.va+r[0]*ps, (r[1]-r[0])*ps, rwProt, mmu.MapFlags{}))
	}
	page := func(n uint64) uint64 { return e.va + n*ps }
	for _, c := range []struct {
		name            string
		length          uint64
		low, high, want uint64
		ok              bool
	}{
		{"gap at the top", 2 * ps, page(0), page(50), page(48), true},
		{"high inside a VMA", 2 * ps, page(0), page(25), page(18), true},
		{"skips the gaps too small", 9 * ps, page(0), page(38), page(1), true},
		{"exact fit between VMAs", 8 * ps, page(0), page(20), page(12), true},
		{"nothing fits above low", 9 * ps, page(12), page(38), 0, false},
		{"empty window", ps, page(30), page(29), 0, false},
		{"window inside one VMA", ps, page(21), page(29), 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := e.mm.UnmappedAreaTopDown(c.length, c.low, c.high)
			require.Equal(t, c.ok, ok)
			require.Equal(t, c.want, got)
		})
	}
}
