package pgtable_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

var updateDumps = flag.Bool("update-dumps", false, "rewrite pgtable/testdata/*.golden from the current dumps")

// dumpFixture builds an x86-64 table with every kind of line a dump shows:
// a run of PTEs over consecutive frames, a lone PTE with other flags, two
// identical PTEs (as the zero page is mapped), a non-present PTE, a huge
// PMD leaf, and a table in a second PUD.
func dumpFixture(t *testing.T) *pgtable.PageTable {
	t.Helper()
	pt, _ := newX86(t)
	rw := pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared, Dirty: true}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const base = 0x7f00_0000_0000
	must(pt.Map(base, 16<<12, 0x1000, rw))
	must(pt.Map(base+16<<12, 1<<12, 0x2000, pgtable.MapOpts{Prot: pgtable.ProtRead}))
	for i := uint64(20); i < 22; i++ {
		p, err := pt.WalkAlloc(base+i<<12, pgtable.PTE)
		must(err)
		pt.SetPTEAt(base+i<<12, p, pt.Format().MkPTE(0x3000, pgtable.ProtRead))
	}
	p, err := pt.WalkAlloc(base+30<<12, pgtable.PTE)
	must(err)
	pt.RawSet(base+30<<12, p, 0x3000_0000) // a non-present, non-empty entry (a swap entry)
	must(pt.Map(base+2<<20, 2<<20, 0x4000, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtExec, Huge: true}))
	must(pt.Map(base+1<<30, 1<<12, 0x5000, rw))
	return pt
}

// golden compares got with testdata/name, or rewrites it with
// -update-dumps.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateDumps {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./pgtable -run Dump -update-dumps writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestDumpGolden(t *testing.T) {
	pt := dumpFixture(t)
	const base = 0x7f00_0000_0000
	tests := []struct {
		file string
		o    pgtable.DumpOptions
	}{
		{"dump_tree.golden", pgtable.DumpOptions{Title: "fixture"}},
		{"dump_tree_range.golden", pgtable.DumpOptions{Title: "fixture", Start: base + 2<<20, End: base + 1<<30 + 1}},
		{"dump_dot.golden", pgtable.DumpOptions{Format: pgtable.DumpDOT, Title: "fixture"}},
		{"dump_mermaid.golden", pgtable.DumpOptions{Format: pgtable.DumpMermaid}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := pt.Dump(&b, tc.o); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, b.String())
		})
	}
	var b bytes.Buffer
	for _, a := range []uint64{base + 5<<12 + 0x123, base + 2<<20 + 0x54321, base + 30<<12, base + 40<<12, base + 1<<39} {
		if err := pt.WriteWalk(&b, a); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "walk.golden", b.String())
	if err := pt.Dump(&b, pgtable.DumpOptions{Format: 9}); err == nil {
		t.Fatal("an unknown format was accepted")
	}
}

// TestGroups checks the grouping facts behind the tree: which entries
// form one line, and how values step.
func TestGroups(t *testing.T) {
	pt := dumpFixture(t)
	type g struct {
		level       pgtable.Level
		first, last int
		step        pgtable.Entry
		table       bool
	}
	var got []g
	pt.Groups(0, 0, func(d pgtable.DumpGroup) bool {
		got = append(got, g{d.Level, d.First, d.Last, d.Step, d.Child != nil})
		if d.End-d.Addr != uint64(d.Last-d.First+1)*pt.Geometry().Size(d.Level) {
			t.Errorf("group %+v: range %#x-%#x", d, d.Addr, d.End)
		}
		return true
	})
	want := []g{
		{pgtable.P4D, 254, 254, 0, true},
		{pgtable.PUD, 0, 0, 0, true},
		{pgtable.PMD, 0, 0, 0, true},
		{pgtable.PTE, 0, 15, 0x1000, false}, // 16 frames in a row
		{pgtable.PTE, 16, 16, 0, false},     // other flags
		{pgtable.PTE, 20, 21, 0, false},     // identical entries
		{pgtable.PTE, 30, 30, 0, false},     // not present
		{pgtable.PMD, 1, 1, 0, false},       // huge leaf
		{pgtable.PUD, 1, 1, 0, true},
		{pgtable.PMD, 0, 0, 0, true},
		{pgtable.PTE, 0, 0, 0, false},
	}
	if len(got) != len(want) {
		t.Fatalf("groups %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("group %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// Stopping early stops.
	n := 0
	pt.Groups(0, 0, func(pgtable.DumpGroup) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("visited %d after asking to stop at 3", n)
	}
}

// TestDumpAndWalkEveryArch maps a writable page and, where the arch has
// them, a huge leaf on every arch, and checks that the walk trace reaches
// the physical address Lookup gives and that the dump and Describe show
// the permissions.
func TestDumpAndWalkEveryArch(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			a, err := archs.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: a.Geometry.PageShift, MaxOrder: a.MaxOrder()})
			if err != nil {
				t.Fatal(err)
			}
			pt, err := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem,
				Meter: &cost.Meter{}, Space: a.User})
			if err != nil {
				t.Fatal(err)
			}
			base := uint64(0x10_0000_0000)
			if name == "um32" {
				base = 0x4000_0000
			}
			ps := a.PageSize()
			if err := pt.Map(base, ps, 7, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared}); err != nil {
				t.Fatal(err)
			}
			addrs := []uint64{base + ps/2 + 3}
			if a.Format.LeafLevels[pgtable.PMD] {
				pmd := a.Geometry.Size(pgtable.PMD)
				if err := pt.Map(base+pmd, pmd, phys.PFN(pmd/ps), pgtable.MapOpts{Prot: pgtable.ProtRead, Huge: true}); err != nil {
					t.Fatal(err)
				}
				addrs = append(addrs, base+pmd+pmd/2+5)
			}
			for _, addr := range addrs {
				tr, ok := pt.Lookup(addr)
				if !ok {
					t.Fatalf("%#x not mapped", addr)
				}
				var b bytes.Buffer
				if err := pt.WriteWalk(&b, addr); err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("Translates to Physical Address %#x", tr.PA(addr, a.Geometry.PageShift))
				if !strings.Contains(b.String(), want) {
					t.Fatalf("walk of %#x lacks %q:\n%s", addr, want, b.String())
				}
				arrows := strings.Count(b.String(), "\n  --> ")
				if addr != addrs[0] {
					arrows-- // the huge leaf's offset line
				}
				if arrows != len(stepsOf(pt, addr))+1 {
					t.Fatalf("walk of %#x has %d steps:\n%s", addr, arrows, b.String())
				}
			}
			var b bytes.Buffer
			if err := pt.Dump(&b, pgtable.DumpOptions{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), " rw") || len(addrs) > 1 && !strings.Contains(b.String(), " huge") {
				t.Fatalf("dump:\n%s", b.String())
			}
			// A hole faults, and the trace says at which level.
			b.Reset()
			if err := pt.WriteWalk(&b, base+3*ps); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "--> Fault (") {
				t.Fatalf("walk of a hole:\n%s", b.String())
			}
		})
	}
}

func stepsOf(pt *pgtable.PageTable, addr uint64) []pgtable.Step {
	s, _, _ := pt.WalkTrace(addr)
	return s
}

func TestDescribe(t *testing.T) {
	a, err := archs.ByName("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	f := &a.Format
	tests := []struct {
		name  string
		e     pgtable.Entry
		l     pgtable.Level
		table bool
		want  string
	}{
		{"table", 0x1067, pgtable.PMD, true, "table"},
		{"none", 0, pgtable.PTE, false, "none"},
		{"none with A/D ignored", 0x60, pgtable.PTE, false, "none"},
		{"read-only", f.MkPTE(1, pgtable.ProtRead), pgtable.PTE, false, "r-- user young"},
		{"shared writable dirty", f.MkDirty(f.MkPTE(1, pgtable.ProtRead|pgtable.ProtWrite|pgtable.ProtShared), pgtable.PTE), pgtable.PTE, false, "rw- user young dirty soft-dirty"},
		{"exec", f.MkPTE(1, pgtable.ProtRead|pgtable.ProtExec), pgtable.PTE, false, "r-x user young"},
		{"prot none", f.MkPTE(1, pgtable.ProtNone), pgtable.PTE, false, "--- prot-none young"},
		{"huge", f.MkHugeAt(pgtable.PMD, 512, pgtable.ProtRead), pgtable.PMD, false, "r-- user huge young"},
		{"kernel", f.MkKernel(1, true), pgtable.PTE, false, "rw- kernel young dirty global"},
		{"swap entry", 0x3000_0000, pgtable.PTE, false, "not-present"},
	}
	for _, tc := range tests {
		if got := f.Describe(tc.e, tc.l, tc.table); got != tc.want {
			t.Errorf("%s: Describe(%#x) = %q, want %q", tc.name, tc.e, got, tc.want)
		}
	}
}
