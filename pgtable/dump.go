package pgtable

import (
	"fmt"
	"io"
	"strings"

	"github.com/ptsim/ptsim/phys"
)

// DumpFormat selects how Dump draws the tables.
type DumpFormat uint8

// The dump formats.
const (
	// DumpTree is indented text, one line per table entry or per run of
	// entries that map alike, depth shown with dots as xv6's vmprint does
	// and runs grouped as aarch64-paging's debug output groups them.
	DumpTree DumpFormat = iota
	// DumpDOT is a Graphviz digraph: one record node per table, an edge
	// per table entry.
	DumpDOT
	// DumpMermaid is a Mermaid flowchart, same shape as DumpDOT.
	DumpMermaid
)

// DumpOptions select what Dump shows.
type DumpOptions struct {
	// Start and End bound the virtual addresses shown, [Start, End); an
	// End of 0 means the top of the address space. Tables and entries
	// that map nothing in the range are left out.
	Start, End uint64
	// Format selects the drawing.
	Format DumpFormat
	// Title names the page table in the header ("init (x86_64)").
	Title string
}

// DumpGroup is one line of a dump: a table entry, or a run of leaf
// entries (or non-present entries) that map alike: identical values, or
// values that step through consecutive frames with the same flags.
type DumpGroup struct {
	// Table is the table holding the entries; First and Last are the
	// indices of the run (equal for one entry).
	Table       *Table
	First, Last int
	// Level is the entries' level (the table's level).
	Level Level
	// Addr and End bound the virtual addresses the run maps: [Addr, End).
	Addr, End uint64
	// Entry is the value of the first entry; Step is how much each next
	// entry's value grows (0: identical entries).
	Entry, Step Entry
	// Child is the table the entry points to (single table entries only).
	Child *Table
	// Depth is the table's distance from the root.
	Depth int
}

// Describe spells an entry's meaning for dumps and walk traces: "table",
// "none", or for a leaf its permissions (r, w, x or -), user or kernel,
// and its set flags (young, dirty, special, soft-dirty, uffd-wp, global,
// cont), with "huge" for a leaf above the PTE level and "not-present" or
// "prot-none" where the MMU cannot use it. It reads only the arch's
// Format, so it serves every arch.
func (f *Format) Describe(e Entry, l Level, table bool) string {
	switch {
	case table:
		return "table"
	case f.IsNone(e, l):
		return "none"
	case l != PTE && !f.IsLeaf(e, l):
		if !f.Present(e, l) {
			return "not-present"
		}
		return "bad"
	case !f.Present(e, l):
		return "not-present"
	}
	var w []string
	if !f.Readable(e, l) {
		// PROT_NONE (NUMA hinting, mprotect none): present to the kernel,
		// unusable by the MMU; its other permission bits mean nothing
		// (x86's PROTNONE even aliases GLOBAL).
		w = append(w, "---", "prot-none")
		if l != PTE {
			w = append(w, "huge")
		}
		for _, fl := range []struct {
			on   bool
			name string
		}{{f.Young(e, l), "young"}, {f.Dirty(e, l), "dirty"}, {f.Special(e, l), "special"},
			{f.SoftDirty(e, l), "soft-dirty"}, {f.UffdWP(e, l), "uffd-wp"}} {
			if fl.on {
				w = append(w, fl.name)
			}
		}
		return strings.Join(w, " ")
	}
	perm := []byte("r--")
	if f.Write(e, l) {
		perm[1] = 'w'
	}
	if f.Exec(e, l) {
		perm[2] = 'x'
	}
	w = append(w, string(perm))
	if f.User(e, l) {
		w = append(w, "user")
	} else {
		w = append(w, "kernel")
	}
	if l != PTE {
		w = append(w, "huge")
	}
	for _, fl := range []struct {
		on   bool
		name string
	}{
		{f.Young(e, l), "young"}, {f.Dirty(e, l), "dirty"}, {f.Special(e, l), "special"},
		{f.SoftDirty(e, l), "soft-dirty"}, {f.UffdWP(e, l), "uffd-wp"},
		{e&f.bits(l).Global != 0, "global"}, {f.Cont(e, l), "cont"},
	} {
		if fl.on {
			w = append(w, fl.name)
		}
	}
	return strings.Join(w, " ")
}

// Groups calls fn for every table entry and every run of alike leaf
// entries that maps part of [start, end) (end 0: the top), in address
// order, parents before children; empty entries are skipped. It counts
// nothing.
func (pt *PageTable) Groups(start, end uint64, fn func(DumpGroup) bool) {
	if fn == nil {
		return
	}
	pt.groups(pt.root, pt.rootBase(), 0, start, end, fn)
}

func (pt *PageTable) groups(t *Table, base uint64, depth int, start, end uint64, fn func(DumpGroup) bool) bool {
	size := pt.geo.Tables[t.geo].Size()
	overlaps := func(i int) bool {
		a := base + uint64(i)*size
		return a+size-1 >= start && (end == 0 || a < end)
	}
	for i := 0; i < len(t.entries); i++ {
		e := t.entries[i]
		if !overlaps(i) || (t.Child(i) == nil && pt.fmt.IsNone(e, t.level)) {
			continue
		}
		g := DumpGroup{Table: t, First: i, Last: i, Level: t.level, Addr: base + uint64(i)*size,
			Entry: e, Depth: depth}
		if c := t.Child(i); c != nil {
			g.Child = c
			g.End = g.Addr + size
			if !fn(g) || !pt.groups(c, g.Addr, depth+1, start, end, fn) {
				return false
			}
			continue
		}
		// Extend the run while the next entries map alike: identical
		// values, or values stepping through consecutive frames.
		step := Entry(0)
		if i+1 < len(t.entries) && t.entries[i+1] != e {
			step = pt.leafStep(e, t.level, size)
		}
		j := i + 1
		for ; j < len(t.entries) && overlaps(j) && t.Child(j) == nil && t.entries[j] == e+Entry(uint64(j-i))*step; j++ {
		}
		g.Last, g.Step = j-1, step
		if g.Last == g.First {
			g.Step = 0
		}
		g.End = base + uint64(g.Last+1)*size
		if !fn(g) {
			return false
		}
		i = g.Last
	}
	return true
}

// leafStep returns how much a present leaf's value grows from one entry
// to the next when consecutive entries map consecutive memory, or 0.
func (pt *PageTable) leafStep(e Entry, l Level, size uint64) Entry {
	if !pt.fmt.Present(e, l) || !pt.fmt.IsLeaf(e, l) {
		return 0
	}
	n := pt.fmt.AdvancePFN(e, l, size>>pt.fmt.PageShift)
	if n <= e {
		return 0
	}
	return n - e
}

// Dump writes the page tables that map part of [o.Start, o.End) in the
// format o.Format selects. It counts nothing and returns w's first error.
func (pt *PageTable) Dump(w io.Writer, o DumpOptions) error {
	var b strings.Builder
	switch o.Format {
	case DumpTree:
		pt.dumpTree(&b, o)
	case DumpDOT:
		pt.dumpGraph(&b, o, dotSyntax)
	case DumpMermaid:
		pt.dumpGraph(&b, o, mermaidSyntax)
	default:
		return fmt.Errorf("pgtable: dump format %d: %w", o.Format, EINVAL)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// rangeText spells [start, end) for a header ("" for everything).
func rangeText(o DumpOptions) string {
	if o.Start == 0 && o.End == 0 {
		return ""
	}
	if o.End == 0 {
		return fmt.Sprintf(" for %#x-top", o.Start)
	}
	return fmt.Sprintf(" for %#x-%#x", o.Start, o.End)
}

// groupText is a run's description without its depth: index range,
// virtual range, value, meaning and target.
func (pt *PageTable) groupText(g DumpGroup) string {
	idx := fmt.Sprintf("[%d]", g.First)
	if g.Last != g.First {
		idx = fmt.Sprintf("[%d-%d]", g.First, g.Last)
	}
	s := fmt.Sprintf("%s %s %#x-%#x %#016x", idx, g.Level, g.Addr, g.End-1, uint64(g.Entry))
	if g.Step != 0 {
		s += fmt.Sprintf(" +%#x each", uint64(g.Step))
	}
	s += " " + pt.fmt.Describe(g.Entry, g.Level, g.Child != nil)
	switch {
	case g.Child != nil:
		s += fmt.Sprintf(" -> %s table pfn %#x", g.Child.level, g.Child.pfn)
	case pt.fmt.Present(g.Entry, g.Level) && pt.fmt.IsLeaf(g.Entry, g.Level):
		first := pt.fmt.PFN(g.Entry, g.Level)
		last := first
		if g.Step != 0 || g.Last == g.First {
			lastEntry := g.Entry + Entry(uint64(g.Last-g.First))*g.Step
			last = pt.fmt.PFN(lastEntry, g.Level) + phys.PFN(pt.geo.Size(g.Level)>>pt.fmt.PageShift) - 1
		}
		if last == first {
			s += fmt.Sprintf(" pfn %#x", first)
		} else {
			s += fmt.Sprintf(" pfn %#x-%#x", first, last)
		}
	}
	return s
}

// header is the first line of a dump.
func (pt *PageTable) header(o DumpOptions) string {
	title := o.Title
	if title == "" {
		title = "page table"
	}
	return fmt.Sprintf("%s: %d levels, root %s table pfn %#x%s", title, pt.Levels(), pt.root.level, pt.root.pfn, rangeText(o))
}

func (pt *PageTable) dumpTree(b *strings.Builder, o DumpOptions) {
	b.WriteString(pt.header(o))
	b.WriteString(" (empty entries not shown)\n")
	pt.Groups(o.Start, o.End, func(g DumpGroup) bool {
		b.WriteString(strings.Repeat(" ..", g.Depth+1))
		b.WriteByte(' ')
		b.WriteString(pt.groupText(g))
		b.WriteByte('\n')
		return true
	})
}

// graphSyntax spells the pieces of a graph format.
type graphSyntax struct {
	begin, end func(title string) string
	// node writes a table with its entry lines; edge links entry idx of
	// table from to table to.
	node func(id, title string, lines []string, ports []string) string
	edge func(from, port, to, label string) string
}

var dotSyntax = graphSyntax{
	begin: func(title string) string {
		return "digraph pagetables {\n  label=" + dotQuote(title) + ";\n  labelloc=t;\n  rankdir=LR;\n" +
			"  node [shape=record, fontname=\"monospace\", fontsize=10];\n"
	},
	end: func(string) string { return "}\n" },
	node: func(id, title string, lines, ports []string) string {
		fields := []string{dotEscape(title)}
		for i, l := range lines {
			fields = append(fields, "<"+ports[i]+"> "+dotEscape(l))
		}
		// With rankdir=LR, top-level record fields stack vertically.
		return "  " + id + " [label=\"" + strings.Join(fields, "|") + "\"];\n"
	},
	edge: func(from, port, to, label string) string {
		return "  " + from + ":" + port + " -> " + to + ";\n"
	},
}

var mermaidSyntax = graphSyntax{
	begin: func(title string) string {
		return "---\ntitle: " + mermaidEscape(title) + "\n---\nflowchart LR\n"
	},
	end: func(string) string { return "" },
	node: func(id, title string, lines, ports []string) string {
		parts := []string{"<b>" + mermaidEscape(title) + "</b>"}
		for _, l := range lines {
			parts = append(parts, mermaidEscape(l))
		}
		return "  " + id + "[\"" + strings.Join(parts, "<br/>") + "\"]\n"
	},
	edge: func(from, port, to, label string) string {
		return "  " + from + " -->|" + mermaidEscape(label) + "| " + to + "\n"
	},
}

// dotEscape escapes a record label's special characters.
func dotEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "{", `\{`, "}", `\}`, "|", `\|`, "<", `\<`, ">", `\>`)
	return r.Replace(s)
}

func dotQuote(s string) string {
	return "\"" + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + "\""
}

// mermaidEscape replaces the characters Mermaid labels cannot hold.
func mermaidEscape(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "|", "#124;")
	return r.Replace(s)
}

// dumpGraph draws the tables as nodes, in address order, with an edge
// from each table entry to the table below it.
func (pt *PageTable) dumpGraph(b *strings.Builder, o DumpOptions, syn graphSyntax) {
	title := pt.header(o)
	b.WriteString(syn.begin(title))
	type node struct {
		t     *Table
		lines []string
		ports []string
	}
	var nodes []*node
	var edges []string
	byTable := map[*Table]*node{}
	get := func(t *Table) *node {
		n := byTable[t]
		if n == nil {
			n = &node{t: t}
			byTable[t] = n
			nodes = append(nodes, n)
		}
		return n
	}
	id := func(t *Table) string { return fmt.Sprintf("t%x", uint64(t.pfn)) }
	get(pt.root)
	pt.Groups(o.Start, o.End, func(g DumpGroup) bool {
		n := get(g.Table)
		port := fmt.Sprintf("e%d", g.First)
		n.lines = append(n.lines, pt.groupText(g))
		n.ports = append(n.ports, port)
		if g.Child != nil {
			get(g.Child)
			label := fmt.Sprintf("%d", g.First)
			edges = append(edges, syn.edge(id(g.Table), port, id(g.Child), label))
		}
		return true
	})
	for _, n := range nodes {
		b.WriteString(syn.node(id(n.t), fmt.Sprintf("%s table pfn %#x", n.t.level, n.t.pfn), n.lines, n.ports))
	}
	for _, e := range edges {
		b.WriteString(e)
	}
	b.WriteString(syn.end(title))
}

// WriteWalk writes the walk of addr from the root in the manner of a
// worked textbook answer (OSTEP's paging exercises): the index addr
// selects at every level, the entry found there, the next table, and the
// physical address reached or where the walk faults. It counts nothing
// and returns w's first error.
func (pt *PageTable) WriteWalk(w io.Writer, addr uint64) error {
	var b strings.Builder
	steps, pa, ok := pt.WalkTrace(addr)
	// The split of the address as the MMU computes it: an index per
	// table level from the root, then the offset in the page.
	var split []string
	for _, tg := range pt.geo.Tables[pt.top:] {
		split = append(split, fmt.Sprintf("%s %d", tg.Level, (addr>>tg.Shift)&uint64(tg.Entries-1)))
	}
	last := steps[len(steps)-1]
	fmt.Fprintf(&b, "Virtual Address %#x: %s, offset %#x\n", addr, strings.Join(split, ", "), addr&(pt.geo.PageSize()-1))
	for _, s := range steps {
		fmt.Fprintf(&b, "  --> %s index %#x [decimal %d] in table pfn %#x: contents %#016x", s.Level, s.Index, s.Index, s.TablePFN, uint64(s.Entry))
		switch s.Kind {
		case "table":
			fmt.Fprintf(&b, " (table) --> next table pfn %#x\n", s.Next)
		case "leaf":
			fmt.Fprintf(&b, " (leaf: pfn %#x, %s)\n", pt.fmt.PFN(s.Entry, s.Level), pt.fmt.Describe(s.Entry, s.Level, false))
		default:
			fmt.Fprintf(&b, " (%s)\n", s.Kind)
		}
	}
	if ok {
		if last.Level != PTE {
			fmt.Fprintf(&b, "  --> %s leaf maps %#x bytes: offset %#x in it\n", last.Level, pt.geo.Size(last.Level), addr&(pt.geo.Size(last.Level)-1))
		}
		fmt.Fprintf(&b, "  --> Translates to Physical Address %#x\n", pa)
	} else {
		fmt.Fprintf(&b, "  --> Fault (%s entry %s)\n", last.Level, last.Kind)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
