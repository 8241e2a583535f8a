package archs_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// allNames is the registry's contract: every name, in order.
var allNames = []string{"x86_64", "x86_64-la57", "arm64", "arm64-16k", "arm64-64k", "s390x", "sparc64", "um", "um32"}

// forEach runs fn as a subtest for every registered architecture, each
// with a fresh descriptor.
func forEach(t *testing.T, fn func(t *testing.T, a *arch.Arch)) {
	t.Helper()
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			a, err := archs.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, a)
		})
	}
}

func TestNames(t *testing.T) {
	if got := archs.Names(); !slices.Equal(got, allNames) {
		t.Fatalf("Names() = %v, want %v", got, allNames)
	}
	// The caller owns the slice it gets.
	n := archs.Names()
	n[0] = "changed"
	if archs.Names()[0] != "x86_64" {
		t.Fatal("Names() shares its slice")
	}
}

func TestByName(t *testing.T) {
	for _, name := range allNames {
		t.Run(name, func(t *testing.T) {
			a, err := archs.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if a.Name != name {
				t.Fatalf("Name = %q", a.Name)
			}
			if err := a.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// Each call gives a fresh descriptor.
			b, _ := archs.ByName(name)
			if a == b {
				t.Fatal("ByName returned the same pointer twice")
			}
			a.Caps.HugeSizes = append(a.Caps.HugeSizes[:0:0], 1)
			a.Format.Prots[0] = 0xdead
			a.Geometry.Tables[0].Entries = 3
			c, _ := archs.ByName(name)
			if slices.Equal(c.Caps.HugeSizes, []uint64{1}) || c.Format.Prots[0] == 0xdead || c.Geometry.Tables[0].Entries == 3 {
				t.Fatal("a change to one descriptor leaked into a later one")
			}
			if a.Costs == nil || a.Costs.Arch == "" {
				t.Fatal("no cost table")
			}
		})
	}
}

func TestByNameUnknown(t *testing.T) {
	for _, name := range []string{"", "x86", "ARM64", "arm64-4k", "riscv64", "um64"} {
		a, err := archs.ByName(name)
		if a != nil || !errors.Is(err, errno.EINVAL) || !errors.Is(err, pgtable.EINVAL) {
			t.Fatalf("ByName(%q) = %v, %v; want EINVAL", name, a, err)
		}
		for _, valid := range allNames {
			if !strings.Contains(err.Error(), valid) {
				t.Fatalf("error %q does not list %s", err, valid)
			}
		}
	}
}

// facts holds what Linux says about each architecture, for the tests to
// assert.
type facts struct {
	levels       int // table levels of a new mm
	maxLevels    int // table levels after growing
	entries      []int
	pageShift    uint
	leafLevels   []pgtable.Level
	hugeSizes    []uint64
	contPTEs     int
	special      bool
	softDirty    bool
	uffdWP       bool
	hwYoung      bool
	hwDirty      bool
	movePMD      bool
	movePUD      bool
	hvo          bool
	dcache       bool
	invalidate   bool
	grow         bool
	none         [pgtable.NumLevels]pgtable.Entry // raw empty value per level
	freshNone    pgtable.Entry                    // raw value of a fresh table's entries (PTE level)
	setAlways    pgtable.Entry
	userTable    map[pgtable.Level]pgtable.Entry // table flags written by pXd_populate
	kernelTable  map[pgtable.Level]pgtable.Entry
	prots        map[pgtable.Prot]pgtable.Entry // pfn_pte(0, vm_get_page_prot(prot))
	kernelRW     pgtable.Entry
	kernelRO     pgtable.Entry
	hugeShared   pgtable.Entry // shared RW leaf at the lowest leaf level, frame 0
	userTop      uint64
	directMap    uint64
	vmemmap      uint64
	kernelStart  uint64
	structPage   uint64
	oldPrefault  bool
	defaultUpper uint64
}

const (
	rw    = pgtable.ProtRead | pgtable.ProtWrite
	srw   = pgtable.ProtShared | rw
	srwx  = srw | pgtable.ProtExec
	rx    = pgtable.ProtRead | pgtable.ProtExec
	ro    = pgtable.ProtRead
	pnone = pgtable.ProtNone
)

func all(e pgtable.Entry) map[pgtable.Level]pgtable.Entry {
	return map[pgtable.Level]pgtable.Entry{pgtable.PGD: e, pgtable.P4D: e, pgtable.PUD: e, pgtable.PMD: e}
}

var (
	x86Prots = map[pgtable.Prot]pgtable.Entry{
		pnone: 0x120, ro: 0x8000_0000_0000_0025, rw: 0x8000_0000_0000_0025,
		rx: 0x25, srw: 0x8000_0000_0000_0027, srwx: 0x27,
	}
	arm64Prots = map[pgtable.Prot]pgtable.Entry{
		pnone: 0x0060_0000_0000_0f82, ro: 0x0060_0000_0000_0fc3, rw: 0x0060_0000_0000_0fc3,
		rx: 0x0020_0000_0000_0fc3, srw: 0x0068_0000_0000_0fc3, srwx: 0x0028_0000_0000_0fc3,
	}
	x86Facts = facts{
		levels: 4, maxLevels: 4, entries: []int{512, 512, 512, 512}, pageShift: 12,
		leafLevels: []pgtable.Level{pgtable.PUD, pgtable.PMD},
		hugeSizes:  []uint64{2 << 20, 1 << 30},
		special:    true, softDirty: true, uffdWP: true, hwYoung: true, hwDirty: true,
		movePMD: true, movePUD: true, hvo: true,
		userTable: all(0x67), kernelTable: all(0x67),
		prots:    x86Prots,
		kernelRW: 0x8000_0000_0000_0163, kernelRO: 0x8000_0000_0000_0121,
		hugeShared: 0x8000_0000_0000_00a7,
		userTop:    1<<47 - 4096, directMap: 0xffff_8880_0000_0000, vmemmap: 0xffff_ea00_0000_0000,
		kernelStart: 0xffff_8000_0000_0000, structPage: 64,
	}
	arm64Base = facts{
		levels: 4, maxLevels: 4, pageShift: 12,
		special: true, uffdWP: true, hwYoung: true, hwDirty: true,
		movePMD: true, movePUD: true, hvo: false,
		userTable:   all(0x0800_0000_0000_0403),
		kernelTable: all(0x1000_0000_0000_0403),
		prots:       arm64Prots,
		kernelRW:    0x0068_0000_0000_0703, kernelRO: 0x0060_0000_0000_0783,
		hugeShared: 0x0068_0000_0000_0fc1,
		userTop:    1 << 48, directMap: 0xffff_0000_0000_0000, kernelStart: 0xffff_0000_0000_0000,
		structPage: 64, oldPrefault: true,
	}
)

func archFacts(name string) facts {
	switch name {
	case "x86_64":
		return x86Facts
	case "x86_64-la57":
		f := x86Facts
		f.levels, f.maxLevels, f.entries = 5, 5, []int{512, 512, 512, 512, 512}
		f.userTop, f.directMap, f.vmemmap = 1<<56-4096, 0xff11_0000_0000_0000, 0xffd4_0000_0000_0000
		f.kernelStart, f.defaultUpper = 0xff00_0000_0000_0000, 1<<47-4096
		return f
	case "arm64":
		f := arm64Base
		f.entries = []int{512, 512, 512, 512}
		f.leafLevels = []pgtable.Level{pgtable.PUD, pgtable.PMD}
		f.hugeSizes = []uint64{64 << 10, 2 << 20, 32 << 20, 1 << 30}
		f.contPTEs = 16
		f.vmemmap = 0xffff_fdff_c000_0000
		return f
	case "arm64-16k":
		f := arm64Base
		f.pageShift = 14
		f.entries = []int{2, 2048, 2048, 2048}
		f.leafLevels = []pgtable.Level{pgtable.PMD}
		f.hugeSizes = []uint64{2 << 20, 32 << 20, 1 << 30}
		f.contPTEs = 128
		f.vmemmap = 0xffff_ff7f_c000_0000
		return f
	case "arm64-64k":
		f := arm64Base
		f.pageShift = 16
		f.levels, f.maxLevels = 3, 3
		f.entries = []int{64, 8192, 8192}
		f.leafLevels = []pgtable.Level{pgtable.PMD}
		f.hugeSizes = []uint64{2 << 20, 512 << 20, 16 << 30}
		f.contPTEs = 32
		f.vmemmap = 0xffff_ffdf_c000_0000
		return f
	case "s390x":
		return facts{
			levels: 3, maxLevels: 5, entries: []int{2048, 2048, 2048, 2048, 256}, pageShift: 12,
			leafLevels: []pgtable.Level{pgtable.PUD, pgtable.PMD},
			hugeSizes:  []uint64{1 << 20, 2 << 30},
			special:    true, softDirty: true, invalidate: true, grow: true,
			none:        [pgtable.NumLevels]pgtable.Entry{0x2c, 0x28, 0x24, 0x20, 0x400},
			freshNone:   0x400,
			userTable:   map[pgtable.Level]pgtable.Entry{pgtable.PGD: 0x0f, pgtable.P4D: 0x0b, pgtable.PUD: 0x07, pgtable.PMD: 0x01},
			kernelTable: map[pgtable.Level]pgtable.Entry{pgtable.PGD: 0x0f, pgtable.P4D: 0x0b, pgtable.PUD: 0x07, pgtable.PMD: 0x01},
			// pfn_pte applies pte_mkyoung: INVALID goes for readable prots.
			prots: map[pgtable.Prot]pgtable.Entry{
				pnone: 0x605, ro: 0x315, rw: 0x315, rx: 0x215, srw: 0x335, srwx: 0x235,
			},
			kernelRW: 0x13d, kernelRO: 0x315,
			// SEGMENT_RW + pmd_mkhuge (LARGE|YOUNG|PROTECT).
			hugeShared: 0xd701,
			userTop:    1<<64 - 4096, directMap: 0, vmemmap: 3 << 40, kernelStart: 0,
			structPage: 64, defaultUpper: 1 << 42,
		}
	case "sparc64":
		return facts{
			levels: 4, maxLevels: 4, entries: []int{1024, 1024, 1024, 1024}, pageShift: 13,
			leafLevels: []pgtable.Level{pgtable.PMD},
			hugeSizes:  []uint64{64 << 10, 8 << 20},
			special:    true, dcache: true,
			userTable: all(0), kernelTable: all(0),
			prots: map[pgtable.Prot]pgtable.Entry{
				pnone: 0x4b0, ro: 0x8000_0000_0000_06b0, rw: 0x8000_0000_0000_06b0,
				rx: 0x8000_0000_0000_16b0, srw: 0x8000_0000_0000_07b0, srwx: 0x8000_0000_0000_17b0,
			},
			kernelRW: 0x8000_0000_0000_1fb6, kernelRO: 0x8000_0000_0000_1fb6,
			// pmd_mkhuge: _PAGE_SZHUGE_4U | _PAGE_PMD_HUGE.
			hugeShared: 0xe100_0000_0000_07b0,
			userTop:    0x0010_0000_0000_0000 - 1<<32, directMap: 0xfff0_0000_0000_0000,
			vmemmap: 0x000c_0000_0000_0000, kernelStart: 0x1_0000_0000, structPage: 64,
		}
	case "um", "um32":
		f := facts{
			levels: 3, maxLevels: 3, entries: []int{512, 512, 512}, pageShift: 12,
			none:      [pgtable.NumLevels]pgtable.Entry{2, 2, 2, 2, 2},
			setAlways: 2,
			userTable: all(0x1e1), kernelTable: all(0x1e1),
			prots: map[pgtable.Prot]pgtable.Entry{
				pnone: 0x90, ro: 0xc1, rw: 0xc1, rx: 0xc1, srw: 0xe1, srwx: 0xe1,
			},
			kernelRW: 0x1a1, kernelRO: 0x1a1,
			userTop: 1 << 39, directMap: 0x6000_0000, kernelStart: 0x6000_0000, structPage: 64,
		}
		if name == "um32" {
			f.levels, f.maxLevels, f.entries = 2, 2, []int{1024, 1024}
			f.userTop, f.directMap, f.kernelStart, f.structPage = 0xbfc0_0000, 0x0804_8000, 0x0804_8000, 32
		}
		return f
	}
	panic("no facts for " + name)
}

// newMemory returns 64 GiB of simulated memory in a's pages, enough for
// every frame the tests name.
func newMemory(t testing.TB, a *arch.Arch) *phys.Memory {
	t.Helper()
	order := a.MaxOrder()
	if order < 4 {
		order = 4
	}
	mem, err := phys.New(phys.Config{Size: 64 << 30, PageShift: a.Geometry.PageShift, MaxOrder: order})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

// newPT returns an empty user page table for a, or init_mm's when kernel.
func newPT(t testing.TB, a *arch.Arch, mem *phys.Memory, kernel bool) *pgtable.PageTable {
	t.Helper()
	space := a.User
	if kernel {
		space = a.Kernel
	}
	pt, err := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem,
		Meter: &cost.Meter{Name: a.Name}, Space: space, Kernel: kernel})
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

// tableFrames returns the frames the live tables of pt occupy.
func tableFrames(pt *pgtable.PageTable) uint64 {
	var n uint64
	pt.WalkTables(func(v pgtable.TableVisit) bool {
		for _, tg := range pt.Geometry().Tables {
			if tg.Level == v.Table.Level() {
				n += 1 << tg.Order
			}
		}
		return true
	})
	return n
}

func TestGeometry(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := archFacts(a.Name)
		g := &a.Geometry
		if g.PageShift != f.pageShift || a.PageSize() != 1<<f.pageShift {
			t.Fatalf("page shift %d, want %d", g.PageShift, f.pageShift)
		}
		var entries []int
		for _, tg := range g.Tables {
			entries = append(entries, tg.Entries)
		}
		if !slices.Equal(entries, f.entries) {
			t.Fatalf("entries per table %v, want %v", entries, f.entries)
		}
		if len(g.Tables) != f.maxLevels {
			t.Fatalf("%d table levels at most, want %d", len(g.Tables), f.maxLevels)
		}
		// Every level's entries cover exactly the table below.
		for i := 1; i < len(g.Tables); i++ {
			up, t2 := g.Tables[i-1], g.Tables[i]
			if up.Size() != t2.Span() {
				t.Fatalf("%s entry maps %#x, %s table spans %#x", up.Level, up.Size(), t2.Level, t2.Span())
			}
		}
	})
}

func TestCaps(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := archFacts(a.Name)
		c := &a.Caps
		check := func(what string, got, want any) {
			t.Helper()
			switch g := got.(type) {
			case []uint64:
				if !slices.Equal(g, want.([]uint64)) {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			default:
				if got != want {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
		}
		check("HugeSizes", c.HugeSizes, f.hugeSizes)
		check("ContPTEs", c.ContPTEs, f.contPTEs)
		check("HaveMovePMD", c.HaveMovePMD, f.movePMD)
		check("HaveMovePUD", c.HaveMovePUD, f.movePUD)
		check("OptimizeVmemmap", c.OptimizeVmemmap, f.hvo)
		check("DcacheAliasing", c.DcacheAliasing, f.dcache)
		check("LiveEntriesNeedInvalidate", c.LiveEntriesNeedInvalidate, f.invalidate)
		check("GrowLevels", c.GrowLevels, f.grow)
		check("StructPageSize", c.StructPageSize, f.structPage)
		check("OldPrefaultedPTEs", c.OldPrefaultedPTEs, f.oldPrefault)
		check("HWYoung", a.Format.HWYoung, f.hwYoung)
		check("HWDirty", a.Format.HWDirty, f.hwDirty)
		check("MovePTE set", a.MovePTE != nil, f.dcache)
		var leaves []pgtable.Level
		for l := pgtable.PGD; l < pgtable.PTE; l++ {
			if a.Format.LeafLevels[l] {
				leaves = append(leaves, l)
			}
		}
		if !slices.Equal(leaves, f.leafLevels) {
			t.Errorf("leaf levels %v, want %v", leaves, f.leafLevels)
		}
		// THP at the PMD level wherever there are PMD leaves; nowhere else.
		for l := pgtable.PGD; l < pgtable.NumLevels; l++ {
			want := l == pgtable.PMD && a.Format.LeafLevels[pgtable.PMD]
			if c.THPLevels[l] != want {
				t.Errorf("THPLevels[%s] = %v", l, c.THPLevels[l])
			}
		}
		// Every huge size is a leaf size or a contiguous run of them.
		for _, s := range c.HugeSizes {
			if s&(s-1) != 0 || s <= a.PageSize() {
				t.Errorf("huge size %#x", s)
			}
		}
		if a.MaxOrder() == 0 && len(c.HugeSizes) > 0 {
			t.Error("MaxOrder 0 with huge sizes")
		}
	})
}

func TestAddressLayout(t *testing.T) {
	forEach(t, func(t *testing.T, a *arch.Arch) {
		f := archFacts(a.Name)
		if a.User.Start != 0 || a.User.End != f.userTop {
			t.Errorf("user range %#x-%#x, want 0-%#x", a.User.Start, a.User.End, f.userTop)
		}
		if a.DirectMap != f.directMap || a.Vmemmap != f.vmemmap || a.Kernel.Start != f.kernelStart {
			t.Errorf("direct map %#x vmemmap %#x kernel %#x; want %#x %#x %#x",
				a.DirectMap, a.Vmemmap, a.Kernel.Start, f.directMap, f.vmemmap, f.kernelStart)
		}
		if a.DefaultUserTop != f.defaultUpper {
			t.Errorf("DefaultUserTop %#x, want %#x", a.DefaultUserTop, f.defaultUpper)
		}
		ps := a.PageSize()
		if !a.Kernel.Contains(a.DirectMap, ps) {
			t.Errorf("direct map %#x outside the kernel range", a.DirectMap)
		}
		if a.Vmemmap != 0 && !a.Kernel.Contains(a.Vmemmap, ps) {
			t.Errorf("vmemmap %#x outside the kernel range", a.Vmemmap)
		}
		if !a.User.Contains(0, ps) || a.User.Contains(a.User.End, ps) && a.User.End != 0 {
			t.Error("user range bounds")
		}
	})
}
