// Command ptsim runs scenario scripts and the fidelity demonstration of
// the ptsim page-table simulator.
//
//	ptsim run [-audit] FILE...      run scenario scripts (SCENARIOS.md)
//	ptsim demo                      run the fidelity experiments F1-F14
//	ptsim walk [-arch NAME] ADDR... map a page at each address and show its walk
//	ptsim exercise -s SEED [-c] [-kind KIND] [-arch NAME]
//	                                a generated exercise; -c adds the answer
//	ptsim plot [-only NAME,...] DIR write the figures as SVG and PNG
//	ptsim help [COMMAND]            the script language, or one command
//
// `ptsim run` prints what the scripts print to standard output and its
// diagnostics to standard error, and exits 0 when every expectation held,
// 1 when one did not or a command failed unexpectedly (file:line, the
// command, what was expected and what was found), and 2 when a script is
// malformed (file:line and what is wrong; no script runs then). Usage
// errors exit 2 too.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/internal/fidelity"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/scenario"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the program: it takes the arguments after the program name and
// the two output streams, and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "walk":
		return cmdWalk(args[1:], stdout, stderr)
	case "exercise":
		return cmdExercise(args[1:], stdout, stderr)
	case "plot":
		return cmdPlot(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		return cmdHelp(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "ptsim: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  ptsim run [-audit] FILE...      run scenario scripts
  ptsim demo                      run the fidelity experiments (TARGETS.md F1-F14)
  ptsim walk [-arch NAME] ADDR... map a page at each address and show its page walk
  ptsim exercise -s SEED [-c] [-kind KIND] [-arch NAME]
                                  a generated exercise (translate, mremap, fork, contpte,
                                  tlb); -c adds the worked answer
  ptsim plot [-only NAME,...] DIR the figures (mremap, fork, page-fault3, hvo) as SVG and PNG
  ptsim help [COMMAND]            the script language, or one command
`)
}

// cmdRun parses every file first (a malformed one stops everything with
// status 2), then runs them in order, each on a fresh machine.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ptsim run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	audit := fs.Bool("audit", false, "check the machine's invariants after every command (slow)")
	// Flags may come after file names too (ptsim run a.pts -audit); `--`
	// ends them.
	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if used := len(rest) - len(left); used > 0 && rest[used-1] == "--" {
			files = append(files, left...)
			break
		}
		files, rest = append(files, left[0]), left[1:]
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "ptsim run: no script files")
		return 2
	}
	scripts := make([]*scenario.Script, len(files))
	malformed := false
	for i, f := range files {
		s, err := scenario.ParseFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			malformed = true
		}
		scripts[i] = s
	}
	if malformed {
		return 2
	}
	status := 0
	for i, s := range scripts {
		if len(scripts) > 1 {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "== %s ==\n", files[i])
		}
		if err := scenario.Run(s, scenario.Options{Out: stdout, Audit: *audit}); err != nil {
			fmt.Fprintln(stderr, err)
			status = max(status, scenario.ExitStatus(err))
		}
	}
	return status
}

// cmdDemo runs every fidelity experiment and prints ours beside the
// published figures. It exits 0 whether or not every figure is in band
// (the summary line says), 2 on a usage error.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ptsim demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quiet := fs.Bool("q", false, "print the table and the summary only, without the notes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ptsim demo: takes no arguments, only -q\n")
		return 2
	}
	return demo(fidelity.All(), !*quiet, stdout)
}

// demoIntro is what the demo prints above its table.
const demoIntro = `ptsim demo: the fidelity experiments F1-F14 of TARGETS.md.
Each experiment runs a published workload on the simulator, with its
architecture's one cost table, and compares a ratio of simulated times (or a
count) with the figure Linux developers published. "in band" says whether
ptsim's figure lands in the band the target sets; the notes below the table
say which primitives make the figure.

`

// demo runs exps and prints the table, the notes when notes is set, and
// a summary line.
func demo(exps []fidelity.Experiment, notes bool, stdout io.Writer) int {
	if len(exps) == 0 {
		fmt.Fprint(stdout, `ptsim demo: no fidelity experiments are registered yet.
When the features land it will run F1-F14 of TARGETS.md (mremap table moves,
batched fork copy, arm64 contpte, hugetlb vmemmap splits, speculative faults),
each with the arch's one cost table, and print for every measure the published
figure, ptsim's figure, and whether it lands in its band.
summary: 0 experiments, 0 measures
`)
		return 0
	}
	results := make([]fidelity.Result, len(exps))
	errs := make([]error, len(exps))
	measures, in, failed := 0, 0, 0
	var out []string
	for i, e := range exps {
		results[i], errs[i] = e.Run()
		if errs[i] != nil {
			failed++
			continue
		}
		for _, m := range results[i].Measures {
			measures++
			if m.InBand() {
				in++
			} else {
				out = append(out, fmt.Sprintf("%s %s", e.ID, m.Name))
			}
		}
	}
	fmt.Fprint(stdout, demoIntro)
	fmt.Fprint(stdout, fidelity.Format(exps, results, errs))
	if notes {
		fmt.Fprint(stdout, "\nNotes:\n")
		fmt.Fprint(stdout, fidelity.FormatNotes(exps, results, errs, 100))
	}
	fmt.Fprintf(stdout, "\nsummary: %d experiments, %d of %d measures in band, %d experiments failed to run\n",
		len(exps), in, measures, failed)
	if len(out) > 0 {
		fmt.Fprintf(stdout, "out of band: %s\n", strings.Join(out, "; "))
	}
	return 0
}

// cmdWalk maps one page at each address (anonymous, written) on a fresh
// machine of the chosen arch and prints the walk of each, by running a
// generated script.
func cmdWalk(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ptsim walk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	archName := fs.String("arch", scenario.DefaultArch, "architecture: "+strings.Join(archs.Names(), ", "))
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "ptsim walk: give at least one address")
		return 2
	}
	a, err := archs.ByName(*archName)
	if err != nil {
		fmt.Fprintf(stderr, "ptsim walk: %v\n", err)
		return 2
	}
	ps := a.PageSize()
	var b strings.Builder
	fmt.Fprintf(&b, "arch %s\n", *archName)
	var addrs []uint64
	mapped := map[uint64]bool{}
	for _, s := range fs.Args() {
		addr, err := scenario.ParseNumber(s)
		if err != nil {
			fmt.Fprintf(stderr, "ptsim walk: %v\n", err)
			return 2
		}
		addrs = append(addrs, addr)
		if page := addr &^ (ps - 1); !mapped[page] {
			mapped[page] = true
			fmt.Fprintf(&b, "mmap %#x %#x\nwrite %#x\n", page, ps, page)
		}
	}
	for _, addr := range addrs {
		fmt.Fprintf(&b, "walk %#x\n", addr)
	}
	return scenario.Exec("ptsim walk", []byte(b.String()), stdout, stderr, scenario.Options{})
}

// cmdHelp prints the script language reference: every command with its
// usage and summary, the architectures, the config keys and the counters.
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	cmds := scenario.Commands()
	if len(args) > 0 {
		status := 0
		for _, name := range args {
			found := false
			for _, c := range cmds {
				if c.Name == name {
					fmt.Fprintf(stdout, "%s\n    %s\n", c.Usage, c.Summary)
					found = true
				}
			}
			if !found {
				fmt.Fprintf(stderr, "ptsim help: no command %q\n", name)
				status = 2
			}
		}
		return status
	}
	usage(stdout)
	fmt.Fprint(stdout, `
Scenario scripts: one command per line; # starts a comment; numbers are
decimal or 0x-hex with an optional K, M, G or T suffix; options are
key=value; a line starting with ! must fail, and expect-error NAME after a
command checks which error it failed with.

Commands:
`)
	for _, c := range cmds {
		fmt.Fprintf(stdout, "  %s\n      %s\n", c.Usage, c.Summary)
	}
	fmt.Fprintf(stdout, "\nArchitectures: %s\n", strings.Join(archs.Names(), ", "))
	fmt.Fprintf(stdout, "Config keys: %s\n", strings.Join(mmu.KnobNames(), ", "))
	fmt.Fprintf(stdout, "Counters: %s\n", strings.Join(scenario.Counters(), ", "))
	return 0
}
