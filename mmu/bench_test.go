package mmu_test

import (
	"runtime"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryPerPage measures everything the simulator keeps per
// mapped 4 KiB page (its share of page tables, page and folio metadata,
// content value) with 16 GiB of anonymous memory populated by write
// faults: target P5 of TARGETS.md is at most 32 bytes. The metric is
// B/page; ns/op is the time to populate.
func BenchmarkMemoryPerPage(b *testing.B) {
	const size = 16 << 30
	a, err := archs.ByName("x86_64")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		m, err := mmu.New(mmu.Config{Arch: a, MemorySize: size + 2<<30, NoAudit: true})
		if err != nil {
			b.Fatal(err)
		}
		mm, err := m.NewMM("init")
		if err != nil {
			b.Fatal(err)
		}
		empty := heapInUse()
		b.StartTimer()
		if err := mm.Mmap(0x10_0000_0000, size, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		full := heapInUse()
		pages := float64(size >> 12)
		if got := mm.RSS(mmu.MMAnonPages); got != int64(pages) {
			b.Fatalf("populated %d pages, want %v", got, pages)
		}
		b.ReportMetric(float64(full-empty)/pages, "B/page")
		b.ReportMetric(float64(full-before)/pages, "B/page-with-machine")
		runtime.KeepAlive(m)
		b.StartTimer()
	}
}
