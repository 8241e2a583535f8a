package pgtable

import "fmt"

// Level is a page-table level, named as in Linux.
type Level uint8

// The levels, from the root down.
const (
	PGD Level = iota
	P4D
	PUD
	PMD
	PTE
	// NumLevels is the number of Linux levels.
	NumLevels
)

var levelNames = [NumLevels]string{"pgd", "p4d", "pud", "pmd", "pte"}

// String returns the Linux name of the level ("pmd").
func (l Level) String() string {
	if l < NumLevels {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// TableGeometry describes one level that has tables of its own.
type TableGeometry struct {
	// Level is the lowest Linux level whose entries the table holds.
	Level Level
	// Shift is log2 of the bytes one entry of the table maps.
	Shift uint
	// Entries is the number of entries in one table.
	Entries int
	// Order is the allocation order of one table's backing memory in base
	// pages; several small tables may share a page in Linux (s390 page
	// tables are 2 KiB), which the model rounds up to one page each.
	Order uint
}

// Size returns the bytes one entry maps.
func (t TableGeometry) Size() uint64 { return 1 << t.Shift }

// Span returns the bytes one whole table maps.
func (t TableGeometry) Span() uint64 { return uint64(t.Entries) << t.Shift }

// Geometry describes the shape of an architecture's page tables.
type Geometry struct {
	// PageShift is log2 of the base page size.
	PageShift uint
	// Tables lists the levels with tables of their own, root first, at the
	// largest configuration the arch can grow to. A page table may start
	// with fewer levels (s390 starts with three) and grow.
	Tables []TableGeometry
	// Shifts gives the shift of every Linux level, folded ones included: a
	// level folded into the table below it has that table's shift, as
	// PUD_SHIFT equals PGDIR_SHIFT when the PUD is folded.
	Shifts [NumLevels]uint
	// MinTables is the number of levels a new page table starts with
	// (counted from the bottom); zero means all of Tables.
	MinTables int
}

// Valid reports whether l is one of the five levels.
func (l Level) Valid() bool { return l < NumLevels }

// Shift returns the shift of Linux level l, 0 for a value that is no
// level.
func (g *Geometry) Shift(l Level) uint {
	if !l.Valid() {
		return 0
	}
	return g.Shifts[l]
}

// Size returns the bytes one entry of level l maps (PMD_SIZE for PMD), 0
// for a value that is no level.
func (g *Geometry) Size(l Level) uint64 {
	if !l.Valid() {
		return 0
	}
	return 1 << g.Shifts[l]
}

// Mask returns the mask that aligns an address down to level l
// (PMD_MASK for PMD), 0 for a value that is no level.
func (g *Geometry) Mask(l Level) uint64 { return ^(g.Size(l) - 1) }

// PageSize returns the base page size.
func (g *Geometry) PageSize() uint64 { return 1 << g.PageShift }

// HasTable reports whether level l has tables of its own in the largest
// configuration.
func (g *Geometry) HasTable(l Level) bool {
	for _, t := range g.Tables {
		if t.Level == l {
			return true
		}
	}
	return false
}

// Folded reports whether level l is folded: its entry is the entry of
// another level's table (pud_offset returning the p4d pointer).
func (g *Geometry) Folded(l Level) bool { return !g.HasTable(l) }

// Validate checks the geometry for internal consistency.
func (g *Geometry) Validate() error {
	if len(g.Tables) == 0 || g.Tables[len(g.Tables)-1].Level != PTE {
		return fmt.Errorf("geometry: the last table level must be pte")
	}
	if g.Tables[len(g.Tables)-1].Shift != g.PageShift {
		return fmt.Errorf("geometry: pte shift %d differs from page shift %d", g.Tables[len(g.Tables)-1].Shift, g.PageShift)
	}
	for i, t := range g.Tables {
		if t.Entries <= 0 || t.Entries&(t.Entries-1) != 0 {
			return fmt.Errorf("geometry: %s table has %d entries, not a power of two", t.Level, t.Entries)
		}
		if g.Shifts[t.Level] != t.Shift {
			return fmt.Errorf("geometry: %s shift %d differs from its table shift %d", t.Level, g.Shifts[t.Level], t.Shift)
		}
		if i > 0 {
			up := g.Tables[i-1]
			if up.Level >= t.Level {
				return fmt.Errorf("geometry: tables out of order at %s", t.Level)
			}
			if up.Shift < t.Shift+log2(uint64(t.Entries)) {
				return fmt.Errorf("geometry: %s table (shift %d) does not cover the %s table below it", up.Level, up.Shift, t.Level)
			}
		}
	}
	if g.MinTables < 0 || g.MinTables > len(g.Tables) {
		return fmt.Errorf("geometry: MinTables %d out of range", g.MinTables)
	}
	return nil
}

func log2(x uint64) uint {
	n := uint(0)
	for x > 1 {
		x >>= 1
		n++
	}
	return n
}

// AddrEnd returns the end of the level-l entry that contains addr, or end
// if that comes first (pmd_addr_end and friends). Like Linux it compares
// boundary-1 with end-1, so an end of 0 means the top of the address
// space. For a value that is no level it returns end.
func (g *Geometry) AddrEnd(l Level, addr, end uint64) uint64 {
	if !l.Valid() {
		return end
	}
	boundary := (addr + g.Size(l)) & g.Mask(l)
	if boundary-1 < end-1 {
		return boundary
	}
	return end
}
