//go:build !race

package proptest

// raceEnabled is set under the race detector (see race_on_test.go).
const raceEnabled = false

const raceSequences = shortSequences
