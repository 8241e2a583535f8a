package arm64

import "github.com/ptsim/ptsim/cost"

// Costs is the arm64 cost table, shared by the three granules. Figures are
// picoseconds per event, each with its source.
//
// It is empty for now: no published per-instruction figure for TLBI or
// DSB ISH was found that this project can cite (the costs are
// implementation-defined and scale with the number of cores in the
// inner-shareable domain). The mremap, contpte and HVO calibrations fill
// it from the published end-to-end measurements (specs/mremap.md,
// specs/contpte.md), keeping one table for every experiment.
var Costs = cost.MustTable("arm64", map[cost.Event]cost.Figure{})
