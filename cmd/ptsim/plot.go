package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ptsim/ptsim/internal/plot"
)

// cmdPlot runs the workloads behind ptsim's figures and writes each as
// DIR/NAME.svg and DIR/NAME.png.
func cmdPlot(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ptsim plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "", "comma-separated figures to draw (default all: "+strings.Join(plot.Names(), ", ")+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ptsim plot [-only NAME,...] DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	figs, err := plot.Collect(names...)
	if err != nil {
		fmt.Fprintf(stderr, "ptsim plot: %v\n", err)
		return 2
	}
	paths, err := plot.Write(fs.Arg(0), figs)
	for _, p := range paths {
		fmt.Fprintln(stdout, p)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ptsim plot: %v\n", err)
		return 1
	}
	return 0
}
