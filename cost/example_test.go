package cost_test

import (
	"fmt"

	"github.com/ptsim/ptsim/cost"
)

// A meter counts primitives; a cost table turns the counts into simulated
// time. The table here is made up for the example: real ones live in
// arch/<name>/cost.go, one per architecture, every figure with its source.
func ExampleTable_NS() {
	tab, err := cost.NewTable("toy", map[cost.Event]cost.Figure{
		cost.PTESets: {PS: 1500, Source: "made up: 1.5 ns per PTE write"},
		cost.Invlpg:  {PS: 100_000, Source: "made up: 100 ns per INVLPG"},
	})
	if err != nil {
		panic(err)
	}
	var m cost.Meter
	m.Add(cost.PTESets, 512) // fill a PTE table
	m.Add(cost.Invlpg, 2)
	m.Add(cost.EntryReads, 9) // not priced by this table: costs nothing
	c := m.Counts()
	fmt.Println(cost.PTESets, m.Count(cost.PTESets), cost.Invlpg, m.Count(cost.Invlpg))
	fmt.Println("simulated ns:", tab.NS(&c))
	e, ok := cost.EventByName("tlb_flush_range")
	fmt.Println(e, ok, e.MachineWide())
	// Output:
	// pte_sets 512 invlpg 2
	// simulated ns: 968
	// tlb_flush_range true false
}

// A tracer sees every primitive step as it is counted.
func ExampleTextTracer() {
	var m cost.Meter
	m.Name = "init"
	m.SetTracer(cost.TextTracer{W: stdout{}})
	m.Note(cost.PTESets, 1, 0x7f0000000000, 0x8000000000009867)
	m.SetTracer(nil)
	m.Add(cost.PTESets, 1) // counted, not traced
	fmt.Println(m.Count(cost.PTESets))
	// Output:
	// init     pte_sets           n=1 addr=0x7f0000000000 val=0x8000000000009867
	// 2
}

// stdout writes to standard output (so the example shows the trace).
type stdout struct{}

func (stdout) Write(p []byte) (int, error) { fmt.Print(string(p)); return len(p), nil }
