package fork_test

import (
	"errors"
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

// forkEnv is one fault-injection run of a fork.
type forkEnv struct {
	m      *mmu.Machine
	p      *mmu.MM
	va, ps uint64
	// before is the state before the fork, used the frames in use.
	before proptest.Snapshot
	used   [3]uint64
	// vals are the values written, by address.
	vals map[uint64]uint64
}

// forkSetup builds a parent with every kind of memory fork treats apart:
// private anonymous pages of one page and in large folios (batched), a
// THP shared whole (where the arch has PMD THPs of at most 32 MiB), a
// pinned page (copied at once), a shared mapping, a private file mapping
// and a wipe-on-fork one.
func forkSetup(t testing.TB, name string, knobs ...string) *forkEnv {
	t.Helper()
	a, err := archs.ByName(name)
	require.NoError(t, err)
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 512 << 20, CPUs: 2})
	require.NoError(t, err)
	for i := 0; i+1 < len(knobs); i += 2 {
		require.NoError(t, m.SetKnob(knobs[i], knobs[i+1]))
	}
	p, err := m.NewMM("parent")
	require.NoError(t, err)
	e := &forkEnv{m: m, p: p, va: base(m), ps: a.PageSize(), vals: map[uint64]uint64{}}
	ps, pmd := e.ps, a.Geometry.Size(pgtable.PMD)
	rw := mmu.ProtRead | mmu.ProtWrite
	maps := []struct {
		off, size uint64
		fl        mmu.MapFlags
	}{
		{0, 8 * ps, mmu.MapFlags{}},
		{pmd, 32 * ps, mmu.MapFlags{FolioSize: 16 * ps}},
		{2 * pmd, 4 * ps, mmu.MapFlags{Shared: true}},
		{3 * pmd, 4 * ps, mmu.MapFlags{File: "f"}},
		{4 * pmd, 4 * ps, mmu.MapFlags{WipeOnFork: true}},
	}
	if a.Caps.THPLevels[pgtable.PMD] && pmd <= 32<<20 {
		maps = append(maps, struct {
			off, size uint64
			fl        mmu.MapFlags
		}{6 * pmd, pmd, mmu.MapFlags{FolioSize: pmd}})
	}
	for i, mp := range maps {
		require.NoError(t, p.Mmap(e.va+mp.off, mp.size, rw, mp.fl))
		for a := e.va + mp.off; a < e.va+mp.off+mp.size; a += 3 * ps {
			v := uint64(i)<<32 | a>>12
			require.NoError(t, p.Write(0, a, v))
			e.vals[a] = v
		}
	}
	require.NoError(t, p.Pin(e.va+3*ps, ps))
	return e
}

func (e *forkEnv) mark() (*forkEnv, *phys.Memory) {
	e.before = proptest.Take(e.m)
	for k := range e.used {
		e.used[k] = e.m.Memory().InUse(phys.Kind(k))
	}
	return e, e.m.Memory()
}

// TestInjectFork fails each allocation of a fork (the child's root,
// tables, VMAs, pinned pages' copies, THP deposits), batched and not:
// ENOMEM, no child, no frame leaked, every invariant kept, and the parent
// maps the same pages with the same contents. It keeps what the copy did
// to it before the failure, as in Linux: the write-protection of its PTEs
// (__copy_present_ptes) and the loss of PageAnonExclusive on the pages it
// shared (folio_try_dup_anon_rmap); a later write fault reuses a page
// nobody else maps.
func TestInjectFork(t *testing.T) {
	for _, name := range archs.Names() {
		for _, batch := range []string{"on", "off"} {
			t.Run(name+"/fork_batch="+batch, func(t *testing.T) {
				proptest.EachAllocation(t, proptest.Injection[*forkEnv]{
					Kinds: []phys.Kind{phys.KindTable, phys.KindFolio, phys.KindKernel, phys.KindSlab},
					Setup: func(t testing.TB) (*forkEnv, *phys.Memory) {
						return forkSetup(t, name, "fork_batch", batch).mark()
					},
					Op: func(e *forkEnv) error { _, err := fork.Fork(e.p, "child"); return err },
					After: func(t testing.TB, e *forkEnv, n uint64, err error) {
						if cerr := e.m.Check(); cerr != nil {
							t.Fatalf("invariants: %v", cerr)
						}
						if n == 0 {
							require.NoError(t, err)
							c, _ := e.m.MM("child")
							for a, v := range e.vals {
								got, ok := c.Content(a)
								if c.FindVMA(a).Flags&mmu.VMWipeOnFork != 0 {
									v = 0
								}
								require.True(t, ok)
								require.Equal(t, v, got, "child %#x", a)
							}
							return
						}
						if !errors.Is(err, mmu.ENOMEM) {
							t.Fatalf("allocation %d failed: got %v, want ENOMEM", n, err)
						}
						_, ok := e.m.MM("child")
						require.False(t, ok, "a child exists after ENOMEM")
						for k := range e.used {
							require.Equal(t, e.used[k], e.m.Memory().InUse(phys.Kind(k)), "%s frames", phys.Kind(k))
						}
						after := proptest.Take(e.m)
						for _, s := range []*proptest.Snapshot{&e.before, &after} {
							for i := range s.MMs[0].Leaves {
								l := &s.MMs[0].Leaves[i]
								l.Bits.Write, l.Raw = false, 0
							}
							for i := range s.Folios {
								s.Folios[i].Exclusive = nil
							}
						}
						if !reflect.DeepEqual(e.before, after) {
							t.Fatalf("the parent changed beyond write-protection (-before +after):\n%s", cmp.Diff(e.before, after))
						}
					},
				})
			})
		}
	}
}

// TestForkKeepsTableLevels: a child has as many table levels as its
// parent (dup_mm copies s390's asce_limit). Found by the property tests: a
// parent mapped above 4 TiB forked into a three-level child, whose copy
// wrapped its addresses and mapped the page at 0.
func TestForkKeepsTableLevels(t *testing.T) {
	e := forkSetup(t, "s390x")
	require.NoError(t, e.p.Mmap(1<<53, e.ps, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	require.NoError(t, e.p.Write(0, 1<<53, 77))
	c, err := fork.Fork(e.p, "child")
	require.NoError(t, err)
	require.Equal(t, e.p.PageTable().Levels(), c.PageTable().Levels())
	v, err := c.Read(1, 1<<53)
	require.NoError(t, err)
	require.Equal(t, uint64(77), v)
	_, low := c.Translate(0)
	require.False(t, low, "the child maps address 0")
	require.NoError(t, e.m.Check())
	require.NoError(t, e.m.DestroyMM(c))
	require.NoError(t, e.m.Check())
}
