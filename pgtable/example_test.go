package pgtable_test

import (
	"fmt"
	"os"

	"github.com/ptsim/ptsim/arch/x86"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// Build an x86-64 page table, map three pages, and print the tables the
// way xv6's vmprint does (runs of alike entries on one line), then the
// walk of one address as a worked textbook answer.
func ExamplePageTable_Dump() {
	a := x86.New(x86.FourLevel)
	mem, _ := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 18})
	meter := &cost.Meter{Name: "demo"}
	pt, err := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem, Meter: meter, Space: a.User})
	if err != nil {
		panic(err)
	}
	const va = 0x7f00_0000_0000
	prot := pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared}
	if err := pt.Map(va, 3<<12, 0x100, prot); err != nil {
		panic(err)
	}
	_ = pt.Dump(os.Stdout, pgtable.DumpOptions{Title: "demo"})
	_ = pt.WriteWalk(os.Stdout, va+0x1234)
	fmt.Println("tables allocated:", meter.Count(cost.PTAllocs))
	// Output:
	// demo: 4 levels, root p4d table pfn 0x0 (empty entries not shown)
	//  .. [254] p4d 0x7f0000000000-0x7f7fffffffff 0x0000000000001067 table -> pud table pfn 0x1
	//  .. .. [0] pud 0x7f0000000000-0x7f003fffffff 0x0000000000002067 table -> pmd table pfn 0x2
	//  .. .. .. [0] pmd 0x7f0000000000-0x7f00001fffff 0x0000000000003067 table -> pte table pfn 0x3
	//  .. .. .. .. [0-2] pte 0x7f0000000000-0x7f0000002fff 0x8000000000100027 +0x1000 each rw- user young pfn 0x100-0x102
	// Virtual Address 0x7f0000001234: p4d 254, pud 0, pmd 0, pte 1, offset 0x234
	//   --> p4d index 0xfe [decimal 254] in table pfn 0x0: contents 0x0000000000001067 (table) --> next table pfn 0x1
	//   --> pud index 0x0 [decimal 0] in table pfn 0x1: contents 0x0000000000002067 (table) --> next table pfn 0x2
	//   --> pmd index 0x0 [decimal 0] in table pfn 0x2: contents 0x0000000000003067 (table) --> next table pfn 0x3
	//   --> pte index 0x1 [decimal 1] in table pfn 0x3: contents 0x8000000000101027 (leaf: pfn 0x101, rw- user young)
	//   --> Translates to Physical Address 0x101234
	// tables allocated: 4
}

// Lookup translates an address in software without counting anything;
// an unmapped address is not found.
func ExamplePageTable_Lookup() {
	a := x86.New(x86.FourLevel)
	mem, _ := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 18})
	pt, _ := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem, Space: a.User})
	_ = pt.Map(0x4000_0000, 2<<20, 0x200, pgtable.MapOpts{Prot: pgtable.ProtRead, Huge: true})
	tr, ok := pt.Lookup(0x4001_2345)
	fmt.Println(ok, tr.Level, tr.Size>>20, "MiB", fmt.Sprintf("pa %#x", tr.PA(0x4001_2345, 12)))
	_, ok = pt.Lookup(0x8000_0000)
	fmt.Println(ok)
	// Output:
	// true pmd 2 MiB pa 0x212345
	// false
}
