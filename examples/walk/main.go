// Command walk maps a few base pages and, where the architecture has
// transparent huge pages, one PMD-sized folio on every architecture ptsim
// models, then prints the page walk of some addresses the way a worked
// textbook answer does: the index at each level, the entry found, the next
// table, and the physical address reached (or the fault).
//
//	go run ./examples/walk
//
// It drives the machine from Go (package mmu); the same walk is the
// script command `walk ADDR`.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "walk:", err)
		os.Exit(1)
	}
}

// run walks every architecture and writes the traces to w.
func run(w io.Writer) error {
	for _, name := range archs.Names() {
		if err := walkArch(w, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// walkArch builds one machine and walks four addresses in it: a written
// base page, a page that was only read (the shared zero page), a huge
// page (or, without THP, a page of a large folio) and a hole.
func walkArch(w io.Writer, name string) error {
	a, err := archs.ByName(name)
	if err != nil {
		return err
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 2 << 30})
	if err != nil {
		return err
	}
	mm, err := m.NewMM("demo")
	if err != nil {
		return err
	}
	base := uint64(0x10_0000_0000)
	if base >= a.User.End && a.User.End != 0 {
		base = 0x4000_0000 // 32-bit UML
	}
	ps := a.PageSize()
	rw := mmu.ProtRead | mmu.ProtWrite
	if err := mm.Mmap(base, 4*ps, rw, mmu.MapFlags{}); err != nil {
		return err
	}
	if err := mm.Write(0, base+ps, 0xcafe); err != nil {
		return err
	}
	if _, err := mm.Read(0, base+2*ps); err != nil {
		return err
	}
	// A folio the size of one PMD entry: one huge leaf where the arch has
	// transparent huge pages, else (UML) a 16-page folio mapped by PTEs.
	big := a.Geometry.Size(pgtable.PMD)
	if !a.Format.LeafLevels[pgtable.PMD] {
		big = 16 * ps
	}
	hugeVA := (base + 4*ps + big - 1) &^ (big - 1)
	if err := mm.Mmap(hugeVA, big, rw, mmu.MapFlags{FolioSize: big}); err != nil {
		return err
	}
	if err := mm.Write(0, hugeVA+big/2, 0xbeef); err != nil {
		return err
	}
	fmt.Fprintf(w, "=== %s: %d-byte pages, %d table levels\n", name, ps, mm.PageTable().Levels())
	for _, va := range []uint64{base + ps + 0x10, base + 2*ps, hugeVA + big/2 + 0x20, base + 3*ps} {
		if err := mm.PageTable().WriteWalk(w, va); err != nil {
			return err
		}
		// The trace is the debugger's view; the MMU agrees with it.
		if tr, ok := mm.Translate(va); ok {
			fmt.Fprintf(w, "  --> Value: %#x\n", m.Memory().Content(tr.PFN))
		}
	}
	fmt.Fprintln(w)
	return m.Check()
}
