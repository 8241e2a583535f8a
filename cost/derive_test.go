package cost

import (
	"strings"
	"testing"
)

// TestRescale derives a table by the rule: cycles rescaled, kept figures
// as they are, skipped and already priced events left alone, every
// derived figure with a source naming the base's.
func TestRescale(t *testing.T) {
	base := MustTable("base", map[Event]Figure{
		EntryReads:    {PS: 1000, Source: "read src"},
		LineTransfers: {PS: 5000, Source: "line src"},
		TLBIOps:       {PS: 700, Source: "tlbi src"},
		Faults:        {PS: 9000, Source: "fault src"},
	})
	figs := map[Event]Figure{Faults: {PS: 1, Source: "own"}}
	Rescale{From: base, FromName: "base", FromMHz: 2500, ToMHz: 5000, To: "a target",
		Keep: map[Event]bool{LineTransfers: true}, Skip: map[Event]bool{TLBIOps: true}}.Fill(figs)
	want := map[Event]uint64{EntryReads: 500, LineTransfers: 5000, Faults: 1}
	if len(figs) != len(want) {
		t.Fatalf("figures %v, want events %v", figs, want)
	}
	for e, ps := range want {
		if figs[e].PS != ps {
			t.Errorf("%s = %d ps, want %d", e, figs[e].PS, ps)
		}
	}
	if s := figs[EntryReads].Source; !strings.Contains(s, "x 2.5/5") || !strings.Contains(s, "read src") {
		t.Errorf("source %q does not give the rule and the base's source", s)
	}
	same := map[Event]Figure{}
	Rescale{From: base, FromName: "base", FromMHz: 2500, ToMHz: 2500, To: "a guest"}.Fill(same)
	if same[Faults].PS != 9000 || !strings.Contains(same[Faults].Source, "as it is") {
		t.Errorf("same clock: %+v", same[Faults])
	}
}
