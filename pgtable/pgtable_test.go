package pgtable_test

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

func newX86(t testing.TB) (*pgtable.PageTable, *phys.Memory) {
	t.Helper()
	a := x86.New(x86.FourLevel)
	mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 18})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem,
		Meter: &cost.Meter{Name: "test"}, Space: a.User})
	if err != nil {
		t.Fatal(err)
	}
	return pt, mem
}

func TestMapLookupUnmap(t *testing.T) {
	pt, mem := newX86(t)
	const va = 0x7f00_0000_0000
	if err := pt.Map(va, 16<<12, 0x1000, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 16; i++ {
		tr, ok := pt.Lookup(va + i<<12 + 0x123)
		if !ok || tr.PFN != phys.PFN(0x1000+i) || tr.Level != pgtable.PTE {
			t.Fatalf("page %d: %+v %v", i, tr, ok)
		}
		if !pt.Format().Write(tr.Entry, pgtable.PTE) {
			t.Fatalf("page %d not writable: %#x", i, tr.Entry)
		}
	}
	if got := pt.Tables(); got != 4 {
		t.Fatalf("tables = %d, want 4", got)
	}
	if err := pt.Map(va+4<<12, 1<<12, 0x2000, pgtable.MapOpts{}); !errors.Is(err, pgtable.EEXIST) {
		t.Fatalf("overlapping map: %v", err)
	}
	if err := pt.Unmap(va, 16<<12); err != nil {
		t.Fatal(err)
	}
	if _, ok := pt.Lookup(va); ok {
		t.Fatal("still mapped")
	}
	if got := pt.Tables(); got != 1 {
		t.Fatalf("tables after unmap = %d, want 1", got)
	}
	if got := mem.InUse(phys.KindTable); got != 1 {
		t.Fatalf("table frames in use = %d", got)
	}
}

func TestHugeMapSplit(t *testing.T) {
	pt, _ := newX86(t)
	const va = 0x7f00_0000_0000
	if err := pt.Map(va, 4<<20, 0x200, pgtable.MapOpts{Prot: pgtable.ProtRead, Huge: true}); err != nil {
		t.Fatal(err)
	}
	tr, ok := pt.Lookup(va + 0x1234)
	if !ok || tr.Level != pgtable.PMD || tr.PFN != 0x201 {
		t.Fatalf("lookup: %+v", tr)
	}
	// Unmapping one page in the middle splits the 2 MiB leaf.
	if err := pt.Unmap(va+0x5000, 0x1000); err != nil {
		t.Fatal(err)
	}
	if _, ok := pt.Lookup(va + 0x5000); ok {
		t.Fatal("page still mapped")
	}
	tr, ok = pt.Lookup(va + 0x6000)
	if !ok || tr.Level != pgtable.PTE || tr.PFN != 0x206 {
		t.Fatalf("after split: %+v %v", tr, ok)
	}
	tr, ok = pt.Lookup(va + 2<<20)
	if !ok || tr.Level != pgtable.PMD {
		t.Fatalf("second leaf: %+v", tr)
	}
}

func TestMapENOMEMLeavesNothing(t *testing.T) {
	for n := uint64(1); n <= 3; n++ {
		pt, mem := newX86(t)
		mem.SetFailPolicy(phys.FailPolicy{Nth: n})
		err := pt.Map(0x7f00_0000_0000, 1<<12, 0x10, pgtable.MapOpts{})
		if !errors.Is(err, pgtable.ENOMEM) {
			t.Fatalf("fail #%d: err %v", n, err)
		}
		if pt.Tables() != 1 || mem.InUse(phys.KindTable) != 1 || !pt.IsEmpty(0x7f00_0000_0000, 1<<12) {
			t.Fatalf("fail #%d: tables %d", n, pt.Tables())
		}
	}
}

func TestBadRanges(t *testing.T) {
	pt, _ := newX86(t)
	cases := []struct {
		name      string
		va, size  uint64
		wantErrno error
	}{
		{"unaligned", 0x1001, 0x1000, pgtable.EINVAL},
		{"zero length", 0x1000, 0, pgtable.EINVAL},
		{"beyond user space", 1 << 47, 0x1000, pgtable.EINVAL},
		{"non-canonical", 0x8000_0000_0000_0000, 0x1000, pgtable.EINVAL},
		{"wraps", 0xffff_ffff_ffff_f000, 0x2000, pgtable.EINVAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := pt.Map(c.va, c.size, 1, pgtable.MapOpts{}); !errors.Is(err, c.wantErrno) {
				t.Fatalf("Map: %v", err)
			}
			if err := pt.Unmap(c.va, c.size); !errors.Is(err, c.wantErrno) {
				t.Fatalf("Unmap: %v", err)
			}
		})
	}
}

func BenchmarkMap4K(b *testing.B) {
	a := x86.New(x86.FourLevel)
	mem, _ := phys.New(phys.Config{Size: 64 << 30, PageShift: 12, MaxOrder: 18})
	meter := &cost.Meter{}
	cfg := pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem, Meter: meter, Space: a.User}
	opts := pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared}
	b.ReportAllocs()
	for b.Loop() {
		pt, err := pgtable.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		for i := uint64(0); i < 512; i++ {
			if err := pt.Map(0x7f00_0000_0000+i<<12, 1<<12, phys.PFN(0x1000+i), opts); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/512, "ns/page")
}

func BenchmarkLookup(b *testing.B) {
	pt, _ := newX86(b)
	opts := pgtable.MapOpts{Prot: pgtable.ProtRead}
	for i := uint64(0); i < 512; i++ {
		if err := pt.Map(0x7f00_0000_0000+i<<12, 1<<12, phys.PFN(0x1000+i), opts); err != nil {
			b.Fatal(err)
		}
	}
	var sink phys.PFN
	i := uint64(0)
	for b.Loop() {
		tr, _ := pt.Lookup(0x7f00_0000_0000 + (i&511)<<12)
		sink += tr.PFN
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/page")
	_ = sink
}
