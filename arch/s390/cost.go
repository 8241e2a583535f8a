package s390

import "github.com/ptsim/ptsim/cost"

// Costs is the s390x cost table. Figures are picoseconds per event, each
// with its source.
//
// It is empty for now: IBM publishes no per-instruction latency for IPTE,
// IDTE or CRDTE that this project can cite (they depend on the machine
// generation and on how many CPUs hold the translation). The mremap, fork
// and HVO calibrations fill it, keeping one table for every experiment.
var Costs = cost.MustTable("s390x", map[cost.Event]cost.Figure{})
