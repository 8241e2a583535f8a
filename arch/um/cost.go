package um

import "github.com/ptsim/ptsim/cost"

// Costs is the UML cost table, shared by "um" and "um32". Figures are
// picoseconds per event, each with its source.
//
// It is empty for now: the cost that dominates UML, a host mmap, munmap or
// mprotect issued by the mm's stub process per synced entry, has no
// published per-call figure this project can cite for the current
// (seccomp or ptrace) stub mechanism. The mremap and fork calibrations
// fill it, keeping one table for every experiment.
var Costs = cost.MustTable("um", map[cost.Event]cost.Figure{})
