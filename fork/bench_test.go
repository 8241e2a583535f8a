package fork_test

import (
	"runtime"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// BenchmarkFork1GiB measures P4 of TARGETS.md: the wall-clock time of one
// fork of 1 GiB of x86_64 anonymous memory populated with 4 KiB pages or
// 64 KiB folios (fork alone: populating, tearing the child down and
// restoring the parent run outside the timer).
func BenchmarkFork1GiB(b *testing.B) {
	for _, bc := range []struct {
		name  string
		folio uint64
	}{
		{"4k", 4 << 10},
		{"64k", 64 << 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := archs.ByName("x86_64")
			if err != nil {
				b.Fatal(err)
			}
			m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 4 << 30, NoAudit: true})
			if err != nil {
				b.Fatal(err)
			}
			p, err := m.NewMM("parent")
			if err != nil {
				b.Fatal(err)
			}
			const va, size = 0x10_0000_0000, 1 << 30
			if err := p.Mmap(va, size, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true, FolioSize: bc.folio}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := fork.Fork(p, "child")
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := m.DestroyMM(c); err != nil {
					b.Fatal(err)
				}
				restoreWritable(m, p, va, size)
				runtime.GC()
				b.StartTimer()
			}
		})
	}
}

// restoreWritable puts the parent back in its state before the fork, so
// that every iteration measures a first fork: after the child is gone,
// Linux's parent would regain exclusive, writable pages on its next
// writes; here the PTEs are made writable and the pages exclusive
// directly, and the parent's TLB flushed.
func restoreWritable(m *mmu.Machine, p *mmu.MM, va, size uint64) {
	pt := p.PageTable()
	fm := pt.Format()
	mem := m.Memory()
	pt.Leaves(va, va+size, func(l pgtable.Leaf) bool {
		pt.RawSet(l.Addr, l.Ptr, fm.MkWrite(l.Entry, pgtable.PTE))
		mem.Page(fm.PFN(l.Entry, pgtable.PTE)).Set(phys.FlagAnonExclusive)
		return true
	})
	m.TLB().FlushTLBMM(p.TLBContext())
}
