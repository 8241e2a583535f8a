package pgtable_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// TestBulkPTELoopsRandom drives set_ptes and wrprotect_ptes with random
// runs over one PTE table on every arch — present, PROT_NONE and empty
// entries, over empty and over filled slots, single entries and long
// runs — down the bulk path and down the entry-by-entry path (a tracer),
// and compares entries, use count and every counter after each step.
func TestBulkPTELoopsRandom(t *testing.T) {
	prots := []pgtable.Prot{pgtable.ProtRead, pgtable.ProtRead | pgtable.ProtWrite, 0, pgtable.ProtRead | pgtable.ProtWrite | pgtable.ProtShared}
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			a, err := archs.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			type side struct {
				pt    *pgtable.PageTable
				p     pgtable.Ptr
				meter *cost.Meter
			}
			build := func(trace bool) side {
				mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: a.Geometry.PageShift, MaxOrder: a.MaxOrder()})
				if err != nil {
					t.Fatal(err)
				}
				meter := &cost.Meter{Name: "test"}
				pt, err := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem, Meter: meter, Space: a.User})
				if err != nil {
					t.Fatal(err)
				}
				if trace {
					meter.SetTracer(nopTracer{})
				}
				p, err := pt.WalkAlloc(a.User.Start+a.Geometry.Size(pgtable.PMD), pgtable.PTE)
				if err != nil {
					t.Fatal(err)
				}
				return side{pt, p, meter}
			}
			fast, slow := build(false), build(true)
			fm := &a.Format
			ps := a.Geometry.PageSize()
			n := fast.p.T.Len() - fast.p.I
			r := rand.New(rand.NewPCG(11, uint64(len(name))))
			for step := 0; step < 400; step++ {
				i := r.IntN(n)
				nr := 1 + r.IntN(min(n-i, 40))
				var e pgtable.Entry
				kind := r.IntN(6)
				switch kind {
				case 0:
					e = fm.None[pgtable.PTE]
				default:
					e = fm.MkPTE(phys.PFN(0x100+r.IntN(1000)), prots[r.IntN(len(prots))])
					if r.IntN(2) == 0 {
						e = fm.MkDirty(e, pgtable.PTE)
					}
				}
				wrprotect := r.IntN(3) == 0
				for _, s := range []side{fast, slow} {
					q := s.p.Add(i)
					va := a.User.Start + a.Geometry.Size(pgtable.PMD) + uint64(q.I-s.p.I)*ps
					if wrprotect {
						s.pt.WrprotectPTEs(va, q, nr)
					} else {
						s.pt.SetPTEs(va, q, e, nr)
					}
				}
				var fe, se []pgtable.Entry
				for j := 0; j < n; j++ {
					fe = append(fe, fast.p.T.Entry(fast.p.I+j))
					se = append(se, slow.p.T.Entry(slow.p.I+j))
				}
				if !reflect.DeepEqual(fe, se) || fast.p.T.Used() != slow.p.T.Used() || fast.meter.Counts() != slow.meter.Counts() {
					t.Fatalf("step %d (index %d, %d entries, wrprotect %v, entry %#x): bulk and entry-by-entry paths differ: used %d vs %d, counts equal %v",
						step, i, nr, wrprotect, e, fast.p.T.Used(), slow.p.T.Used(), fast.meter.Counts() == slow.meter.Counts())
				}
			}
			if slow.meter.Count(cost.PTESets) == 0 || slow.meter.Count(cost.PTEClears) == 0 {
				t.Fatalf("the steps set or cleared nothing: %v", slow.meter.Counts())
			}
		})
	}
}
