package spf_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/internal/proptest"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/spf"
)

// spfEnv is one page-fault test run on a small machine.
type spfEnv struct {
	m  *mmu.Machine
	mm *mmu.MM
	va uint64
	ps uint64
	// folios are the folio frames in use before the run.
	folios uint64
}

func spfSetup(t testing.TB, name, mode string, pages uint64) *spfEnv {
	t.Helper()
	a, err := archs.ByName(name)
	require.NoError(t, err)
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 256 << 20, CPUs: 3, Seed: 3})
	require.NoError(t, err)
	require.NoError(t, m.SetKnob("spf", mode))
	mm, err := m.NewMM("p")
	require.NoError(t, err)
	e := &spfEnv{m: m, mm: mm, va: 0x8000_0000, ps: a.PageSize()}
	require.NoError(t, mm.Mmap(e.va, pages*e.ps, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}))
	return e
}

// TestInjectPFT fails each allocation of a page-fault test (tables and
// pages of the faults, speculative or locked, and of the writer's
// mmap/munmap) in every mode: the run stops with an error wrapping ENOMEM
// (VM_FAULT_OOM), except that in seq mode a speculative fault whose page
// cannot be allocated aborts to the locked fault, which allocates again
// (the model falls back on every abort; Michel Lespinasse's v2 returns
// VM_FAULT_OOM from the speculative do_anonymous_page). No prepared page
// is leaked, every invariant holds, and
// every page mapped holds the value written, or zero when the run stopped
// between another thread's fault and its store.
func TestInjectPFT(t *testing.T) {
	const pages = 8
	for _, name := range []string{"x86_64", "arm64", "s390x"} {
		for _, mode := range []string{"off", "seq", "vma"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				ooms := 0
				n := proptest.EachAllocation(t, proptest.Injection[*spfEnv]{
					Setup: func(t testing.TB) (*spfEnv, *phys.Memory) {
						e := spfSetup(t, name, mode, pages)
						e.folios = e.m.Memory().InUse(phys.KindFolio)
						return e, e.m.Memory()
					},
					Op: func(e *spfEnv) error {
						_, err := spf.PFT(e.mm, spf.PFTConfig{Threads: 2, Addr: e.va, Len: pages * e.ps, Writer: 2},
							spf.Options{FromKnobs: true})
						return err
					},
					After: func(t testing.TB, e *spfEnv, n uint64, err error) {
						require.NoError(t, e.m.Check())
						switch {
						case errors.Is(err, mmu.ENOMEM):
							ooms++
						case n > 0 && (err != nil || mode != "seq"):
							t.Fatalf("allocation %d failed: got %v, want ENOMEM", n, err)
						}
						mapped := uint64(0)
						for a := e.va; a < e.va+pages*e.ps; a += e.ps {
							if tr, ok := e.mm.Translate(a); ok && tr.PFN != e.m.ZeroPage() {
								mapped++
								v, ok := e.mm.Content(a)
								require.True(t, ok)
								if v != a {
									require.Zero(t, v, "page %#x", a)
								}
							}
						}
						require.Equal(t, e.folios+mapped, e.m.Memory().InUse(phys.KindFolio), "folio frames (prepared pages leaked?)")
					},
				})
				if mode != "seq" && uint64(ooms) != n || ooms == 0 {
					t.Errorf("%d of %d failures gave ENOMEM", ooms, n)
				}
			})
		}
	}
}

// TestSpeculativeFaultNeedsAccessFlags: a write through a present,
// writable but clean PTE (or a read of an old one) on an arch whose MMU
// does not set dirty and young itself (s390, sparc64, UML) still faults
// until the locked path updates the entry. Found by the property tests:
// the speculative path took such a fault for a spurious one and returned,
// so the access faulted again until it gave up with EFAULT.
func TestSpeculativeFaultNeedsAccessFlags(t *testing.T) {
	for _, name := range archs.Names() {
		for _, mode := range []string{"off", "seq", "vma"} {
			t.Run(fmt.Sprintf("%s/%s", name, mode), func(t *testing.T) {
				e := spfSetup(t, name, mode, 30)
				// Pinning unshares each page into an exclusive, read-only
				// PTE; mprotect then makes them writable and clean
				// (can_change_pte_writable).
				require.NoError(t, e.mm.Pin(e.va+21*e.ps, 9*e.ps))
				require.NoError(t, e.mm.Mprotect(e.va+12*e.ps, 16*e.ps, mmu.ProtRead|mmu.ProtWrite|mmu.ProtExec))
				_, err := spf.PFT(e.mm, spf.PFTConfig{Threads: 2, Addr: e.va + 12*e.ps, Len: 18 * e.ps}, spf.Options{FromKnobs: true})
				require.NoError(t, err)
				require.NoError(t, e.m.Check())
				for a := e.va + 12*e.ps; a < e.va+30*e.ps; a += e.ps {
					v, _ := e.mm.Content(a)
					require.Equal(t, a, v)
				}
			})
		}
	}
}
