package pgtable

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/phys"
)

// Error numbers returned by this package; errors.Is matches them against
// the same values in other packages.
const (
	EINVAL = errno.EINVAL
	ENOMEM = errno.ENOMEM
	EEXIST = errno.EEXIST
	EFAULT = errno.EFAULT
)

// Range is a half-open range of virtual addresses [Start, End). An End of
// zero means the top of the 64-bit space.
type Range struct {
	Start, End uint64
}

// Contains reports whether [addr, addr+size) lies inside r.
func (r Range) Contains(addr, size uint64) bool {
	last := addr + size - 1
	if size == 0 || last < addr {
		return false
	}
	return addr >= r.Start && (r.End == 0 || last < r.End)
}

// Config describes a new page table.
type Config struct {
	// Geometry and Format describe the arch's tables and entries.
	Geometry *Geometry
	Format   *Format
	// Memory provides the table pages.
	Memory *phys.Memory
	// Meter counts the table's primitives; nil gives the table its own.
	Meter *cost.Meter
	// Kernel marks init_mm's table: kernel table bits, and no ArchOps
	// contiguous-bit management.
	Kernel bool
	// Space is the range of virtual addresses the table may map.
	Space Range
	// Levels is the number of table levels to start with, counted from the
	// bottom; zero means Geometry.MinTables, or all of them.
	Levels int
}

// PageTable is one address space's page tables: a root table and the
// tables below it, Linux's mm->pgd.
type PageTable struct {
	// geo and fmt are the arch's geometry and entry format.
	geo *Geometry
	fmt *Format
	// mem provides table pages.
	mem *phys.Memory
	// meter counts the primitives performed on this table.
	meter *cost.Meter
	// kernel is set for init_mm's table.
	kernel bool
	// space is the range of addresses the table may map.
	space Range
	// top is the index in geo.Tables of the root's level.
	top int
	// root is the top table.
	root *Table
	// ops are the arch's PTE operations (arm64 contpte, s390 IPTE...).
	ops ArchOps
	// generic is set while ops is GenericOps, whose methods are the raw
	// functions: the public PTE functions then call those directly,
	// sparing an interface call per entry.
	generic bool
	// observer, when set, sees every entry write (the validator).
	observer Observer
	// quietFlag is the observer's QuietFlag, when it has one: true while
	// the observer ignores writes, so bulk loops may skip it (see quiet).
	quietFlag *bool
	// lazy counts nested lazy-MMU sections.
	lazy int
	// tables counts the live tables.
	tables int
	// gen counts structural changes (tables attached, detached, freed);
	// it invalidates hint.
	gen uint64
	// hint remembers the PTE table the last walk reached, so runs of walks
	// inside one table skip the descent. The skipped reads are still
	// counted: the hint speeds up the simulator, not the simulated kernel.
	hint walkHint
	// pmdHint is the same for the table the last walk for a PMD entry
	// reached.
	pmdHint walkHint
	// misuse records entry primitives called with a bad pointer.
	misuse misuses
}

// walkHint is a one-entry cache of the last PTE table walked to.
type walkHint struct {
	t     *Table
	base  uint64
	span  uint64
	depth uint64
	gen   uint64
}

// New returns a page table with an empty root. Allocating the root can
// fail with ENOMEM.
func New(cfg Config) (*PageTable, error) {
	if cfg.Geometry == nil || cfg.Format == nil || cfg.Memory == nil {
		return nil, fmt.Errorf("pgtable: config needs geometry, format and memory: %w", EINVAL)
	}
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("pgtable: %v: %w", err, EINVAL)
	}
	if cfg.Memory.PageShift() != cfg.Geometry.PageShift {
		return nil, fmt.Errorf("pgtable: memory page shift %d differs from geometry %d: %w",
			cfg.Memory.PageShift(), cfg.Geometry.PageShift, EINVAL)
	}
	n := len(cfg.Geometry.Tables)
	levels := cfg.Levels
	if levels == 0 {
		levels = cfg.Geometry.MinTables
	}
	if levels == 0 {
		levels = n
	}
	if levels < 1 || levels > n {
		return nil, fmt.Errorf("pgtable: %d levels out of range 1..%d: %w", levels, n, EINVAL)
	}
	pt := &PageTable{
		geo:     cfg.Geometry,
		fmt:     cfg.Format,
		mem:     cfg.Memory,
		meter:   cfg.Meter,
		kernel:  cfg.Kernel,
		space:   cfg.Space,
		top:     n - levels,
		ops:     GenericOps{},
		generic: true,
	}
	if pt.meter == nil {
		pt.meter = &cost.Meter{Name: "pgtable"}
	}
	root, err := pt.AllocTable(pt.geo.Tables[pt.top].Level)
	if err != nil {
		return nil, err
	}
	pt.root = root
	return pt, nil
}

// Geometry returns the table's geometry.
func (pt *PageTable) Geometry() *Geometry { return pt.geo }

// Format returns the table's entry format.
func (pt *PageTable) Format() *Format { return pt.fmt }

// Memory returns the physical memory the tables live in.
func (pt *PageTable) Memory() *phys.Memory { return pt.mem }

// Meter returns the meter that counts this table's primitives.
func (pt *PageTable) Meter() *cost.Meter { return pt.meter }

// SetMeter makes later primitives count on m.
func (pt *PageTable) SetMeter(m *cost.Meter) { pt.meter = m }

// Kernel reports whether this is init_mm's table.
func (pt *PageTable) Kernel() bool { return pt.kernel }

// Space returns the range of addresses the table may map.
func (pt *PageTable) Space() Range { return pt.space }

// SetSpace changes the range of addresses the table may map (s390 grows
// it with its levels). An End of 0 means the top of the address space. It
// fails with EINVAL, changing nothing, for an empty or unaligned range or
// one that the root table cannot address in one piece.
func (pt *PageTable) SetSpace(r Range) error {
	ps := pt.geo.PageSize()
	span := pt.geo.Tables[pt.top].Span() // 0: the root spans all 2^64
	var base uint64
	if span != 0 {
		base = r.Start &^ (span - 1)
	}
	switch {
	case r.Start&(ps-1) != 0 || r.End&(ps-1) != 0:
		return fmt.Errorf("pgtable: space %#x-%#x: not page aligned: %w", r.Start, r.End, EINVAL)
	case r.End != 0 && r.End <= r.Start:
		return fmt.Errorf("pgtable: space %#x-%#x: empty: %w", r.Start, r.End, EINVAL)
	case span != 0 && r.End-1-base >= span:
		return fmt.Errorf("pgtable: space %#x-%#x: beyond the %#x bytes the root maps: %w", r.Start, r.End, span, EINVAL)
	}
	pt.space = r
	return nil
}

// IndexOf returns the index of addr's entry in a table of t's level, -1
// for no table.
func (pt *PageTable) IndexOf(t *Table, addr uint64) int {
	if t == nil {
		return -1
	}
	return pt.index(t, addr)
}

// EntrySize returns the bytes one entry of t maps, 0 for no table.
func (pt *PageTable) EntrySize(t *Table) uint64 {
	if t == nil {
		return 0
	}
	return t.entrySize()
}

// Root returns the root table.
func (pt *PageTable) Root() *Table { return pt.root }

// RootLevel returns the lowest Linux level whose entries the root holds.
func (pt *PageTable) RootLevel() Level { return pt.root.level }

// Levels returns the number of table levels in use.
func (pt *PageTable) Levels() int { return len(pt.geo.Tables) - pt.top }

// Tables returns the number of live tables, the root included.
func (pt *PageTable) Tables() int { return pt.tables }

// Ops returns the installed arch PTE operations.
func (pt *PageTable) Ops() ArchOps { return pt.ops }

// SetOps installs the arch's PTE operations; nil restores the generic ones.
func (pt *PageTable) SetOps(ops ArchOps) {
	if ops == nil {
		ops = GenericOps{}
	}
	pt.ops = ops
	_, pt.generic = ops.(GenericOps)
}

// SetObserver makes o see every later entry write; nil turns it off.
func (pt *PageTable) SetObserver(o Observer) {
	pt.observer = o
	pt.quietFlag = nil
	if q, ok := o.(QuietObserver); ok {
		pt.quietFlag = q.QuietFlag()
	}
}

// AllocTable allocates an empty table for level l's entries. It counts
// pt_allocs and fails with ENOMEM when memory does.
func (pt *PageTable) AllocTable(l Level) (*Table, error) {
	gi := -1
	for i, tg := range pt.geo.Tables {
		if tg.Level == l {
			gi = i
		}
	}
	if gi < 0 {
		return nil, fmt.Errorf("pgtable: no %s tables on this arch: %w", l, EINVAL)
	}
	tg := pt.geo.Tables[gi]
	pfn, err := pt.mem.Alloc(tg.Order, phys.KindTable)
	if err != nil {
		return nil, fmt.Errorf("pgtable: %s table: %w", l, err)
	}
	t := newTable(tg.Entries, l != PTE)
	t.pfn, t.level, t.geo = pfn, l, int8(gi)
	t.shift, t.mask = uint8(tg.Shift), uint32(tg.Entries-1)
	if none := pt.fmt.None[l]; none != 0 && !pt.fmt.ZeroFill {
		for i := range t.entries {
			t.entries[i] = none
		}
	}
	pt.tables++
	pt.meter.Note(cost.PTAllocs, 1, 0, uint64(pfn))
	return t, nil
}

// FreeTable gives a detached table's frame back and frees its lock
// (pagetable_dtor + free). It counts pt_frees. Freeing a table that still
// maps something is refused with EINVAL, so no mapping is ever lost.
func (pt *PageTable) FreeTable(t *Table) error {
	if t == nil {
		return fmt.Errorf("pgtable: free of no table: %w", EINVAL)
	}
	if t.freed {
		return fmt.Errorf("pgtable: %s table pfn %#x freed twice: %w", t.level, t.pfn, EINVAL)
	}
	if t.used != 0 {
		return fmt.Errorf("pgtable: %s table pfn %#x freed with %d entries in use: %w", t.level, t.pfn, t.used, EINVAL)
	}
	t.freed = true
	t.ptl.Free()
	pt.gen++
	pt.mem.Free(t.pfn, phys.KindTable)
	pt.tables--
	pt.meter.Note(cost.PTFrees, 1, t.base, uint64(t.pfn))
	return nil
}

// tableGeo returns the geometry of t's level.
func (pt *PageTable) tableGeo(t *Table) TableGeometry { return pt.geo.Tables[t.geo] }

// index returns the index of addr's entry in table t.
func (pt *PageTable) index(t *Table, addr uint64) int {
	return int(uint32(addr>>t.shift) & t.mask)
}

// entrySize is TableGeometry.Size of t's level, from the shift cached in
// t.
func (t *Table) entrySize() uint64 { return 1 << t.shift }

// Grow adds table levels on top of the root until the table has levels
// levels (s390's crst_table_upgrade). The old root becomes entry 0 of the
// new root. It fails with ENOMEM, leaving the table as it was.
func (pt *PageTable) Grow(levels int) error {
	n := len(pt.geo.Tables)
	if levels > n || levels < pt.Levels() {
		return fmt.Errorf("pgtable: grow to %d levels (have %d, max %d): %w", levels, pt.Levels(), n, EINVAL)
	}
	// Allocate every new level first, so that ENOMEM changes nothing.
	var fresh []*Table
	for top := pt.top; n-top < levels; top-- {
		t, err := pt.AllocTable(pt.geo.Tables[top-1].Level)
		if err != nil {
			for _, f := range fresh {
				_ = pt.FreeTable(f)
			}
			return err
		}
		fresh = append(fresh, t)
	}
	for _, t := range fresh {
		pt.top--
		old := pt.root
		pt.root = t
		pt.Populate(0, Ptr{T: t, I: 0}, old)
	}
	return nil
}
