package phys_test

import (
	"fmt"

	"github.com/ptsim/ptsim/phys"
)

// Allocate a 64 KiB folio, look it up from one of its pages, and take and
// drop references: the refcount a folio starts with is one.
func ExampleMemory_Alloc() {
	mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: 12, MaxOrder: 9})
	if err != nil {
		panic(err)
	}
	pfn, err := mem.Alloc(4, phys.KindFolio) // order 4: 16 pages
	if err != nil {
		panic(err)
	}
	f := mem.FolioOf(pfn + 5)
	fmt.Println("head", f.PFN == pfn, "pages", f.NrPages(), "large", f.Large())
	mem.Get(f)
	fmt.Println("refcount", mem.Refcount(f))
	mem.Put(f)
	fmt.Println("refcount", mem.Refcount(f), "mapcount", mem.Mapcount(f))
	_, err = mem.Alloc(12, phys.KindFolio) // above MaxOrder
	fmt.Println(err != nil)
	// Output:
	// head true pages 16 large true
	// refcount 2
	// refcount 1 mapcount 0
	// true
}
