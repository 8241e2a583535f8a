package scenario

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/mmu"
)

// DefaultArch is the architecture of a script without an arch line.
const DefaultArch = "x86_64"

// DefaultMemory is the simulated physical memory of a script without a
// memory line: 64 GiB (frames cost nothing until used).
const DefaultMemory = 64 << 30

// DefaultMM is the address space a script without an mm line runs in.
const DefaultMM = "init"

// Options configure a run.
type Options struct {
	// Out receives what the script prints (stats, dump, walk, trace...);
	// nil discards it.
	Out io.Writer
	// Audit runs the machine's invariant check (mmu.Machine.Check) after
	// every command; a broken invariant fails the script at that line.
	// Slow for big scripts; the golden runner turns it on.
	Audit bool
	// limits caps sizes and counts for fuzzing (zero: no caps).
	limits limits
}

// limits cap what one command may ask for, so fuzzed scripts stay small.
type limits struct {
	// maxSize caps KindSize values; maxNum caps KindNum values; memory
	// caps the simulated memory.
	maxSize, maxNum, memory uint64
}

// Failure is a script that ran and failed (exit status 1): an expectation
// that did not hold, or a command that failed unexpectedly.
type Failure struct {
	// File and Line locate the command; Command is its text.
	File    string
	Line    int
	Command string
	// Expected and Found say what should have happened and what did.
	Expected, Found string
	// Err is the command's error, if it failed.
	Err error
}

func (f *Failure) Error() string {
	return fmt.Sprintf("%s:%d: %s: expected %s, found %s", f.File, f.Line, f.Command, f.Expected, f.Found)
}

func (f *Failure) Unwrap() error { return f.Err }

// Mismatch is the error a command returns when what it checks does not
// hold: the failure report shows Expected and Found.
type Mismatch struct {
	Expected, Found string
}

func (m *Mismatch) Error() string { return fmt.Sprintf("expected %s, found %s", m.Expected, m.Found) }

// ExitStatus returns the exit status `ptsim run` gives for an error of
// Run or Parse: 0 for nil, 2 for a malformed script, 1 otherwise.
func ExitStatus(err error) int {
	var se SyntaxErrors
	var one *SyntaxError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se), errors.As(err, &one):
		return 2
	}
	return 1
}

// Env is what a running command sees: the machine (built lazily), the
// current address space, the content oracle and the output. One Env runs
// one script.
type Env struct {
	// opt are the run's options.
	opt Options
	// out receives the script's output.
	out io.Writer
	// archName and a are the chosen architecture (a is built on first use).
	archName string
	a        *arch.Arch
	// memory, cpus and seed configure the machine; knobs holds the config
	// switches set before the machine exists.
	memory uint64
	cpus   int
	seed   uint64
	knobs  *mmu.Knobs
	// tracing is set by `trace on`.
	tracing bool
	// m is the machine, nil until a command needs it.
	m *mmu.Machine
	// baseline is the memory in use right after the machine was built,
	// so `memory` can tell whether anything was allocated since.
	baseline uint64
	// cur is the current address space.
	cur *mmu.MM
	// mmNames lists the address spaces created by mm, in order, so a
	// rebuild by `memory` can recreate them.
	mmNames []string
	// oracle records what every page should hold.
	oracle *Oracle
	// call is the command running now.
	call *Call
	// last is the previous command and its error, for expect-error.
	last    *Call
	lastErr error
}

// NewEnv returns an environment for one script run.
func NewEnv(opt Options) *Env {
	out := opt.Out
	if out == nil {
		out = io.Discard
	}
	e := &Env{opt: opt, out: out, archName: DefaultArch, memory: DefaultMemory, cpus: 1, seed: 1}
	if opt.limits.memory != 0 {
		e.memory = opt.limits.memory
	}
	e.oracle = newOracle(e)
	return e
}

// Out returns the writer for what the script prints.
func (e *Env) Out() io.Writer { return e.out }

// Printf prints to the script's output.
func (e *Env) Printf(format string, a ...any) { fmt.Fprintf(e.out, format, a...) }

// Oracle returns the record of what every page should hold; commands that
// move or copy data (mremap, fork) update it.
func (e *Env) Oracle() *Oracle { return e.oracle }

// Call returns the command running now.
func (e *Env) Call() *Call { return e.call }

// Arch returns the chosen architecture.
func (e *Env) Arch() (*arch.Arch, error) {
	if e.a == nil {
		a, err := archs.ByName(e.archName)
		if err != nil {
			return nil, err
		}
		e.a = a
	}
	return e.a, nil
}

// Built reports whether the machine exists yet.
func (e *Env) Built() bool { return e.m != nil }

// Machine returns the machine, building it on first use from the arch,
// memory, cpus, seed, config and trace lines seen so far. Its counters
// start at zero after the boot.
func (e *Env) Machine() (*mmu.Machine, error) {
	if e.m != nil {
		return e.m, nil
	}
	a, err := e.Arch()
	if err != nil {
		return nil, err
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: e.memory, CPUs: e.cpus, Seed: e.seed, Knobs: e.knobs})
	if err != nil {
		return nil, fmt.Errorf("building the machine: %w", err)
	}
	// The kernel's own setup (init_mm's tables, the vmemmap of all
	// memory, the zero page) is the machine's boot, not the script's
	// work: counters and sim_ns start at zero, so the memory size and the
	// arch's boot do not show in a script's figures.
	m.Reset()
	if e.tracing {
		m.SetTracer(cost.TextTracer{W: e.out})
	}
	e.m = m
	e.baseline = m.Memory().Frames() - m.Memory().FreeFrames()
	return m, nil
}

// MM returns the current address space, creating one named init if the
// script has made none.
func (e *Env) MM() (*mmu.MM, error) {
	if e.cur != nil {
		return e.cur, nil
	}
	mm, err := e.NewMM(DefaultMM)
	if err != nil {
		return nil, err
	}
	e.cur = mm
	return mm, nil
}

// NewMM creates an empty address space called name (not made current).
// EEXIST for a name in use.
func (e *Env) NewMM(name string) (*mmu.MM, error) {
	m, err := e.Machine()
	if err != nil {
		return nil, err
	}
	mm, err := m.NewMM(name)
	if err != nil {
		return nil, err
	}
	e.mmNames = append(e.mmNames, name)
	return mm, nil
}

// LookupMM returns the address space called name; ENOENT if there is none.
func (e *Env) LookupMM(name string) (*mmu.MM, error) {
	m, err := e.Machine()
	if err != nil {
		return nil, err
	}
	mm, ok := m.MM(name)
	if !ok {
		return nil, fmt.Errorf("no address space called %q: %w", name, mmu.ENOENT)
	}
	return mm, nil
}

// SetCurrent makes mm the current address space.
func (e *Env) SetCurrent(mm *mmu.MM) { e.cur = mm }

// Run runs a parsed script. It returns nil when every command ran and
// every expectation held, and a *Failure otherwise (the script stops at
// the first failure).
func Run(s *Script, opt Options) error {
	return NewEnv(opt).Run(s)
}

// Run runs the script's calls in this environment.
func (e *Env) Run(s *Script) error {
	for _, c := range s.Calls {
		if err := e.step(c); err != nil {
			return err
		}
	}
	return nil
}

// ErrInternal is wrapped by the error of a command that panicked: a bug
// in ptsim, reported as a failure at the command's line (exit status 1)
// instead of a Go panic trace. The machine may be inconsistent after it,
// so the script stops there, even on a `!` line.
var ErrInternal = errors.New("internal error (a bug in ptsim; please report it with the script)")

// runCall runs one call's command, turning a panic into an error that
// wraps ErrInternal.
func (e *Env) runCall(c *Call) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panic: %v", ErrInternal, r)
		}
	}()
	if err := e.limit(c); err != nil {
		return err
	}
	return c.Cmd.Run(e, c)
}

// step runs one call and judges its outcome.
func (e *Env) step(c *Call) error {
	e.call = c
	err := e.runCall(c)
	if errors.Is(err, ErrInternal) {
		return &Failure{File: c.File, Line: c.Line, Command: c.String(),
			Expected: "the command to run", Found: err.Error(), Err: err}
	}
	if c.Cmd.Name != "expect-error" {
		e.last, e.lastErr = c, err
	}
	mustFail := c.Bang || c.ExpectErr
	switch {
	case err != nil && !mustFail:
		f := &Failure{File: c.File, Line: c.Line, Command: c.String(), Err: err}
		var mm *Mismatch
		if errors.As(err, &mm) {
			f.Expected, f.Found = mm.Expected, mm.Found
		} else {
			f.Expected, f.Found = "success", "error: "+err.Error()
		}
		return f
	case err == nil && mustFail:
		want, found := "an error", "success"
		switch {
		case c.Cmd.NoErrno:
			want, found = "it not to hold", "it held"
		case c.ExpectErr:
			want = fmt.Sprintf("error %s (expect-error on line %d)", c.expectName, c.expectLine)
		}
		return &Failure{File: c.File, Line: c.Line, Command: c.String(), Expected: want, Found: found}
	}
	if e.opt.Audit && e.m != nil {
		if err := e.m.Check(); err != nil {
			return &Failure{File: c.File, Line: c.Line, Command: c.String(),
				Expected: "the machine's invariants to hold", Found: err.Error(), Err: err}
		}
	}
	return nil
}

// limit enforces the fuzzing caps on a call's sizes and counts.
func (e *Env) limit(c *Call) error {
	l := e.opt.limits
	if l.maxSize == 0 && l.maxNum == 0 {
		return nil
	}
	check := func(kind Kind, v value, name string) error {
		switch {
		case !v.set:
		case kind == KindSize && l.maxSize != 0 && v.num > l.maxSize:
			return fmt.Errorf("%s %#x above the run's cap %#x: %w", name, v.num, l.maxSize, mmu.EINVAL)
		case kind == KindNum && l.maxNum != 0 && v.num > l.maxNum:
			return fmt.Errorf("%s %d above the run's cap %d: %w", name, v.num, l.maxNum, mmu.EINVAL)
		}
		return nil
	}
	for i, a := range c.Cmd.Args {
		vs := []value{c.args[i]}
		if a.Many {
			vs = c.many
		}
		for _, v := range vs {
			if err := check(a.Kind, v, a.Name); err != nil {
				return err
			}
		}
	}
	for i, o := range c.Cmd.Opts {
		if err := check(o.Kind, c.opts[i], o.Name); err != nil {
			return err
		}
	}
	return nil
}

// ErrnoName returns the name of the error number err wraps ("EINVAL"), or
// "" when it wraps none.
func ErrnoName(err error) string {
	var en errno.Errno
	if errors.As(err, &en) {
		return en.Name()
	}
	return ""
}

// RunFile parses and runs the script at path. Its errors are those of
// Parse and Run; reading the file failing is reported as a SyntaxError on
// line 0 (exit status 2).
func RunFile(path string, opt Options) error {
	s, err := ParseFile(path)
	if err != nil {
		return err
	}
	return Run(s, opt)
}

// ParseFile reads and parses the script at path, naming it path in
// diagnostics.
func ParseFile(path string) (*Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, SyntaxErrors{{File: path, Msg: fmt.Sprintf("cannot read: %v", err)}}
	}
	return Parse(path, src)
}

// Exec parses and runs one script: what it prints goes to out, the
// diagnostics (SyntaxErrors or the Failure, one per line, file:line
// first) to diag. It returns the exit status: 0, 1 or 2 as ExitStatus.
// opt.Out is replaced by out.
func Exec(name string, src []byte, out, diag io.Writer, opt Options) int {
	s, err := Parse(name, src)
	if err == nil {
		opt.Out = out
		err = Run(s, opt)
	}
	if err != nil {
		fmt.Fprintln(diag, err)
	}
	return ExitStatus(err)
}
