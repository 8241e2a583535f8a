//go:build race

package spf_test

// raceEnabled is set under the race detector, which slows the model
// about thirtyfold; the schedule test then runs fewer schedules by
// default (see schedules).
const raceEnabled = true
