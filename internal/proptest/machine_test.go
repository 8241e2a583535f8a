package proptest

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/ptsim/ptsim/arch/archs"
)

// Sequence counts. Short mode (plain `go test`) runs shortSequences per
// architecture, raceSequences under the race detector (what CI runs);
// PTSIM_LONG=1 runs longSequences; PTSIM_SEQUENCES=N runs N. An explicit
// -rapid.checks (or RAPID_CHECKS) wins over all.
const (
	shortSequences = 200
	longSequences  = 10000
)

// sequences is the number of sequences each architecture's test runs.
var sequences = shortSequences

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("PTSIM_LONG") != "" {
		sequences = longSequences
	}
	if s := os.Getenv("PTSIM_SEQUENCES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "PTSIM_SEQUENCES=%q: want a positive number\n", s)
			os.Exit(2)
		}
		sequences = n
	}
	if raceEnabled && os.Getenv("PTSIM_LONG") == "" && os.Getenv("PTSIM_SEQUENCES") == "" {
		sequences = raceSequences
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// Deterministic by default (the team's rule): the same sequences on
	// every run; -rapid.seed=N (or RAPID_SEED) explores others.
	if !set["rapid.seed"] && os.Getenv("RAPID_SEED") == "" {
		if err := flag.Set("rapid.seed", "1"); err != nil {
			panic(err)
		}
	}
	if !set["rapid.checks"] && os.Getenv("RAPID_CHECKS") == "" {
		n := sequences
		if testing.Short() {
			n *= 5 // rapid runs a fifth under -short; keep the count
		}
		if err := flag.Set("rapid.checks", strconv.Itoa(n)); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// rapidSource draws choices from rapid.
type rapidSource struct{ t *rapid.T }

func (r rapidSource) intn(n int, label string) int { return rapid.IntRange(0, n-1).Draw(r.t, label) }
func (r rapidSource) u64(label string) uint64      { return rapid.Uint64().Draw(r.t, label) }

// weights makes common operations common: how many actions of each kind
// the state machine offers (rapid picks among actions uniformly).
var weights = [numOps]int{
	opMmap: 4, opMunmap: 2, opMprotect: 2, opRead: 3, opWrite: 6, opMremap: 4, opFork: 2, opExit: 1,
	opPin: 2, opUnpin: 1, opHugeAlloc: 1, opHugeFree: 1, opPFT: 1, opKnob: 1,
}

// TestStateMachine runs, on every architecture, random sequences of
// operations from every feature on a machine and its slow twin (one twin
// knob per sequence, drawn), with every check after every step (see the
// package documentation).
func TestStateMachine(t *testing.T) {
	for _, name := range archs.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a, err := archs.ByName(name)
			if err != nil {
				t.Fatal(err)
			}
			ts := twins(a)
			rapid.Check(t, func(rt *rapid.T) {
				tw := rapid.SampledFrom(ts).Draw(rt, "twin")
				thp := rapid.Bool().Draw(rt, "thp")
				w, err := newWorld(name, tw, thp)
				if err != nil {
					rt.Fatal(err)
				}
				actions := map[string]func(*rapid.T){}
				for k := opKind(0); k < numOps; k++ {
					for i := 0; i < weights[k]; i++ {
						actions[fmt.Sprintf("%v/%d", k, i)] = func(rt *rapid.T) {
							o := w.gen(rapidSource{rt}, k)
							skipped, err := w.apply(o)
							if skipped {
								rt.Skip("precondition: " + o.String())
							}
							rt.Log(w.trace[len(w.trace)-1])
							if err != nil {
								rt.Fatalf("%v\n%s machine after:\n%s", err, w.arch, w.history())
							}
						}
					}
				}
				rt.Repeat(actions)
			})
		})
	}
}
