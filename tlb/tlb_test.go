package tlb_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/tlb"
)

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  tlb.Config
	}{
		{"no CPUs", tlb.Config{CPUs: 0}},
		{"negative CPUs", tlb.Config{CPUs: -1}},
		{"too many CPUs", tlb.Config{CPUs: tlb.MaxCPUs + 1}},
		{"ways without entries", tlb.Config{CPUs: 1, Ways: 4}},
		{"entries not a multiple of ways", tlb.Config{CPUs: 1, Entries: 10, Ways: 4}},
		{"sets not a power of two", tlb.Config{CPUs: 1, Entries: 12, Ways: 4}},
		{"more ways than entries", tlb.Config{CPUs: 1, Entries: 4, Ways: 8}},
		{"negative walk cache", tlb.Config{CPUs: 1, WalkCacheEntries: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := tlb.New(c.cfg); !errors.Is(err, tlb.EINVAL) {
				t.Fatalf("New(%+v) = %v, want EINVAL", c.cfg, err)
			}
		})
	}
	s, err := tlb.New(tlb.Config{CPUs: 256})
	if err != nil || s.CPUs() != 256 || s.CPU(255).ID() != 255 || s.CPU(256) != nil {
		t.Fatalf("256 CPUs: %v", err)
	}
	if err := s.SetLocalCPU(256); !errors.Is(err, tlb.EINVAL) {
		t.Fatalf("SetLocalCPU(256) = %v", err)
	}
}

// TestPageSizesCoexist: 4K, 2M and 1G entries live side by side; a lookup
// anywhere inside a 2M or 1G entry hits it; a 4K entry inside a 2M range
// is found first.
func TestPageSizesCoexist(t *testing.T) {
	e := newEnv(t, tlb.Config{})
	_, ctx := e.mm("mm", false)
	c := e.sys.CPU(0)
	const (
		va4k = userVA
		va2m = userVA + 1<<30
		va1g = userVA + 4<<30
	)
	c.Insert(ctx, tlb.Entry{VA: va4k, Shift: 12, PFN: 0x100, Perm: tlb.PermRead, Level: pgtable.PTE})
	c.Insert(ctx, tlb.Entry{VA: va2m, Shift: 21, PFN: 0x200, Perm: tlb.PermRead, Level: pgtable.PMD})
	c.Insert(ctx, tlb.Entry{VA: va1g, Shift: 30, PFN: 0x40000, Perm: tlb.PermRead, Level: pgtable.PUD})
	cases := []struct {
		va        uint64
		hit       bool
		shift     uint8
		wantFrame phys.PFN
	}{
		{va4k, true, 12, 0x100},
		{va4k + 0xfff, true, 12, 0x100},
		{va4k + page, false, 0, 0},
		{va2m, true, 21, 0x200},
		{va2m + 0x1234, true, 21, 0x201},
		{va2m + pmdSize - 1, true, 21, 0x3ff},
		{va2m + pmdSize, false, 0, 0},
		{va1g + 0x12345678, true, 30, 0x40000 + 0x12345},
		{va1g + 1<<30, false, 0, 0},
	}
	for _, cs := range cases {
		en, ok := c.Lookup(ctx, cs.va)
		if ok != cs.hit || (ok && (en.Shift != cs.shift || en.Frame(cs.va, 12) != cs.wantFrame)) {
			t.Errorf("Lookup(%#x) = %v %v, want hit=%v shift %d frame %#x", cs.va, en, ok, cs.hit, cs.shift, cs.wantFrame)
		}
	}
	// A 4K entry inside the 2M range wins over the 2M entry.
	c.Insert(ctx, tlb.Entry{VA: va2m + 5*page, Shift: 12, PFN: 0x999, Perm: tlb.PermRead, Level: pgtable.PTE})
	if en, _ := c.Lookup(ctx, va2m+5*page); en.Shift != 12 || en.PFN != 0x999 {
		t.Errorf("4K inside 2M: %v", en)
	}
	m := ctx.Meter()
	if h, mi, f := m.Count(cost.TLBHits), m.Count(cost.TLBMisses), m.Count(cost.TLBFills); h != 7 || mi != 3 || f != 4 {
		t.Errorf("hits %d misses %d fills %d, want 7 3 4", h, mi, f)
	}
	if c.Live() != 4 || c.LiveFor(ctx) != 4 {
		t.Errorf("live %d / %d, want 4", c.Live(), c.LiveFor(ctx))
	}
}

// TestCapacityAndAssociativity: a 2-way TLB of 4 sets holds two entries
// per set; a third evicts the least recently used; the whole TLB holds
// exactly Entries entries.
func TestCapacityAndAssociativity(t *testing.T) {
	e := newEnv(t, tlb.Config{Entries: 8, Ways: 2})
	_, ctx := e.mm("mm", false)
	c := e.sys.CPU(0)
	at := func(pn uint64) uint64 { return userVA + pn*page }
	ins := func(pn uint64) {
		c.Insert(ctx, tlb.Entry{VA: at(pn), Shift: 12, PFN: phys.PFN(pn), Perm: tlb.PermRead})
	}
	hit := func(pn uint64) bool { _, ok := c.Lookup(ctx, at(pn)); return ok }
	// Pages 0, 4 and 8 share set 0.
	ins(0)
	ins(4)
	if !hit(0) || !hit(4) {
		t.Fatal("two ways do not hold two entries")
	}
	hit(0) // 4 becomes the least recently used
	ins(8)
	if !hit(0) || hit(4) || !hit(8) {
		t.Fatalf("LRU: 0 %v 4 %v 8 %v, want true false true", hit(0), hit(4), hit(8))
	}
	// Re-inserting an entry replaces it in place.
	c.Insert(ctx, tlb.Entry{VA: at(8), Shift: 12, PFN: 0x88, Perm: tlb.PermRead})
	if en, _ := c.Lookup(ctx, at(8)); en.PFN != 0x88 || c.Live() != 2 {
		t.Fatalf("replace in place: %v, live %d", en, c.Live())
	}

	// Capacity: 8 distinct pages fill every way of every set.
	e2 := newEnv(t, tlb.Config{Entries: 8, Ways: 2})
	_, ctx2 := e2.mm("mm", false)
	c2 := e2.sys.CPU(0)
	for pn := uint64(0); pn < 8; pn++ {
		c2.Insert(ctx2, tlb.Entry{VA: at(pn), Shift: 12, PFN: phys.PFN(pn), Perm: tlb.PermRead})
	}
	for pn := uint64(0); pn < 8; pn++ {
		if _, ok := c2.Lookup(ctx2, at(pn)); !ok {
			t.Fatalf("page %d missing with the TLB exactly full", pn)
		}
	}
	c2.Insert(ctx2, tlb.Entry{VA: at(8), Shift: 12, PFN: 8, Perm: tlb.PermRead})
	if c2.Live() != 8 {
		t.Fatalf("live %d, want 8", c2.Live())
	}
	if _, ok := c2.Lookup(ctx2, at(0)); ok {
		t.Fatal("page 0, the LRU of set 0, survived a ninth entry")
	}
}

// refLRU is a reference model: each set a list, most recent last.
type refLRU struct {
	sets [][]uint64
	ways int
}

func (r *refLRU) lookup(pn uint64) bool {
	s := &r.sets[pn%uint64(len(r.sets))]
	i := slices.Index(*s, pn)
	if i < 0 {
		return false
	}
	*s = append(slices.Delete(*s, i, i+1), pn)
	return true
}

func (r *refLRU) insert(pn uint64) {
	s := &r.sets[pn%uint64(len(r.sets))]
	if i := slices.Index(*s, pn); i >= 0 {
		*s = slices.Delete(*s, i, i+1)
	} else if len(*s) == r.ways {
		*s = (*s)[1:]
	}
	*s = append(*s, pn)
}

// TestLRUMatchesReference: a random run of lookups and fills gives exactly
// the hits of a textbook set-associative LRU, and the same run twice
// gives the same result.
func TestLRUMatchesReference(t *testing.T) {
	run := func() []bool {
		e := newEnv(t, tlb.Config{Entries: 64, Ways: 4})
		_, ctx := e.mm("mm", false)
		c := e.sys.CPU(0)
		ref := &refLRU{sets: make([][]uint64, 16), ways: 4}
		rng := rand.New(rand.NewPCG(1, 2))
		var out []bool
		for i := 0; i < 20000; i++ {
			pn := rng.Uint64N(200)
			_, ok := c.Lookup(ctx, userVA+pn*page)
			if want := ref.lookup(pn); ok != want {
				t.Fatalf("step %d page %d: hit %v, reference %v", i, pn, ok, want)
			}
			if !ok {
				c.Insert(ctx, tlb.Entry{VA: userVA + pn*page, Shift: 12, PFN: phys.PFN(pn), Perm: tlb.PermRead})
				ref.insert(pn)
			}
			out = append(out, ok)
		}
		return out
	}
	if a, b := run(), run(); !slices.Equal(a, b) {
		t.Fatal("two identical runs differ")
	}
}

// TestGlobalEntries: a kernel (global) entry is seen from every context,
// survives flushes by ASID, and goes with flush_tlb_all.
func TestGlobalEntries(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 2})
	kpt, kctx := e.mm("kernel", true)
	_, uctx := e.mm("user", false)
	if e.sys.KernelContext() != kctx {
		t.Fatal("kernel context not recorded")
	}
	if err := kpt.Map(kernelVA, page, 0x50, pgtable.MapOpts{Kernel: true, Prot: pgtable.ProtWrite}); err != nil {
		t.Fatal(err)
	}
	c := e.sys.CPU(1)
	en := fill(t, c, kctx, kernelVA, false)
	if en.Perm&tlb.PermGlobal == 0 {
		t.Fatalf("kernel entry not global: %v", en)
	}
	if _, ok := c.Lookup(uctx, kernelVA); !ok {
		t.Fatal("user context does not see the global entry")
	}
	if n := c.DropASID(nil, uctx) + c.DropASID(nil, kctx); n != 0 {
		t.Fatalf("DropASID dropped %d global entries", n)
	}
	if _, ok := c.Lookup(uctx, kernelVA); !ok {
		t.Fatal("global entry lost to a flush by ASID")
	}
	e.sys.FlushTLBAll()
	if _, ok := c.Lookup(uctx, kernelVA); ok {
		t.Fatal("global entry survived flush_tlb_all")
	}
	if e.km.Count(cost.TLBFlushAll) != 1 || e.km.Count(cost.TLBInvalidated) != 1 {
		t.Fatalf("kernel meter: flush_all %d invalidated %d", e.km.Count(cost.TLBFlushAll), e.km.Count(cost.TLBInvalidated))
	}
	mustClean(t, e.sys)
}

// TestFlushesAreO1: flushes of everything and of an ASID use generations:
// 512 of each cost no pass over the TLB, and the counts stay exact.
func TestFlushesAreO1(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 2})
	_, ctx := e.mm("mm", false)
	_, other := e.mm("other", false)
	c := e.sys.CPU(0)
	for i := uint64(0); i < 1000; i++ {
		c.Insert(ctx, tlb.Entry{VA: userVA + i*page, Shift: 12, PFN: phys.PFN(i), Perm: tlb.PermRead})
	}
	c.Insert(other, tlb.Entry{VA: userVA, Shift: 12, PFN: 1, Perm: tlb.PermRead})
	if n := c.DropASID(ctx.Meter(), ctx); n != 1000 || c.Live() != 1 || c.LiveFor(ctx) != 0 || c.LiveFor(other) != 1 {
		t.Fatalf("DropASID: %d dropped, live %d, other %d", n, c.Live(), c.LiveFor(other))
	}
	if got := ctx.Meter().Count(cost.TLBInvalidated); got != 1000 {
		t.Fatalf("tlb_invalidated %d", got)
	}
	total := 0
	for i := 0; i < 512; i++ {
		total += c.DropAll(nil)
		total += c.DropASID(nil, ctx)
	}
	if total != 1 || c.Live() != 0 || c.LiveFor(other) != 0 {
		t.Fatalf("512 flushes dropped %d (want 1), live %d", total, c.Live())
	}
	if _, ok := c.Lookup(other, userVA); ok {
		t.Fatal("entry survived DropAll")
	}
}

// TestStaleReasons: each kind of change to a cached translation, made
// without a flush, is reported with what changed; a change that keeps
// the translation is not.
func TestStaleReasons(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, pt *pgtable.PageTable)
		want   string // "" for no report
	}{
		{"unmapped", func(t *testing.T, pt *pgtable.PageTable) {
			p, _ := pt.Walk(userVA, pgtable.PTE)
			pt.PTEClear(userVA, p)
		}, "unmapped"},
		{"other frame", func(t *testing.T, pt *pgtable.PageTable) {
			p, _ := pt.Walk(userVA, pgtable.PTE)
			pt.SetPTEAt(userVA, p, pt.Format().SetPFN(p.Peek(), pgtable.PTE, 0x34))
		}, "pfn 0x12 -> 0x34"},
		{"write-protected", func(t *testing.T, pt *pgtable.PageTable) {
			p, _ := pt.Walk(userVA, pgtable.PTE)
			pt.PtepSetWrprotect(userVA, p)
		}, "write permission revoked"},
		{"prot none", func(t *testing.T, pt *pgtable.PageTable) {
			if err := pt.Protect(userVA, page, pgtable.MapOpts{Prot: pgtable.ProtNone}); err != nil {
				t.Fatal(err)
			}
		}, "read permission revoked, write permission revoked, user access revoked"},
		{"made no-exec", func(t *testing.T, pt *pgtable.PageTable) {
			if err := pt.Protect(userVA, page, pgtable.MapOpts{Prot: pgtable.ProtRead | pgtable.ProtShared}); err != nil {
				t.Fatal(err)
			}
		}, "write permission revoked, exec permission revoked"},
		{"cleaned", func(t *testing.T, pt *pgtable.PageTable) {
			p, _ := pt.Walk(userVA, pgtable.PTE)
			pt.RawSet(userVA, p, pt.Format().MkClean(p.Peek(), pgtable.PTE))
		}, "dirty bit cleared"},
		{"made old: no flush needed", func(t *testing.T, pt *pgtable.PageTable) {
			p, _ := pt.Walk(userVA, pgtable.PTE)
			pt.PtepTestAndClearYoung(userVA, p)
		}, ""},
		{"same protection written again: no flush needed", func(t *testing.T, pt *pgtable.PageTable) {
			if err := pt.Protect(userVA, page, pgtable.MapOpts{Prot: rw | pgtable.ProtExec}); err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, tlb.Config{CPUs: 2})
			pt, ctx := e.mm("mm", false)
			if err := pt.Map(userVA, page, 0x12, pgtable.MapOpts{Prot: rw | pgtable.ProtExec, Dirty: true}); err != nil {
				t.Fatal(err)
			}
			fill(t, e.sys.CPU(1), ctx, userVA, false)
			mustClean(t, e.sys)
			c.change(t, pt)
			got := e.sys.Validate()
			if c.want == "" {
				if len(got) != 0 {
					t.Fatalf("unexpected report: %v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d reports %v, want one", len(got), got)
			}
			s := got[0]
			if s.CPU != 1 || s.Context != "mm" || s.VA != userVA || s.Reason != c.want || s.WalkCache {
				t.Fatalf("report %+v, want cpu1 mm %#x %q", s, uint64(userVA), c.want)
			}
			e.sys.FlushTLBPage(ctx, userVA)
			mustClean(t, e.sys)
		})
	}
}

// TestSplitKeepsTranslation: a cached 2M entry stays valid after its PMD
// is split into PTEs of the same frames; it becomes stale when one of them
// changes.
func TestSplitKeepsTranslation(t *testing.T) {
	e := newEnv(t, tlb.Config{})
	pt, ctx := e.mm("mm", false)
	if err := pt.Map(userVA, pmdSize, 0x200, pgtable.MapOpts{Prot: rw, Huge: true}); err != nil {
		t.Fatal(err)
	}
	en := fill(t, e.sys.CPU(0), ctx, userVA, false)
	if en.Shift != 21 {
		t.Fatalf("not a 2M entry: %v", en)
	}
	p, _ := pt.Walk(userVA, pgtable.PMD)
	if err := pt.SplitLeaf(userVA, p); err != nil {
		t.Fatal(err)
	}
	mustClean(t, e.sys)
	q, _ := pt.Walk(userVA+7*page, pgtable.PTE)
	pt.PTEClear(userVA+7*page, q)
	got := stale(e.sys)
	if len(got) != 1 || !strings.Contains(got[0], "unmapped at 0x7f0000007000") {
		t.Fatalf("after clearing one PTE: %v", got)
	}
}

// TestOmittedFlushCaught: write-protecting a PTE that a CPU caches
// writable, and "forgetting" the flush, is reported; the flush the code
// should have done clears it.
func TestOmittedFlushCaught(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 4})
	pt, ctx := e.mm("victim", false)
	mapRW(t, pt, userVA, 4, 0x40)
	for cpu := 0; cpu < 4; cpu++ {
		e.sys.CPU(cpu).Switch(ctx)
	}
	fill(t, e.sys.CPU(2), ctx, userVA+page, false)
	p, _ := pt.Walk(userVA+page, pgtable.PTE)
	pt.PtepSetWrprotect(userVA+page, p) // no flush_tlb_page: the bug
	got := e.sys.Validate()
	want := tlb.Stale{CPU: 2, Context: "victim", VA: userVA + page,
		Cached: tlb.Entry{VA: userVA + page, Shift: 12, PFN: 0x41, Perm: tlb.PermRead | tlb.PermWrite | tlb.PermUser, Level: pgtable.PTE},
		Reason: "write permission revoked"}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if s := got[0].String(); s != "cpu2 victim va 0x7f0000001000: stale tlb 0x7f0000001000 4K pte pfn 0x41 rw-u--: write permission revoked" {
		t.Fatalf("String: %s", s)
	}
	e.sys.FlushTLBPage(ctx, userVA+page)
	mustClean(t, e.sys)
}

// TestWalkCacheTableMove: moving a PTE table to another PMD entry (as
// mremap's move_normal_pmd does) leaves the walk cache pointing the old
// range at it; the validator reports it until flush_tlb_range covers the
// old range.
func TestWalkCacheTableMove(t *testing.T) {
	e := newEnv(t, tlb.Config{})
	pt, ctx := e.mm("mm", false)
	const oldVA, newVA = userVA, userVA + 1<<30
	mapRW(t, pt, oldVA, 8, 0x80)
	c := e.sys.CPU(0)
	fill(t, c, ctx, oldVA, true)
	// The new PMD entry must exist as an empty slot.
	mapRW(t, pt, newVA+pmdSize, 1, 0x90)
	src, _ := pt.Walk(oldVA, pgtable.PMD)
	dst, _ := pt.Walk(newVA, pgtable.PMD)
	moved := pt.ClearTable(oldVA, src)
	pt.Populate(newVA, dst, moved)
	if tr, ok := pt.Lookup(newVA + 3*page); !ok || tr.PFN != 0x83 {
		t.Fatalf("moved table does not map the new range: %v %v", tr, ok)
	}
	got := e.sys.Validate()
	var walk []tlb.Stale
	for _, s := range got {
		if s.WalkCache {
			walk = append(walk, s)
		}
	}
	if len(walk) != 1 || walk[0].Cached.Level != pgtable.PTE || walk[0].VA != oldVA ||
		walk[0].Reason != fmt.Sprintf("pte table pfn %#x unlinked", moved.PFN()) {
		t.Fatalf("walk-cache reports: %v", got)
	}
	// A flush of a range that does not cover the old range leaves it.
	e.sys.FlushTLBRange(ctx, newVA, newVA+8*page)
	if len(e.sys.Validate()) == 0 {
		t.Fatal("flush of the new range cleared the old range's walk cache")
	}
	e.sys.FlushTLBRange(ctx, oldVA, oldVA+8*page)
	mustClean(t, e.sys)
}

// TestFreedTableInWalkCache: freeing a table at once, while a walk cache
// still holds it, is caught; freeing it through a Gather is not, because
// the gather frees it only after its flush.
func TestFreedTableInWalkCache(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 2})
	pt, ctx := e.mm("mm", false)
	mapRW(t, pt, userVA, 4, 0x60)
	fill(t, e.sys.CPU(1), ctx, userVA, true)
	pte := tlb.TableFor(pt, userVA, pgtable.PTE)
	if err := pt.Unmap(userVA, 4*page); err != nil { // frees the emptied tables at once
		t.Fatal(err)
	}
	if !pte.Freed() {
		t.Fatal("Unmap did not free the PTE table")
	}
	var freed []tlb.Stale
	for _, s := range e.sys.Validate() {
		if s.WalkCache && strings.HasSuffix(s.Reason, " freed") {
			freed = append(freed, s)
		}
	}
	if len(freed) == 0 || freed[0].CPU != 1 || freed[0].Cached.PFN != pte.PFN() {
		t.Fatalf("freed table not reported: %v", e.sys.Validate())
	}
}

// TestGather: many ranges, one flush; tables freed only after the flush;
// deferred work after the tables; the walk cache no longer holds them.
func TestGather(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 2})
	pt, ctx := e.mm("mm", false)
	mapRW(t, pt, userVA, 4, 0x60)
	mapRW(t, pt, userVA+8*pmdSize, 2, 0x70)
	for _, va := range []uint64{userVA, userVA + page, userVA + 8*pmdSize} {
		fill(t, e.sys.CPU(1), ctx, va, true)
	}
	m := ctx.Meter()
	m.Reset()
	g := e.sys.NewGather(ctx, false)
	var order []string
	for _, r := range [][2]uint64{{userVA, userVA + 4*page}, {userVA + 8*pmdSize, userVA + 8*pmdSize + 2*page}} {
		for a := r[0]; a < r[1]; a += page {
			p, _ := pt.Walk(a, pgtable.PTE)
			pt.PTEClear(a, p)
			g.AddRange(a, a+page, 12)
		}
		g.Defer(func() { order = append(order, "pages") })
	}
	pte := tlb.TableFor(pt, userVA, pgtable.PTE)
	pt.FreePgtables(userVA, userVA+16*pmdSize, 0, 0, g)
	if g.PendingTables() == 0 || pte.Freed() {
		t.Fatalf("table freed before the flush (pending %d)", g.PendingTables())
	}
	if !g.FreedTables() || g.StrideShift() != 12 {
		t.Fatalf("freed_tables %v stride %d", g.FreedTables(), g.StrideShift())
	}
	if start, end := g.Range(); start != userVA || end < userVA+8*pmdSize+2*page {
		t.Fatalf("range %#x-%#x", start, end)
	}
	if m.Count(cost.TLBFlushRange)+m.Count(cost.TLBFlushMM) != 0 {
		t.Fatal("gather flushed early")
	}
	g.Defer(func() {
		order = append(order, "last")
		if !pte.Freed() {
			t.Error("deferred work ran before the tables were freed")
		}
	})
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	if n := m.Count(cost.TLBFlushRange); n != 1 {
		t.Fatalf("%d flushes, want 1", n)
	}
	if !pte.Freed() || !slices.Equal(order, []string{"pages", "pages", "last"}) {
		t.Fatalf("after Finish: freed %v, order %v", pte.Freed(), order)
	}
	mustClean(t, e.sys)
	// An empty gather flushes nothing.
	g2 := e.sys.NewGather(ctx, true)
	g2.Finish()
	if m.Count(cost.TLBFlushRange)+m.Count(cost.TLBFlushMM) != 1 {
		t.Fatal("empty gather flushed")
	}
	// A full-mm gather flushes the mm (the generic tlb_flush).
	g2.AddRange(userVA, userVA+page, 12)
	g2.Finish()
	if m.Count(cost.TLBFlushMM) != 1 {
		t.Fatal("full-mm gather did not flush_tlb_mm")
	}
}

// TestGenericFlushKinds: the generic policy's flushes drop exactly what
// they name, on every CPU.
func TestGenericFlushKinds(t *testing.T) {
	cases := []struct {
		name  string
		flush func(s *tlb.System, ctx *tlb.Context)
		left  []uint64 // user pages still cached on each CPU
		walk  bool     // walk cache of the first page survives
	}{
		{"page: last level only", func(s *tlb.System, ctx *tlb.Context) { s.FlushTLBPage(ctx, userVA) }, []uint64{1, 2, 3}, true},
		{"range", func(s *tlb.System, ctx *tlb.Context) { s.FlushTLBRange(ctx, userVA+page, userVA+3*page) }, []uint64{0, 3}, false},
		{"range with PMD stride misses 4K entries off the stride", func(s *tlb.System, ctx *tlb.Context) {
			s.FlushTLBMMRange(ctx, userVA, userVA+pmdSize, 21, false)
		}, []uint64{1, 2, 3}, false},
		{"mm", func(s *tlb.System, ctx *tlb.Context) { s.FlushTLBMM(ctx) }, nil, false},
		{"range above the ceiling", func(s *tlb.System, ctx *tlb.Context) {
			s.FlushTLBRange(ctx, userVA+pmdSize, userVA+pmdSize+512*page)
		}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, tlb.Config{CPUs: 2})
			pt, ctx := e.mm("mm", false)
			mapRW(t, pt, userVA, 4, 0x10)
			for cpu := 0; cpu < 2; cpu++ {
				for i := uint64(0); i < 4; i++ {
					fill(t, e.sys.CPU(cpu), ctx, userVA+i*page, i == 0)
				}
			}
			c.flush(e.sys, ctx)
			for cpu := 0; cpu < 2; cpu++ {
				var left []uint64
				for i := uint64(0); i < 4; i++ {
					if _, ok := e.sys.CPU(cpu).Probe(ctx, userVA+i*page); ok {
						left = append(left, i)
					}
				}
				if !slices.Equal(left, c.left) {
					t.Errorf("cpu%d: pages left %v, want %v", cpu, left, c.left)
				}
				_, w := e.sys.CPU(cpu).WalkCacheProbe(ctx, userVA, pgtable.PTE)
				if w != c.walk {
					t.Errorf("cpu%d: walk cache kept %v, want %v", cpu, w, c.walk)
				}
			}
			if got, want := ctx.Meter().Count(cost.TLBInvalidated), uint64(2*(4-len(c.left))); got != want {
				t.Errorf("tlb_invalidated %d, want %d", got, want)
			}
		})
	}
}

// TestReleaseContext: a released context's entries are gone everywhere
// and its ASID serves the next context without leaking them.
func TestReleaseContext(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 2})
	pt, a := e.mm("a", false)
	mapRW(t, pt, userVA, 1, 0x10)
	e.sys.CPU(0).Switch(a)
	fill(t, e.sys.CPU(0), a, userVA, true)
	fill(t, e.sys.CPU(1), a, userVA, true)
	asid := a.ASID()
	e.sys.ReleaseContext(a)
	if e.sys.CPU(0).Current() != nil || e.sys.CPU(0).Live() != 0 || e.sys.CPU(1).Live() != 0 {
		t.Fatal("release left the context running or cached")
	}
	_, b := e.mm("b", false)
	if b.ASID() != asid {
		t.Fatalf("ASID %d not reused (got %d)", asid, b.ASID())
	}
	if _, ok := e.sys.CPU(1).Lookup(b, userVA); ok {
		t.Fatal("new context sees the released one's entry")
	}
	if _, ok := e.sys.CPU(1).WalkCacheLookup(b, userVA, pgtable.PTE); ok {
		t.Fatal("new context sees the released one's walk cache")
	}
	e.sys.ReleaseContext(a) // twice: no effect
	mustClean(t, e.sys)
}

// TestCPUMask: switching moves a CPU between mm_cpumasks.
func TestCPUMask(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 200})
	_, a := e.mm("a", false)
	_, b := e.mm("b", false)
	for _, cpu := range []int{199, 3, 64, 0} {
		e.sys.CPU(cpu).Switch(a)
	}
	e.sys.CPU(64).Switch(b)
	if got := a.CPUMask(); !slices.Equal(got, []int{0, 3, 199}) || a.MaskWeight() != 3 {
		t.Fatalf("a's mask %v", got)
	}
	if got := b.CPUMask(); !slices.Equal(got, []int{64}) || !b.InMask(64) || b.InMask(63) {
		t.Fatalf("b's mask %v", got)
	}
	e.sys.CPU(3).Switch(nil)
	if a.InMask(3) || e.sys.CPU(3).Current() != nil {
		t.Fatal("idle CPU still in the mask")
	}
}

// TestBreakBeforeMake: with the arm64 rule on, changing a live entry's
// frame, or writing a new entry while a CPU still caches the old one, is
// a violation; invalid, flush, then the new entry is not.
func TestBreakBeforeMake(t *testing.T) {
	e := newEnv(t, tlb.Config{Policy: &tlb.GenericPolicy{CheckBBM: true}})
	pt, ctx := e.mm("mm", false)
	mapRW(t, pt, userVA, 2, 0x10)
	fill(t, e.sys.CPU(0), ctx, userVA, false)
	p, _ := pt.Walk(userVA, pgtable.PTE)
	f := pt.Format()
	old := p.Peek()

	pt.RawSet(userVA, p, f.SetPFN(old, pgtable.PTE, 0x99)) // live -> live, new frame
	v := e.sys.Violations()
	if len(v) != 1 || v[0].VA != userVA || v[0].Level != pgtable.PTE || !strings.Contains(v[0].Reason, "output address") {
		t.Fatalf("violations %v", v)
	}
	pt.RawSet(userVA, p, f.Wrprotect(p.Peek(), pgtable.PTE)) // permission only: allowed
	if v := e.sys.Violations(); len(v) != 0 {
		t.Fatalf("permission change flagged: %v", v)
	}

	pt.RawClear(userVA, p)                                 // invalid step...
	pt.RawSet(userVA, p, f.SetPFN(old, pgtable.PTE, 0x77)) // ...but no flush
	if v := e.sys.Violations(); len(v) != 1 || !strings.Contains(v[0].Reason, "cpu0 still caches pfn 0x10") {
		t.Fatalf("missing flush not flagged: %v", v)
	}
	pt.RawClear(userVA, p)
	e.sys.FlushTLBPage(ctx, userVA)
	pt.RawSet(userVA, p, f.SetPFN(old, pgtable.PTE, 0x55))
	if v := e.sys.Violations(); len(v) != 0 {
		t.Fatalf("correct break-before-make flagged: %v", v)
	}
}

// TestLiveStore: with the s390 rule on, a plain store over a live entry is
// a violation and an invalidating exchange is not.
func TestLiveStore(t *testing.T) {
	e := newEnv(t, tlb.Config{Policy: &tlb.GenericPolicy{CheckLiveStore: true}})
	pt, _ := e.mm("mm", false)
	mapRW(t, pt, userVA, 1, 0x10)
	p, _ := pt.Walk(userVA, pgtable.PTE)
	pt.RawExchange(userVA, p, pt.Format().Wrprotect(p.Peek(), pgtable.PTE))
	if v := e.sys.Violations(); len(v) != 0 {
		t.Fatalf("exchange flagged: %v", v)
	}
	pt.PTEClear(userVA, p)
	v := e.sys.Violations()
	if len(v) != 1 || !strings.Contains(v[0].String(), "plain store over a live pte entry (needs IPTE)") {
		t.Fatalf("violations %v", v)
	}
}

// hookPolicy records the optional hooks it sees.
type hookPolicy struct {
	tlb.GenericPolicy
	log []string
}

func (p *hookPolicy) LazyMMU(s *tlb.System, ctx *tlb.Context, enter bool) {
	p.log = append(p.log, map[bool]string{true: "enter", false: "leave"}[enter])
}

func (p *hookPolicy) BeforeAccess(s *tlb.System, c *tlb.CPU, ctx *tlb.Context, va uint64) {
	p.log = append(p.log, "access")
}

func (p *hookPolicy) Released(s *tlb.System, ctx *tlb.Context) { p.log = append(p.log, "released") }

// TestOptionalHooks: lazy-MMU sections, accesses and releases reach a
// policy that implements the hooks.
func TestOptionalHooks(t *testing.T) {
	p := &hookPolicy{}
	e := newEnv(t, tlb.Config{Policy: p})
	pt, ctx := e.mm("mm", false)
	pt.EnterLazyMMU()
	e.sys.CPU(0).Lookup(ctx, userVA)
	pt.LeaveLazyMMU()
	e.sys.ReleaseContext(ctx)
	if want := []string{"enter", "access", "leave", "released"}; !slices.Equal(p.log, want) {
		t.Fatalf("hooks %v, want %v", p.log, want)
	}
}

// TestNoAllocation: Lookup and Insert allocate nothing once a CPU is in
// use.
func TestNoAllocation(t *testing.T) {
	e := newEnv(t, tlb.Config{})
	_, ctx := e.mm("mm", false)
	c := e.sys.CPU(0)
	c.Insert(ctx, tlb.Entry{VA: userVA, Shift: 12, PFN: 1, Perm: tlb.PermRead})
	i := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		c.Insert(ctx, tlb.Entry{VA: userVA + (i%4096)*page, Shift: 12, PFN: phys.PFN(i), Perm: tlb.PermRead})
		c.Lookup(ctx, userVA+(i*7%4096)*page)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Insert+Lookup", allocs)
	}
}

func BenchmarkTLBLookup(b *testing.B) {
	e := newEnv(b, tlb.Config{})
	_, ctx := e.mm("mm", false)
	c := e.sys.CPU(0)
	for i := uint64(0); i < 1024; i++ {
		c.Insert(ctx, tlb.Entry{VA: userVA + i*page, Shift: 12, PFN: phys.PFN(i), Perm: tlb.PermRead})
	}
	c.Insert(ctx, tlb.Entry{VA: userVA + 1<<30, Shift: 21, PFN: 0x200, Perm: tlb.PermRead})
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		c.Lookup(ctx, userVA+(i&1023)*page)
		i++
	}
}

func BenchmarkTLBInsert(b *testing.B) {
	e := newEnv(b, tlb.Config{})
	_, ctx := e.mm("mm", false)
	c := e.sys.CPU(0)
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		c.Insert(ctx, tlb.Entry{VA: userVA + (i&8191)*page, Shift: 12, PFN: phys.PFN(i), Perm: tlb.PermRead})
		i++
	}
}

func BenchmarkFlushAll512(b *testing.B) {
	e := newEnv(b, tlb.Config{CPUs: 4})
	_, ctx := e.mm("mm", false)
	for cpu := 0; cpu < 4; cpu++ {
		for i := uint64(0); i < 1536; i++ {
			e.sys.CPU(cpu).Insert(ctx, tlb.Entry{VA: userVA + i*page, Shift: 12, PFN: phys.PFN(i), Perm: tlb.PermRead})
		}
	}
	for b.Loop() {
		for i := 0; i < 512; i++ {
			e.sys.FlushTLBAll()
		}
	}
}

// traceRun runs a fixed sequence on 3 CPUs with shootdowns and returns its
// text trace.
func traceRun(t *testing.T) string {
	var buf strings.Builder
	tr := cost.TextTracer{W: &buf}
	e := newEnv(t, tlb.Config{CPUs: 3, Entries: 64, Ways: 4, Policy: &tlb.GenericPolicy{IPIs: true, Ceiling: 16}})
	e.km.SetTracer(tr)
	pt, ctx := e.mm("mm", false)
	ctx.Meter().SetTracer(tr)
	mapRW(t, pt, userVA, 64, 0x100)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 300; i++ {
		c := e.sys.CPU(int(rng.Uint64N(3)))
		if c.Current() != ctx {
			c.Switch(ctx)
		}
		va := userVA + rng.Uint64N(64)*page
		if _, ok := c.Lookup(ctx, va); !ok {
			fill(t, c, ctx, va, true)
		}
		switch rng.Uint64N(6) {
		case 0:
			e.sys.FlushTLBPage(ctx, va)
		case 1:
			e.sys.FlushTLBRange(ctx, va, va+rng.Uint64N(24)*page)
		case 2:
			e.sys.FlushTLBKernelRange(kernelVA, kernelVA+page)
		}
		fmt.Fprintln(&buf, stale(e.sys))
	}
	return buf.String()
}

// TestTraceDeterministic: the same operations give a byte-identical trace
// under GOMAXPROCS=1 and 2.
func TestTraceDeterministic(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	one := traceRun(t)
	runtime.GOMAXPROCS(2)
	if two := traceRun(t); one != two {
		t.Fatal("traces differ between GOMAXPROCS=1 and 2")
	}
	if !strings.Contains(one, "tlb_ipis") || !strings.Contains(one, "tlb_invalidated") {
		t.Fatal("trace lacks shootdowns")
	}
	if strings.Contains(one, "stale") {
		t.Fatal("flushes left stale entries")
	}
}

// TestDropRangeStrategies: DropRange's pass over the TLB (taken for long
// ranges) drops exactly what one DropVA per stride drops, for every
// stride and page size.
func TestDropRangeStrategies(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		type ins struct {
			va    uint64
			shift uint8
		}
		var entries []ins
		for i := 0; i < 40; i++ {
			shift := []uint8{12, 12, 12, 16, 21}[rng.IntN(5)]
			va := userVA + rng.Uint64N(8<<20)
			entries = append(entries, ins{va >> shift << shift, shift})
		}
		stride := []uint{12, 13, 16, 21}[rng.IntN(4)]
		start := userVA + rng.Uint64N(4<<20)
		end := start + rng.Uint64N(4<<20)
		build := func() (*env, *tlb.Context) {
			e := newEnv(t, tlb.Config{Entries: 64, Ways: 4})
			_, ctx := e.mm("mm", false)
			for _, x := range entries {
				e.sys.CPU(0).Insert(ctx, tlb.Entry{VA: x.va, Shift: x.shift, PFN: 1, Perm: tlb.PermRead})
			}
			return e, ctx
		}
		e1, c1 := build()
		e2, c2 := build()
		n1 := e1.sys.CPU(0).DropRange(nil, c1, start, end, stride, tlb.LeafOnly)
		n2 := 0
		for i := uint64(0); i < tlb.Strides(start, end, stride); i++ {
			n2 += e2.sys.CPU(0).DropVA(nil, c2, start+i<<stride, tlb.LeafOnly)
		}
		if n1 != n2 {
			t.Fatalf("trial %d: DropRange dropped %d, per-stride DropVA %d", trial, n1, n2)
		}
		for _, x := range entries {
			_, ok1 := e1.sys.CPU(0).Probe(c1, x.va)
			_, ok2 := e2.sys.CPU(0).Probe(c2, x.va)
			if ok1 != ok2 {
				t.Fatalf("trial %d: entry %#x/%d kept %v vs %v", trial, x.va, x.shift, ok1, ok2)
			}
		}
	}
}

// TestFlushRequest: a policy's own request is counted once as its kind,
// and LastLevel keeps the walk cache.
func TestFlushRequest(t *testing.T) {
	e := newEnv(t, tlb.Config{})
	pt, ctx := e.mm("mm", false)
	mapRW(t, pt, userVA, 2, 0x10)
	c := e.sys.CPU(0)
	fill(t, c, ctx, userVA, true)
	e.sys.FlushRequest(&tlb.Request{Kind: tlb.FlushRange, Ctx: ctx, Start: userVA, End: userVA + page, StrideShift: 12, LastLevel: true})
	if _, ok := c.Probe(ctx, userVA); ok {
		t.Fatal("entry survived")
	}
	if _, ok := c.WalkCacheProbe(ctx, userVA, pgtable.PTE); !ok {
		t.Fatal("last-level flush dropped the walk cache")
	}
	if n := ctx.Meter().Count(cost.TLBFlushRange); n != 1 {
		t.Fatalf("tlb_flush_range %d", n)
	}
	e.sys.FlushRequest(&tlb.Request{Kind: 99, Ctx: ctx})
	e.sys.FlushRequest(&tlb.Request{Kind: tlb.FlushKernelRange, Start: kernelVA, End: kernelVA + page})
	if n := e.km.Count(cost.TLBFlushKernel); n != 1 {
		t.Fatalf("tlb_flush_kernel %d", n)
	}
}
