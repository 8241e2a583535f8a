package x86

import "github.com/ptsim/ptsim/cost"

// Costs is the x86-64 cost table. Figures are picoseconds per event.
// Provisional: the mremap, fork and HVO calibrations refine it, keeping one
// table for every experiment.
var Costs = cost.MustTable("x86_64", map[cost.Event]cost.Figure{
	cost.Invlpg: {PS: 100_000, Source: "Documentation/arch/x86/tlb.rst: ~100 ns per INVLPG, the basis of the 33-page ceiling"},
})
