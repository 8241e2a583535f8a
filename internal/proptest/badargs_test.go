package proptest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/contpte"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/spf"
	"github.com/ptsim/ptsim/spf/sched"
	"github.com/ptsim/ptsim/tlb"
	"github.com/ptsim/ptsim/vmemmap"
)

// errAny stands for "some error": the case only requires that the call
// fails.
var errAny = errors.New("any error")

// TestBadArgumentsAcrossPackages feeds out-of-range and missing arguments
// to the exported functions of the feature packages (mremap, fork,
// vmemmap, spf and its scheduler, contpte, tlb, cost), on every arch. None
// may panic; each call that reports errors fails as documented; and the
// machine's invariant checker is clean afterwards, so a refused call left
// the model intact. (The mmu's own system calls are covered by
// mmu.TestOutOfRangeArguments, pgtable's primitives by
// pgtable.TestBadPointers.)
func TestBadArgumentsAcrossPackages(t *testing.T) {
	const top = ^uint64(0) &^ 0xffff
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			a, err := archs.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 256 << 20, CPUs: 2})
			if err != nil {
				t.Fatal(err)
			}
			mm, err := m.NewMM("p")
			if err != nil {
				t.Fatal(err)
			}
			ps := a.PageSize()
			va := uint64(0x4000_0000)
			if err := mm.Mmap(va, 16*ps, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
				t.Fatal(err)
			}
			if err := mm.Write(0, va, 1); err != nil {
				t.Fatal(err)
			}
			dead, err := m.NewMM("dead")
			if err != nil {
				t.Fatal(err)
			}
			if err := m.DestroyMM(dead); err != nil {
				t.Fatal(err)
			}
			h := vmemmap.Of(m)
			tl := m.TLB()
			var huge uint64 = 1 << 62 // no arch has such a size
			if len(a.Caps.HugeSizes) > 0 {
				huge = a.Caps.HugeSizes[0]
			}
			pool, poolErr := h.Pool(huge)
			stranger := phys.Folio{PFN: 1 << 40}
			withPool := func(f func(p *vmemmap.Pool) error) func() error {
				return func() error {
					if poolErr != nil {
						return poolErr // the arch has no hugetlb pages
					}
					return f(pool)
				}
			}
			cases := []struct {
				name string
				call func() error
				want error // nil: no error; errAny: some error
			}{
				{"Mremap nil mm", func() error { _, err := mremap.Mremap(nil, va, ps, ps, 0, 0); return err }, mmu.EINVAL},
				{"Mremap dead mm", func() error { _, err := mremap.Mremap(dead, va, ps, ps, mremap.MayMove, 0); return err }, mmu.EINVAL},
				{"Mremap init_mm", func() error { _, err := mremap.Mremap(m.Kernel(), va, ps, ps, mremap.MayMove, 0); return err }, mmu.EINVAL},
				{"Mremap unknown flags", func() error { _, err := mremap.Mremap(mm, va, ps, ps, 0xff, 0); return err }, mmu.EINVAL},
				{"Mremap unaligned", func() error { _, err := mremap.Mremap(mm, va+1, ps, ps, 0, 0); return err }, mmu.EINVAL},
				{"Mremap wrapping lengths", func() error { _, err := mremap.Mremap(mm, top, top, top, mremap.MayMove, 0); return err }, errAny},
				{"Mremap fixed onto itself", func() error {
					_, err := mremap.Mremap(mm, va, ps, ps, mremap.MayMove|mremap.Fixed, va)
					return err
				}, mmu.EINVAL},
				{"Mremap huge growth", func() error { _, err := mremap.Mremap(mm, va, 16*ps, top, mremap.MayMove, 0); return err }, errAny},
				{"MovePageTables nil move", func() error {
					if n := mremap.MovePageTables(mm, nil); n != 0 {
						return fmt.Errorf("moved %d", n)
					}
					return nil
				}, nil},
				{"MovePageTables empty move", func() error {
					if n := mremap.MovePageTables(mm, &mremap.Move{}); n != 0 {
						return fmt.Errorf("moved %d", n)
					}
					return nil
				}, nil},
				{"Fork nil", func() error { _, err := fork.Fork(nil, "c"); return err }, mmu.EINVAL},
				{"Fork dead", func() error { _, err := fork.Fork(dead, "c"); return err }, mmu.EINVAL},
				{"Fork init_mm", func() error { _, err := fork.Fork(m.Kernel(), "c"); return err }, mmu.EINVAL},
				{"Fork empty name", func() error { _, err := fork.Fork(mm, ""); return err }, mmu.EINVAL},
				{"Fork taken name", func() error { _, err := fork.Fork(mm, "p"); return err }, mmu.EEXIST},
				{"hugetlb nil machine", func() error { _, err := vmemmap.Of(nil).Pool(huge); return err }, mmu.EINVAL},
				{"hugetlb size 0", func() error { _, err := h.Pool(0); return err }, mmu.EINVAL},
				{"hugetlb odd size", func() error { _, err := h.Pool(3 << 20); return err }, mmu.EINVAL},
				{"pool alloc negative", withPool(func(p *vmemmap.Pool) error { _, err := p.Alloc(-5); return err }), mmu.EINVAL},
				{"pool free negative", withPool(func(p *vmemmap.Pool) error { _, err := p.Free(-1); return err }), mmu.EINVAL},
				{"pool alloc past memory", withPool(func(p *vmemmap.Pool) error { _, err := p.Alloc(1 << 40); return err }), errAny},
				{"pool free more than held", withPool(func(p *vmemmap.Pool) error { _, err := p.Free(1 << 40); return err }), errAny},
				{"optimize a stranger", withPool(func(p *vmemmap.Pool) error { return p.OptimizeFolio(stranger) }), mmu.EINVAL},
				{"optimize strangers", withPool(func(p *vmemmap.Pool) error { return p.OptimizeFolios([]phys.Folio{stranger}) }), mmu.EINVAL},
				{"restore a stranger", withPool(func(p *vmemmap.Pool) error { return p.RestoreFolio(stranger) }), mmu.EINVAL},
				{"restore strangers", withPool(func(p *vmemmap.Pool) error { _, err := p.RestoreFolios([]phys.Folio{{}, {}}); return err }), mmu.EINVAL},
				{"pft nil mm", func() error { _, err := spf.PFT(nil, spf.PFTConfig{}, spf.Options{}); return err }, mmu.EINVAL},
				{"pft dead mm", func() error {
					_, err := spf.PFT(dead, spf.PFTConfig{Threads: 1, Addr: va, Len: ps}, spf.Options{})
					return err
				}, mmu.EINVAL},
				{"pft init_mm", func() error {
					_, err := spf.PFT(m.Kernel(), spf.PFTConfig{Threads: 1, Addr: va, Len: ps}, spf.Options{})
					return err
				}, mmu.EINVAL},
				{"pft too many threads", func() error {
					_, err := spf.PFT(mm, spf.PFTConfig{Threads: 1 << 40, Addr: va, Len: ps}, spf.Options{})
					return err
				}, mmu.EINVAL},
				{"pft wrapping range", func() error {
					_, err := spf.PFT(mm, spf.PFTConfig{Threads: 1, Addr: top, Len: top}, spf.Options{})
					return err
				}, mmu.EINVAL},
				{"pft negative writer", func() error {
					_, err := spf.PFT(mm, spf.PFTConfig{Threads: 1, Addr: va, Len: ps, Writer: -1}, spf.Options{})
					return err
				}, mmu.EINVAL},
				{"pft bad mode", func() error {
					_, err := spf.PFT(mm, spf.PFTConfig{Threads: 1, Addr: va, Len: ps}, spf.Options{Mode: 9})
					return err
				}, mmu.EINVAL},
				{"pft writer range wraps", func() error {
					_, err := spf.PFT(mm, spf.PFTConfig{Threads: 1, Addr: va, Len: ps, Writer: 1, WriterAddr: top, WriterLen: top}, spf.Options{})
					return err
				}, errAny},
				{"mapfault nil mm", func() error { _, err := spf.MapFault(nil, spf.MapFaultConfig{}, spf.Options{}); return err }, mmu.EINVAL},
				{"mapfault negative sizes", func() error {
					_, err := spf.MapFault(mm, spf.MapFaultConfig{Threads: -1, VMAs: -1, Pages: -1, Top: top}, spf.Options{})
					return err
				}, mmu.EINVAL},
				{"spf.New nil mm", func() error { _, err := spf.New(nil, spf.Options{}); return err }, mmu.EINVAL},
				{"spf thread on a bad cpu", func() error {
					s, err := spf.New(mm, spf.Options{})
					if err != nil {
						return err
					}
					return s.Go("x", 99, func(*spf.Thread) {})
				}, mmu.EINVAL},
				{"spf thread without a body", func() error {
					s, err := spf.New(mm, spf.Options{})
					if err != nil {
						return err
					}
					return s.Go("x", 0, nil)
				}, mmu.EINVAL},
				{"spf thread with bad calls", func() error {
					s, err := spf.New(mm, spf.Options{})
					if err != nil {
						return err
					}
					var errs []error
					if err := s.Go("x", 0, func(th *spf.Thread) {
						errs = append(errs, th.Write(top, 1))
						_, err := th.Read(top)
						errs = append(errs, err,
							th.Mmap(top, top, 0xff, mmu.MapFlags{}),
							th.Munmap(top, top))
					}); err != nil {
						return err
					}
					if err := s.Run(); err != nil {
						return fmt.Errorf("run: %v", err)
					}
					for i, e := range errs {
						if e == nil {
							return fmt.Errorf("bad call %d succeeded", i)
						}
					}
					return nil
				}, nil},
				{"scheduler thread without a body", func() error {
					s := sched.New(sched.Config{})
					s.Go("x", 0, nil)
					return s.Run()
				}, nil},
				{"contpte negative block", func() error { _, err := contpte.New(contpte.Config{ContPTEs: -1}); return err }, errAny},
				{"contpte huge block", func() error { _, err := contpte.New(contpte.Config{ContPTEs: 1 << 40}); return err }, errAny},
				{"tlb bad config", func() error { _, err := tlb.New(tlb.Config{CPUs: -1, Entries: -1, Ways: 3}); return err }, errAny},
				{"tlb cpu out of range", func() error {
					if tl.CPU(99) != nil || tl.CPU(-1) != nil {
						return errors.New("a CPU that is not there")
					}
					return nil
				}, nil},
				{"tlb local cpu", func() error { return errors.Join(tl.SetLocalCPU(-1), tl.SetLocalCPU(99)) }, mmu.EINVAL},
				{"tlb flushes of no context", func() error {
					tl.FlushTLBMM(nil)
					tl.FlushTLBRange(nil, 0, top)
					tl.FlushTLBPage(nil, 0)
					return nil
				}, nil},
				{"tlb reversed ranges", func() error {
					tl.FlushTLBRange(mm.TLBContext(), top, 0)
					tl.FlushTLBKernelRange(top, 0)
					return nil
				}, nil},
				{"tlb gather of no context", func() error { tl.NewGather(nil, false).Finish(); return nil }, nil},
				{"tlb gather misuse", func() error {
					g := tl.NewGather(mm.TLBContext(), false)
					g.AddRange(top, 0, 99)
					g.RemoveTable(nil, nil)
					g.Finish()
					g.Finish()
					return nil
				}, nil},
				{"tlb release of no context", func() error { tl.ReleaseContext(nil); return nil }, nil},
				{"cost unknown event", func() error {
					var mt cost.Meter
					mt.Add(cost.Event(250), 1)
					mt.Note(cost.Event(250), 1, 0, 0)
					if mt.Count(cost.Event(250)) != 0 || mt.Counts() != (cost.Counts{}) {
						return errors.New("counted an event that is not one")
					}
					return nil
				}, nil},
				{"arch by empty name", func() error { _, err := archs.ByName(""); return err }, errAny},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					var err error
					func() {
						defer func() {
							if r := recover(); r != nil {
								t.Fatalf("panic: %v", r)
							}
						}()
						err = c.call()
					}()
					switch {
					case c.want == nil && err != nil:
						t.Errorf("unexpected error: %v", err)
					case c.want == errAny && err == nil, c.want != nil && c.want != errAny && !errors.Is(err, c.want):
						t.Errorf("got %v, want %v", err, c.want)
					}
					if err := m.Check(); err != nil {
						t.Fatalf("model not intact: %v", err)
					}
				})
			}
		})
	}
}
