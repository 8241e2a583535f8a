package tlb_test

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// repoint writes a live PTE over the live PTE mapping userVA, pointing at
// the next frame: a break-before-make violation.
func repoint(t testing.TB, pt *pgtable.PageTable) {
	t.Helper()
	p, ok := pt.Walk(userVA, pgtable.PTE)
	if !ok {
		t.Fatal("no PTE table")
	}
	pt.RawSet(userVA, p, pt.Format().AdvancePFN(p.Peek(), pgtable.PTE, 1))
}

// TestAuditStaysOnInTests checks the guard: a test cannot turn the audit
// off (EPERM, and the checks keep running), while turning it on is
// always allowed.
func TestAuditStaysOnInTests(t *testing.T) {
	e := newEnv(t, tlb.Config{Policy: &tlb.GenericPolicy{CheckBBM: true}})
	if err := e.sys.SetAudit(false); !errors.Is(err, tlb.EPERM) {
		t.Fatalf("SetAudit(false) in a test: %v, want EPERM", err)
	}
	if !e.sys.Audit() {
		t.Fatal("audit off after a refused SetAudit(false)")
	}
	if err := e.sys.SetAudit(true); err != nil {
		t.Fatalf("SetAudit(true): %v", err)
	}
	pt, _ := e.mm("mm", false)
	mapRW(t, pt, userVA, 1, 0x100)
	repoint(t, pt)
	if v := e.sys.Violations(); len(v) != 1 {
		t.Fatalf("violations with the audit on: %v, want 1", v)
	}
}

// TestAuditOffInBenchmark checks that a benchmark may turn the audit off,
// and that then the write checks record nothing, while the writes and
// their counts are the same as with the audit on.
func TestAuditOffInBenchmark(t *testing.T) {
	run := func(audit bool) (violations int, counts cost.Counts, tables int) {
		e := newEnv(t, tlb.Config{Policy: &tlb.GenericPolicy{CheckBBM: true}})
		if !audit {
			var err error
			testing.Benchmark(func(b *testing.B) { err = e.sys.SetAudit(false) })
			if err != nil {
				t.Fatalf("SetAudit(false) in a benchmark: %v", err)
			}
			if e.sys.Audit() {
				t.Fatal("audit still on")
			}
		}
		pt, _ := e.mm("mm", false)
		mapRW(t, pt, userVA, 1, 0x100)
		repoint(t, pt)
		return len(e.sys.Violations()), pt.Meter().Counts(), pt.Tables()
	}
	onV, onC, onT := run(true)
	offV, offC, offT := run(false)
	if onV != 1 || offV != 0 {
		t.Fatalf("violations: audit on %d (want 1), off %d (want 0)", onV, offV)
	}
	if onC != offC || onT != offT {
		t.Fatalf("counts differ: audit on %v (%d tables), off %v (%d tables)", onC, onT, offC, offT)
	}
}
