package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ptsim/ptsim/internal/exercise"
)

// cmdExercise prints a generated exercise, and its worked answer with
// -c. The same seed gives the same exercise on any machine.
func cmdExercise(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ptsim exercise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("s", 0, "seed: selects the problem")
	answer := fs.Bool("c", false, "print the worked answer after the problem")
	kind := fs.String("kind", "", "exercise kind ("+strings.Join(exercise.Kinds(), ", ")+"); default: the seed chooses")
	archName := fs.String("arch", "", "architecture (each kind supports some); default: the seed chooses")
	list := fs.Bool("list", false, "list the kinds and the architectures each supports")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ptsim exercise -s SEED [-c] [-kind KIND] [-arch NAME] | -list")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ptsim exercise: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *list {
		for _, k := range exercise.Kinds() {
			fmt.Fprintf(stdout, "%-10s %s\n           archs: %s\n", k, exercise.Summary(k), strings.Join(exercise.KindArchs(k), ", "))
		}
		return 0
	}
	e, err := exercise.Generate(exercise.Options{Seed: *seed, Kind: *kind, Arch: *archName})
	if err != nil {
		fmt.Fprintf(stderr, "ptsim exercise: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, e.Problem)
	if *answer {
		fmt.Fprint(stdout, "\n", e.Answer)
	}
	return 0
}
