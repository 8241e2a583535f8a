package contpte_test

import (
	"testing"

	"github.com/ptsim/ptsim/arch/arm64"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// genericEnv is newEnv on an arm64 descriptor without NewPTEOps: every
// address space runs pgtable.GenericOps.
func genericEnv(t *testing.T, g arm64.Granule) *env {
	t.Helper()
	a := arm64.New(g)
	a.NewPTEOps = nil
	m, err := mmu.New(mmu.Config{Arch: a, CPUs: 4, MemorySize: 4 << 30, Seed: 7})
	noErr(t, err)
	mm, err := m.NewMM("p")
	noErr(t, err)
	e := &env{t: t, m: m, mm: mm, pt: mm.PageTable(), f: &m.Arch().Format}
	e.ps = m.Arch().PageSize()
	e.n = m.Arch().Caps.ContPTEs
	e.block = uint64(e.n) * e.ps
	return e
}

// TestOffIsGeneric: with contpte off the Ops count exactly what the
// generic operations count and leave the same tables, through faults,
// loads and stores, mprotect, munmap and the public functions core code
// calls directly.
func TestOffIsGeneric(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name, func(t *testing.T) {
			off := newEnv(t, g.g, "contpte", "off")
			gen := genericEnv(t, g.g)
			_, isGeneric := gen.pt.Ops().(pgtable.GenericOps)
			isTrue(t, isGeneric, "generic machine runs %T", gen.pt.Ops())
			n := off.n
			steps := []struct {
				name string
				fn   func(e *env)
			}{
				{"map", func(e *env) {
					noErr(t, e.mm.Mmap(base, 2*e.block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: e.block}))
					noErr(t, e.mm.Mmap(base+2*e.block, 2*e.block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{File: "f", Shared: true, FolioSize: e.block}))
				}},
				{"stores", func(e *env) {
					for i := 0; i < 4*n; i++ {
						noErr(t, e.mm.Write(i%4, e.page(base, i), uint64(i)))
					}
				}},
				{"loads", func(e *env) {
					for i := 0; i < 4*n; i += 3 {
						_, err := e.mm.Read((i+1)%4, e.page(base, i))
						noErr(t, err)
					}
				}},
				{"mprotect r, rw", func(e *env) {
					noErr(t, e.mm.Mprotect(e.page(base, n-1), e.ps, mmu.ProtRead))
					noErr(t, e.mm.Mprotect(e.page(base, n-1), e.ps, mmu.ProtRead|mmu.ProtWrite))
				}},
				{"young", func(e *env) {
					for i := 0; i < 2*n; i += 5 {
						a := e.page(base, i)
						e.pt.PtepTestAndClearYoung(a, e.ptr(a))
					}
					a := e.page(base, n)
					e.pt.Ops().TestAndClearYoung(e.pt, a, e.ptr(a), n)
				}},
				{"wrprotect + flush", func(e *env) {
					e.pt.WrprotectPTEs(base, e.ptr(base), n+n/2)
					e.pt.PtepSetWrprotect(e.page(base, 2*n-1), e.ptr(e.page(base, 2*n-1)))
					e.flushMM()
				}},
				{"reuse faults", func(e *env) {
					for i := 0; i < 2*n; i += 7 {
						noErr(t, e.mm.Write(2, e.page(base, i), 5))
					}
				}},
				{"ptep_get, lockless, hint", func(e *env) {
					for i := 0; i < 4*n; i++ {
						a := e.page(base, i)
						p := e.ptr(a)
						r := e.pt.PtepGet(a, p)
						e.pt.PtepGetLockless(a, p)
						e.pt.PteBatchHint(p, r)
					}
				}},
				{"munmap partial", func(e *env) { noErr(t, e.mm.Munmap(e.page(base, n/2), 2*e.block)) }},
				{"munmap all", func(e *env) { noErr(t, e.mm.Munmap(base, 4*e.block)) }},
			}
			for _, s := range steps {
				s.fn(off)
				s.fn(gen)
				off.check(s.name)
				gen.check(s.name)
				equal(t, gen.m.Counts(), off.m.Counts(), "counts after %s", s.name)
				zero(t, off.m.Counts()[cost.ContpteConverts])
			}
		})
	}
}

// TestSwitchOffUnderFoldedBlocks: a script may switch contpte off while
// blocks are folded (Linux cannot: it is a Kconfig option). Those blocks
// are still unfolded and gathered when touched; nothing new folds.
func TestSwitchOffUnderFoldedBlocks(t *testing.T) {
	for _, g := range granules {
		t.Run(g.name, func(t *testing.T) {
			e := newEnv(t, g.g)
			e.anonBlocks(2)
			noErr(t, e.m.SetKnob("contpte", "off"))
			// The second block is still folded: ptep_get gathers.
			a := e.page(base+e.block, 3)
			d := e.delta(func() { e.pt.PtepGet(a, e.ptr(a)) })
			isTrue(t, d[cost.EntryReads] > 1, "gathered over the block")
			last := e.page(base, e.n-1)
			d = e.delta(func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead)) })
			e.check("mprotect r")
			equal(t, convertCounts{unfolds: 1, converts: 1}, converts(d), "a leftover block unfolds")
			d = e.delta(func() { noErr(t, e.mm.Mprotect(last, e.ps, mmu.ProtRead|mmu.ProtWrite)) })
			e.check("mprotect rw")
			equal(t, convertCounts{}, converts(d), "no fold with contpte off")
			isTrue(t, e.folded(base+e.block))
			d = e.delta(func() { noErr(t, e.mm.Munmap(e.page(base+e.block, 1), e.ps)) })
			e.check("munmap")
			equal(t, convertCounts{unfolds: 1, converts: 1}, converts(d))
			// New large-folio faults map without the contiguous bit.
			noErr(t, e.mm.Mmap(base+4*e.block, e.block, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{FolioSize: e.block}))
			noErr(t, e.mm.Write(0, base+4*e.block, 1))
			e.check("fault")
			equal(t, blockState{young: e.n, dirty: e.n, write: e.n, present: e.n}, e.state(base+4*e.block))
		})
	}
}
