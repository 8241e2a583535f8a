package bench

import (
	"testing"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// ptsimConfig returns a page-table configuration for x86-64 4-level
// paging over a large simulated memory, so fresh tables never run out.
func ptsimConfig(b *testing.B) pgtable.Config {
	a := x86.New(x86.FourLevel)
	mem, err := phys.New(phys.Config{Size: 64 << 30, PageShift: 12, MaxOrder: 18})
	if err != nil {
		b.Fatal(err)
	}
	return pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem, Meter: &cost.Meter{}, Space: a.User}
}

var ptsimRW = pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared}

// BenchmarkMap4K is P1 for ptsim: a fresh table, then 512 single-page Map
// calls, exactly as BenchmarkGVisorMap4K.
func BenchmarkMap4K(b *testing.B) {
	cfg := ptsimConfig(b)
	b.ReportAllocs()
	for b.Loop() {
		pt, err := pgtable.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		for i := uint64(0); i < pagesPerTable; i++ {
			if err := pt.Map(virtBase+i*pageSize, pageSize, phys.PFN(physBase/pageSize+i), ptsimRW); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/pagesPerTable, "ns/page")
}

// BenchmarkLookup is P2 for ptsim: translate one of 512 mapped pages per
// iteration by software walk, as BenchmarkGVisorLookup.
func BenchmarkLookup(b *testing.B) {
	pt, err := pgtable.New(ptsimConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	for i := uint64(0); i < pagesPerTable; i++ {
		if err := pt.Map(virtBase+i*pageSize, pageSize, phys.PFN(physBase/pageSize+i), ptsimRW); err != nil {
			b.Fatal(err)
		}
	}
	var sink phys.PFN
	i := uint64(0)
	for b.Loop() {
		tr, _ := pt.Lookup(virtBase + (i%pagesPerTable)*pageSize)
		sink += tr.PFN
		i++
	}
	sinkPhys = uintptr(sink)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/page")
}
