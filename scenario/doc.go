// Package scenario runs ptsim's scenario scripts: plain-text files that
// drive the simulated machine without any Go, as SCENARIOS.md specifies.
// `ptsim run FILE...` runs them from the command line; the scenariotest
// package runs a folder of them from `go test` against golden files.
//
// # Running
//
// Parse turns a script into typed calls, checking every line first: an
// unknown command, a bad number, a missing argument, an unknown option, a
// bad protection word, an arch line that is not first or an expect-error
// that follows nothing makes the script malformed (SyntaxErrors; `ptsim
// run` exits 2) before anything runs. Run then runs the calls against a
// machine built lazily (mmu.New, on the first command that needs it) and
// stops at the first failure (*Failure; exit 1): an expectation that does
// not hold, a command that fails without `!` or a following expect-error,
// or a `!` command that succeeds. ExitStatus maps an error to the exit
// status. Nothing panics on any input: FuzzParse and FuzzRun check it
// (and a panic would be reported as a failure, ErrInternal).
//
// Output (stats, dump, walk, vmas, trace, and the feature commands that
// print) goes to Options.Out, byte for byte the same on every run.
//
// Decisions the contract leaves open, made here:
//   - Default content: `write` without val= stores the page-aligned
//     virtual address of each page (DefaultValue).
//   - rss_file is MM_FILEPAGES + MM_SHMEMPAGES; rss_shmem shows the shmem
//     part alone. Every cost event is a counter; sim_ns and the events
//     for which cost.Event.MachineWide is true are machine-wide, the rest
//     belong to the current address space.
//   - config: an unknown key, or a value that no architecture accepts
//     (move_pmd=maybe), is malformed (exit 2); a valid value the chosen
//     architecture cannot honour (move_pmd=on on s390x) is a run-time
//     error, EINVAL, which a `!` line may expect. A line's switches apply
//     all or none. `arch NAME key=value...` takes the same switches.
//   - An unknown architecture name is malformed (exit 2); an unknown
//     address-space name is a run-time error, ENOENT.
//   - memory: a memory line after an mmap line is malformed. When the
//     machine exists already (an earlier mm, stats or config built it) and
//     nothing is mapped, it is rebuilt with the new size: address spaces
//     are recreated empty and counters restart at zero.
//   - cpus N between commands rebuilds the TLBs (mmu.Machine.SetCPUs):
//     every TLB starts empty, no flush is counted.
//   - Counters and sim_ns start at zero when the machine is built: the
//     kernel's boot (init_mm, the vmemmap of all memory, the zero page)
//     is not the script's work, so the memory size costs nothing.
//   - expect-error NAME makes the command before it a must-fail command,
//     `!` or not; it cannot follow expect (which fails only as a failed
//     expectation, with no error number) or expect-error. `! expect ...`
//     passes when the expectation does not hold. expect-error takes no
//     `!`.
//   - pin is all or nothing, as pin_user_pages' callers are: a pin that
//     fails part-way releases the pins it took (the pages it faulted in
//     stay, as in Linux).
//   - A command that panics (a bug in ptsim) fails the script at its line
//     with ErrInternal (exit status 1), never with a Go panic trace.
//   - Extra commands: `walk ADDR` (the walk trace), `vmas` (the VMA list),
//     `audit` (mmu.Machine.Check), mmap's `offset=N` for files.
//
// # Adding a command (feature issues)
//
// The command table is assembled by commandTable in commands.go from one
// slice per feature: coreCommands, mremapCommands (cmd_mremap.go),
// forkCommands (cmd_fork.go), hugetlbCommands (cmd_hugetlb.go) and
// pftCommands (cmd_pft.go). A feature replaces its file; a new feature
// adds a file and one entry in commandTable. A Command declares its name,
// usage, one-line summary, positional Args and Opts (key=value options
// and bare flags) with a Kind each, so the parser rejects malformed lines
// the same way for every command; an optional Check for what the schema
// cannot say; and Run:
//
//	func forkCommands() []Command {
//		return []Command{{
//			Name: "fork", Usage: "fork NAME",
//			Summary: "create address space NAME as a fork of the current one",
//			Args:    []Arg{{Name: "NAME", Kind: KindWord}},
//			Run: func(e *Env, c *Call) error {
//				parent, err := e.MM()
//				if err != nil {
//					return err
//				}
//				child, err := fork.Fork(parent, c.Word("NAME"))
//				if err != nil {
//					return err // the script fails here unless `!` or expect-error
//				}
//				e.Oracle().Fork(parent, child)
//				return nil
//			},
//		}}
//	}
//
// Run reads its arguments with Call.Num, Word, Has, Prot, Words and
// Options; reaches the machine with Env.Machine, the current address
// space with Env.MM, others with Env.LookupMM, creates one with Env.NewMM;
// prints with Env.Printf; and returns an error (wrapping an errno, so
// expect-error can name it) when the command fails, or a *Mismatch when
// something it verifies does not hold.
//
// # The content oracle
//
// Env.Oracle is an independent record of what every page should hold
// (see Oracle): `write` records into it, `check` compares mmu.MM.Content
// with it. Commands that move or copy data must tell it: mremap calls
// Oracle.Move(mm, old, new, len) (and Oracle.Unmap for a shrunk tail or a
// MREMAP_DONTUNMAP source), once per VMA for a fixed move of several
// VMAs, whose gaps keep the target's mappings; fork calls Oracle.Fork(parent, child) and then
// Oracle.Unmap(child, ...) for the ranges the child does not inherit; pft
// calls Oracle.WriteDefault for the pages its threads write (after a
// failure part-way, for those that hold what it writes); mmap's populate
// of a private writable file mapping calls Oracle.CopyOnWrite for the
// pages it copied (populate is best effort).
package scenario
