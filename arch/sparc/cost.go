package sparc

import "github.com/ptsim/ptsim/cost"

// Costs is the sparc64 cost table. Figures are picoseconds per event, each
// with its source.
//
// It is empty for now: no citable per-operation figure was found for a
// sun4u TSB and TLB demap or for a D-cache page flush. The mremap and fork
// calibrations fill it, keeping one table for every experiment.
var Costs = cost.MustTable("sparc64", map[cost.Event]cost.Figure{})
