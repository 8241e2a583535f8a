package tlb

import (
	"fmt"
	"sort"

	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// Stale is a cached translation that the page tables no longer give.
type Stale struct {
	// CPU is the CPU whose TLB or walk cache holds the entry.
	CPU int
	// Context names the address space the entry belongs to.
	Context string
	// VA is the first address of the entry (of the table span for a
	// walk-cache entry).
	VA uint64
	// Cached is the entry. For a walk-cache entry: Level is the level
	// whose entries the cached table holds, PFN the table's frame and
	// Shift the span it maps.
	Cached Entry
	// WalkCache is set for a walk-cache entry.
	WalkCache bool
	// Reason says what changed: "unmapped", "pfn 0x12 -> 0x34",
	// "write permission revoked", "pte table pfn 0x56 freed"...
	Reason string
}

// String formats the report as one line.
func (s Stale) String() string {
	what := "tlb " + s.Cached.String()
	if s.WalkCache {
		what = fmt.Sprintf("walk cache %s table pfn %#x for %#x+%s", s.Cached.Level, s.Cached.PFN, s.VA, sizeName(s.Cached.Shift))
	}
	return fmt.Sprintf("cpu%d %s va %#x: stale %s: %s", s.CPU, s.Context, s.VA, what, s.Reason)
}

// Validate audits every CPU's TLB and walk cache against the page tables
// and returns every stale entry, sorted by CPU, context, address. Entries
// the policy says a CPU cannot reach (an x86 PCID slot behind its
// mm's tlb_gen, flushed on the next switch) are not stale. It counts
// nothing and changes nothing.
func (s *System) Validate() []Stale {
	var out []Stale
	for _, c := range s.cpus {
		for i := range c.tlb {
			e := &c.tlb[i]
			if !c.alive(e) {
				continue
			}
			ctx := s.ctxs[e.asid]
			if ctx == nil {
				continue
			}
			va := e.va()
			if e.flags&slotGlobal == 0 && !s.policy.Reachable(s, c, ctx, va) {
				continue
			}
			ce := e.entry()
			if r := checkEntry(ctx, ce); r != "" {
				out = append(out, Stale{CPU: c.id, Context: ctx.name, VA: va, Cached: ce, Reason: r})
			}
		}
		for i := range c.walk {
			w := &c.walk[i]
			if !c.walkAlive(w) {
				continue
			}
			ctx := s.ctxs[w.asid]
			if ctx == nil {
				continue
			}
			sh := ctx.SpanShift(w.level)
			va := w.tag << sh
			if !s.policy.Reachable(s, c, ctx, va) {
				continue
			}
			if r := checkWalk(ctx, va, w.level, w.table); r != "" {
				out = append(out, Stale{CPU: c.id, Context: ctx.name, VA: va, WalkCache: true, Reason: r,
					Cached: Entry{VA: va, Shift: uint8(sh), PFN: w.table.PFN(), Level: w.level}})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.CPU != b.CPU:
			return a.CPU < b.CPU
		case a.Context != b.Context:
			return a.Context < b.Context
		case a.VA != b.VA:
			return a.VA < b.VA
		case a.WalkCache != b.WalkCache:
			return !a.WalkCache
		default:
			return a.Cached.Shift < b.Cached.Shift
		}
	})
	return out
}

// checkEntry compares a cached translation with the tables and returns
// what changed, or "".
func checkEntry(ctx *Context, e Entry) string {
	pt := ctx.pt
	if pt == nil {
		return "no page table"
	}
	f := pt.Format()
	ps := pt.Geometry().PageShift
	tr, ok := pt.Lookup(e.VA)
	if !ok {
		return "unmapped"
	}
	if tr.Size >= e.Size() {
		return checkLeaf(f, tr.Entry, tr.Level, tr.PFN, e.PFN, e.Perm)
	}
	// The cached entry is larger than the leaf that maps its first page
	// (a split, or an arm64 contiguous block): every leaf inside must
	// give the same translation.
	end := e.VA + e.Size()
	covered := e.VA
	reason := ""
	// A contiguous block is dirty when any of its entries is: the MMU
	// records the block's dirty state in one entry (the one it walked),
	// and Linux reads the block's bits ORed (contpte_ptep_get).
	perm, blockDirty := e.Perm, true
	if e.Cont && perm&PermDirty != 0 {
		perm &^= PermDirty
		blockDirty = false
	}
	pt.Leaves(e.VA, end, func(l pgtable.Leaf) bool {
		if l.Addr > covered {
			reason = fmt.Sprintf("unmapped at %#x", covered)
			return false
		}
		a := max(l.Addr, e.VA)
		if !f.Present(l.Entry, l.Level) {
			reason = fmt.Sprintf("unmapped at %#x", a)
			return false
		}
		pfn := f.PFN(l.Entry, l.Level) + phys.PFN((a-l.Addr)>>ps)
		blockDirty = blockDirty || f.Dirty(l.Entry, l.Level)
		if r := checkLeaf(f, l.Entry, l.Level, pfn, e.Frame(a, ps), perm); r != "" {
			if a != e.VA {
				r += fmt.Sprintf(" at %#x", a)
			}
			reason = r
			return false
		}
		covered = l.Addr + l.Size
		return true
	})
	if reason == "" && covered < end {
		reason = fmt.Sprintf("unmapped at %#x", covered)
	}
	if reason == "" && !blockDirty {
		reason = "dirty bit cleared in every entry of the block"
	}
	return reason
}

// checkLeaf compares a leaf of the tables (giving frame pfn for the
// address checked) with a cached frame and permissions.
func checkLeaf(f *pgtable.Format, le pgtable.Entry, l pgtable.Level, pfn, cached phys.PFN, perm Perm) string {
	if !f.Present(le, l) {
		return "unmapped"
	}
	var rs []string
	if pfn != cached {
		rs = append(rs, fmt.Sprintf("pfn %#x -> %#x", cached, pfn))
	}
	if perm&PermRead != 0 && !f.Readable(le, l) {
		rs = append(rs, "read permission revoked")
	}
	if perm&PermWrite != 0 && !f.Write(le, l) {
		rs = append(rs, "write permission revoked")
	}
	if perm&PermExec != 0 && !f.Exec(le, l) {
		rs = append(rs, "exec permission revoked")
	}
	if perm&PermUser != 0 && !f.User(le, l) {
		rs = append(rs, "user access revoked")
	}
	if perm&PermDirty != 0 && !f.Dirty(le, l) {
		rs = append(rs, "dirty bit cleared")
	}
	return joinReasons(rs)
}

// TableFor returns the table of pt that holds level-l entries for va, or
// nil when the walk stops above it (or pt is nil). It counts nothing.
func TableFor(pt *pgtable.PageTable, va uint64, l pgtable.Level) *pgtable.Table {
	if pt == nil {
		return nil
	}
	t := pt.Root()
	for l > t.Level() {
		c := t.Child(pt.IndexOf(t, va))
		if c == nil {
			return nil
		}
		t = c
	}
	return t
}

// checkWalk compares a walk-cache entry with the tables.
func checkWalk(ctx *Context, va uint64, l pgtable.Level, t *pgtable.Table) string {
	name := fmt.Sprintf("%s table pfn %#x", t.Level(), t.PFN())
	if t.Freed() {
		return name + " freed"
	}
	if ctx.pt == nil {
		return "no page table"
	}
	now := TableFor(ctx.pt, va, l)
	switch {
	case now == nil:
		return name + " unlinked"
	case now != t:
		return fmt.Sprintf("%s -> %#x", name, now.PFN())
	}
	return ""
}

// Violation is a page-table write that broke an architecture's rule for
// changing live entries.
type Violation struct {
	// Context names the address space.
	Context string
	// VA is the address the entry maps.
	VA uint64
	// Level is the entry's level.
	Level pgtable.Level
	// Reason says which rule was broken and how.
	Reason string
}

// String formats the violation as one line.
func (v Violation) String() string {
	return fmt.Sprintf("%s %s %#x: %s", v.Context, v.Level, v.VA, v.Reason)
}

// AddViolation records v (policies call it from their write checks).
func (s *System) AddViolation(v Violation) { s.violations = append(s.violations, v) }

// Violations returns the violations recorded since the last call and
// forgets them.
func (s *System) Violations() []Violation {
	v := s.violations
	s.violations = nil
	return v
}

// entryKind classifies an entry for the live-entry rules.
type entryKind uint8

const (
	kindNone    entryKind = iota // empty
	kindInvalid                  // not usable by the MMU (swap, PROT_NONE, invalid step)
	kindLeaf                     // a valid leaf
	kindTable                    // a valid table entry
)

// classify returns the kind of entry e at level l.
func classify(f *pgtable.Format, e pgtable.Entry, l pgtable.Level) entryKind {
	switch {
	case f.IsNone(e, l):
		return kindNone
	case l != pgtable.PTE && f.Present(e, l) && !f.IsLeaf(e, l):
		return kindTable
	case f.Present(e, l) && f.HWValidBits(e, l):
		return kindLeaf
	}
	return kindInvalid
}

// CheckBreakBeforeMake records a Violation when a write of ctx's entry p
// (mapping addr) from old to new breaks arm64's break-before-make rule:
// a valid entry's output address, contiguous bit, or block-versus-table
// kind changed without first writing an invalid entry; or a valid entry
// was written over an invalid one while some CPU still caches a
// different translation (no TLB flush between the invalid step and the
// new entry). Permission-only changes are allowed. With bbml2 (BBML2
// without conflict aborts), changes of size and of the contiguous bit
// that keep the output address need no break. Nothing is checked while
// the audit is off (SetAudit).
func (s *System) CheckBreakBeforeMake(ctx *Context, addr uint64, p pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind, bbml2 bool) {
	if s.noAudit || ctx == nil || ctx.pt == nil || !p.Valid() {
		return
	}
	f := ctx.pt.Format()
	l := p.Level()
	ko, kn := classify(f, old, l), classify(f, new, l)
	bad := func(format string, args ...any) {
		s.AddViolation(Violation{Context: ctx.name, VA: addr, Level: l,
			Reason: "break-before-make: " + fmt.Sprintf(format, args...)})
	}
	switch {
	case (ko == kindLeaf || ko == kindTable) && (kn == kindLeaf || kn == kindTable):
		switch {
		case ko != kn:
			if !bbml2 {
				what := map[entryKind]string{kindLeaf: "block", kindTable: "table"}
				bad("live %s entry replaced by a %s entry", what[ko], what[kn])
			}
		case ko == kindTable:
			if a, b := f.TablePFN(old), f.TablePFN(new); a != b {
				bad("live table entry repointed from pfn %#x to %#x", a, b)
			}
		default:
			if a, b := f.PFN(old, l), f.PFN(new, l); a != b {
				bad("live entry's output address changed from pfn %#x to %#x", a, b)
			} else if f.Cont(old, l) != f.Cont(new, l) && !bbml2 {
				bad("live entry's contiguous bit changed")
			}
		}
	case kn == kindLeaf:
		pfn := f.PFN(new, l)
		for _, c := range s.cpus {
			if c.live == 0 || (c.liveGlobal == 0 && *c.asidLive(ctx.asid) == 0) {
				continue
			}
			e := c.probe(ctx.asid, addr)
			if e == nil || (e.flags&slotGlobal == 0 && !s.policy.Reachable(s, c, ctx, addr)) {
				continue
			}
			ce := e.entry()
			if ce.Frame(addr, s.pageShift) != pfn {
				bad("cpu%d still caches pfn %#x for the address (no flush after the invalid step)", c.id, ce.Frame(addr, s.pageShift))
				return
			}
			if ce.Cont != f.Cont(new, l) && !bbml2 {
				bad("cpu%d still caches the entry with the contiguous bit %v (no flush after the invalid step)", c.id, ce.Cont)
				return
			}
		}
	case kn == kindTable:
		child := p.Child()
		if child == nil {
			return
		}
		for _, c := range s.cpus {
			t, ok := c.WalkCacheProbe(ctx, addr, child.Level())
			if ok && t != child && s.policy.Reachable(s, c, ctx, addr) {
				bad("cpu%d still caches %s table pfn %#x for the address (no flush after the invalid step)", c.id, t.Level(), t.PFN())
				return
			}
		}
	}
}

// CheckLiveStore records a Violation when a plain store changes a valid
// leaf entry of ctx (s390: a live entry may only be changed by an
// invalidating exchange, IPTE for a PTE, IDTE for a segment or region
// entry). Table entries are not checked: s390 clears emptied table
// entries with plain stores and purges them with the mm flush that
// follows. Nothing is checked while the audit is off (SetAudit).
func (s *System) CheckLiveStore(ctx *Context, addr uint64, p pgtable.Ptr, old, new pgtable.Entry, kind pgtable.WriteKind) {
	if s.noAudit || ctx == nil || ctx.pt == nil || !p.Valid() || kind != pgtable.WritePlain || old == new {
		return
	}
	f := ctx.pt.Format()
	l := p.Level()
	if classify(f, old, l) != kindLeaf {
		return
	}
	insn := "IDTE"
	if l == pgtable.PTE {
		insn = "IPTE"
	}
	s.AddViolation(Violation{Context: ctx.name, VA: addr, Level: l,
		Reason: fmt.Sprintf("plain store over a live %s entry (needs %s)", l, insn)})
}
