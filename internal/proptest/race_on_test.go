//go:build race

package proptest

// raceEnabled is set under the race detector, which slows the model about
// tenfold: the short mode then runs raceSequences per architecture, to keep
// `go test -race ./...` (what CI runs) within about a minute here.
const raceEnabled = true

const raceSequences = 80
