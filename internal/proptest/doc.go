// Package proptest holds ptsim's cross-feature reliability tests; it has no
// code of its own outside its tests.
//
//   - State-machine property tests (pgregory.net/rapid), one per
//     architecture: random sequences of mmap, munmap, mprotect, reads and
//     writes, mremap, fork, exit, pin and unpin, hugetlb pool allocation and
//     freeing, page-fault tests (spf) and knob changes, run in lockstep on
//     two machines that differ only in one "twin" knob (move_pmd/move_pud,
//     fork_batch, contpte, hvo_batch, spf). After every step both machines
//     must pass Machine.Check and the hugetlb audit, every page must hold
//     what an independent content oracle expects, both machines must return
//     the same result and errno, and their states (VMAs, translations,
//     entry bits, contents, refcounts, mapcounts, pins, RSS, page caches,
//     pools, frames in use) must be equal up to the naming of frames: only
//     costs may differ. An operation that fails where Linux changes nothing
//     must leave the state unchanged.
//   - FuzzOps: the same operations decoded from bytes, for go's native
//     fuzzer, with the same checks.
//
// Modes: `go test` runs a short mode sized for CI (a few hundred sequences
// per architecture). PTSIM_LONG=1 runs the long mode (10,000 sequences per
// architecture; PTSIM_SEQUENCES=N sets another number). A failure prints the
// operations of the shrunk sequence and a -rapid.seed that replays it.
package proptest
