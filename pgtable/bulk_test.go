package pgtable_test

import (
	"reflect"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/phys"
)

// nopTracer makes a meter trace, which sends the PTE loops down their
// entry-by-entry path.
type nopTracer struct{}

func (nopTracer) Trace(cost.Record) {}

// quietObserver records entry writes and says whether it ignores them.
type quietObserver struct {
	ignore bool
	writes int
}

func (o *quietObserver) Written(*pgtable.PageTable, uint64, pgtable.Ptr, pgtable.Entry, pgtable.Entry, pgtable.WriteKind) {
	o.writes++
}

func (o *quietObserver) QuietFlag() *bool { return &o.ignore }

// TestBulkPTELoopsMatchEntryByEntry runs set_ptes and wrprotect_ptes on
// every arch down the bulk path (no tracer, an observer that ignores
// writes) and down the entry-by-entry path (a tracer): the entries, use
// counts and counters must be the same.
func TestBulkPTELoopsMatchEntryByEntry(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			type result struct {
				Entries []pgtable.Entry
				Used    int
				Counts  cost.Counts
			}
			run := func(trace bool, obs *quietObserver) result {
				a, err := archs.ByName(name)
				if err != nil {
					t.Fatal(err)
				}
				mem, err := phys.New(phys.Config{Size: 1 << 30, PageShift: a.Geometry.PageShift, MaxOrder: a.MaxOrder()})
				if err != nil {
					t.Fatal(err)
				}
				meter := &cost.Meter{Name: "test"}
				pt, err := pgtable.New(pgtable.Config{Geometry: &a.Geometry, Format: &a.Format, Memory: mem, Meter: meter, Space: a.User})
				if err != nil {
					t.Fatal(err)
				}
				pt.SetObserver(obs)
				if trace {
					meter.SetTracer(nopTracer{})
				}
				va := a.User.Start + a.Geometry.Size(pgtable.PMD)
				p, err := pt.WalkAlloc(va, pgtable.PTE)
				if err != nil {
					t.Fatal(err)
				}
				obs.writes = 0 // the table entries written above
				ps := a.Geometry.PageSize()
				fm := &a.Format
				e := fm.MkDirty(fm.MkWrite(fm.MkPTE(0x100, pgtable.ProtRead|pgtable.ProtWrite), pgtable.PTE), pgtable.PTE)
				pt.RawSetPTEs(va, p, e, 7)
				pt.RawSetPTEs(va+7*ps, p.Add(7), fm.None[pgtable.PTE], 2) // clears
				pt.RawSetPTEs(va+9*ps, p.Add(9), e, 1)
				pgtable.GenericOps{}.Wrprotect(pt, va+2*ps, p.Add(2), 6)
				pgtable.GenericOps{}.Wrprotect(pt, va, p, 1)
				// The public functions, one entry at a time.
				pt.SetPTEs(va+10*ps, p.Add(10), e, 1)
				pt.WrprotectPTEs(va+10*ps, p.Add(10), 1)
				pt.SetPTEs(va+11*ps, p.Add(11), e, 1)
				pt.SetPTEs(va+11*ps, p.Add(11), fm.None[pgtable.PTE], 1)
				pt.WrprotectPTEs(va+3*ps, p.Add(3), 4)
				var es []pgtable.Entry
				for i := 0; i < 12; i++ {
					es = append(es, p.T.Entry(p.I+i))
				}
				return result{Entries: es, Used: p.T.Used(), Counts: meter.Counts()}
			}
			slow := run(true, &quietObserver{ignore: true})
			obs := &quietObserver{ignore: true}
			fast := run(false, obs)
			if !reflect.DeepEqual(slow, fast) {
				t.Fatalf("bulk path differs:\nentry by entry %+v\nbulk           %+v", slow, fast)
			}
			if obs.writes != 0 {
				t.Errorf("bulk path told an ignoring observer of %d writes", obs.writes)
			}
			if slow.Counts[cost.PTESets] == 0 || slow.Counts[cost.EntryReads] == 0 {
				t.Fatalf("nothing counted: %v", slow.Counts)
			}
			// An observer that wants writes hears every one.
			want := &quietObserver{ignore: false}
			heard := run(false, want)
			if !reflect.DeepEqual(slow, heard) || want.writes != 7+2+1+6+1+4+4 {
				t.Errorf("observer heard %d writes, want 25; end states equal: %v", want.writes, reflect.DeepEqual(slow, heard))
			}
		})
	}
}
