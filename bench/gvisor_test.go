// Package bench holds side-by-side benchmarks of gVisor's
// pkg/ring0/pagetables and ptsim. It is a separate module so that gVisor
// never becomes a dependency of the ptsim library itself.
package bench

import (
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/cpuid"
	"gvisor.dev/gvisor/pkg/hostarch"
	"gvisor.dev/gvisor/pkg/ring0/pagetables"
)

const (
	// pagesPerTable is the number of 4 KiB pages mapped per table: exactly
	// one last-level page table (512 PTEs) worth of mappings.
	pagesPerTable = 512

	// pageSize is the size of one small page.
	pageSize = 4096

	// virtBase is a 2 MiB-aligned user-space virtual address, so the 512
	// pages fill exactly one last-level table.
	virtBase = 0x7f0000000000

	// physBase is the first (fake) physical address; pages are consecutive.
	physBase = 0x100000000
)

// userRW is the mapping protection used by every benchmark.
var userRW = pagetables.MapOpts{AccessType: hostarch.ReadWrite, User: true}

var cpuidOnce sync.Once

// initCPUID must run before pagetables.New: the x86 pagetables code
// consults the cpuid feature set, and an external module that skips
// cpuid.Initialize() panics inside New.
func initCPUID() { cpuidOnce.Do(cpuid.Initialize) }

// Sinks that keep the compiler from discarding benchmarked work.
var (
	sinkBool  bool
	sinkPhys  uintptr
	sinkTable *pagetables.PageTables
)

// mapPages maps pagesPerTable consecutive 4 KiB pages into pt, one Map call
// per page, and reports whether any call found a previous mapping.
func mapPages(pt *pagetables.PageTables) bool {
	prev := false
	for i := uintptr(0); i < pagesPerTable; i++ {
		prev = pt.Map(hostarch.Addr(virtBase+i*pageSize), pageSize, userRW, physBase+i*pageSize) || prev
	}
	return prev
}

// newMappedTable returns a fresh page table holding pagesPerTable pages.
func newMappedTable() *pagetables.PageTables {
	pt := pagetables.New(pagetables.NewRuntimeAllocator())
	mapPages(pt)
	return pt
}

// TestGVisorMapLookup checks that the benchmarked operations really do what
// the benchmarks claim, so a silently broken setup cannot produce fast
// numbers.
func TestGVisorMapLookup(t *testing.T) {
	initCPUID()
	pt := pagetables.New(pagetables.NewRuntimeAllocator())
	if mapPages(pt) {
		t.Fatal("Map into a fresh table reported a previous mapping")
	}
	for i := uintptr(0); i < pagesPerTable; i++ {
		va := hostarch.Addr(virtBase + i*pageSize)
		v, phys, size, opts := pt.Lookup(va, false)
		if v != va || phys != physBase+i*pageSize || size != pageSize || opts != userRW {
			t.Fatalf("Lookup(%#x) = (%#x, %#x, %#x, %+v), want (%#x, %#x, %#x, %+v)",
				va, v, phys, size, opts, va, physBase+i*pageSize, uintptr(pageSize), userRW)
		}
	}
	// Just past the mapped range must be unmapped.
	if _, _, size, _ := pt.Lookup(hostarch.Addr(virtBase+pagesPerTable*pageSize), false); size != 0 {
		t.Fatalf("Lookup past the mapped range found a mapping of size %#x", size)
	}
	// Mapping the same pages again is reported as overwriting nothing new.
	if !pt.Map(hostarch.Addr(virtBase), pageSize, pagetables.MapOpts{AccessType: hostarch.Read, User: true}, physBase) {
		t.Fatal("remapping with different opts did not report a previous mapping")
	}
	if !pt.Unmap(hostarch.Addr(virtBase), pagesPerTable*pageSize) {
		t.Fatal("Unmap reported no previous mapping")
	}
	if !pt.IsEmpty(hostarch.Addr(virtBase), pagesPerTable*pageSize) {
		t.Fatal("range not empty after Unmap")
	}
}

// BenchmarkGVisorMap4K measures building a fresh table and mapping 512
// single 4 KiB pages into it (one Map call per page). Table creation is
// included in the timed region. Metric ns/page = ns/op / 512.
func BenchmarkGVisorMap4K(b *testing.B) {
	initCPUID()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pt := pagetables.New(pagetables.NewRuntimeAllocator())
		sinkBool = mapPages(pt)
		sinkTable = pt
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/pagesPerTable, "ns/page")
}

// BenchmarkGVisorLookup measures one single-address Lookup per iteration in
// a table holding 512 mapped 4 KiB pages, cycling through the pages.
// Metric ns/page = ns per lookup.
func BenchmarkGVisorLookup(b *testing.B) {
	initCPUID()
	pt := newMappedTable()
	if _, phys, size, _ := pt.Lookup(hostarch.Addr(virtBase), false); phys != physBase || size != pageSize {
		b.Fatalf("setup: Lookup(%#x) = phys %#x size %#x", uintptr(virtBase), phys, size)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var acc uintptr
	for i := 0; i < b.N; i++ {
		_, phys, _, _ := pt.Lookup(hostarch.Addr(virtBase+uintptr(i%pagesPerTable)*pageSize), false)
		acc += phys
	}
	b.StopTimer()
	sinkPhys = acc
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/page")
}
