package scenario

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ptsim/ptsim/mmu"
)

// Kind says how the parser reads one argument or option value. Every
// value is checked when the script is parsed, so a malformed line is
// reported (exit status 2) before anything runs.
type Kind uint8

// The kinds of values.
const (
	// KindAddr is a virtual address: a number (decimal or 0x-hex, with an
	// optional K, M, G or T suffix).
	KindAddr Kind = iota
	// KindSize is a length in bytes, written as a number; interpreters
	// built for fuzzing cap it.
	KindSize
	// KindNum is a count (threads, CPUs, folios), written as a number;
	// interpreters built for fuzzing cap it.
	KindNum
	// KindValue is a number with no cap: a content value, a seed, a
	// counter value.
	KindValue
	// KindWord is any word (a name).
	KindWord
	// KindChoice is one of the words listed in Choices.
	KindChoice
	// KindProt is a protection: none, r, rw, rx or rwx.
	KindProt
	// KindErrno is an error name: EINVAL, ENOMEM, EFAULT...
	KindErrno
	// KindCounter is a counter name (see Counters).
	KindCounter
	// KindFlag is a bare word that is present or not (options only):
	// `populate`, `maymove`.
	KindFlag
)

// Arg describes one positional argument of a command.
type Arg struct {
	// Name is the name usage shows and Call accessors take ("ADDR").
	Name string
	// Kind says how the value is read.
	Kind Kind
	// Choices lists the accepted words of a KindChoice argument.
	Choices []string
	// Optional arguments may be left out; every argument after an
	// optional one must be optional too.
	Optional bool
	// Many makes the last argument take every remaining positional word
	// (zero or more if Optional, else one or more).
	Many bool
}

// Opt describes one option: `key=value`, or a bare flag word.
type Opt struct {
	// Name is the key (or the flag word).
	Name string
	// Kind says how the value is read; KindFlag for a bare word.
	Kind Kind
	// Choices lists the accepted values of a KindChoice option.
	Choices []string
}

// Command is one script command: its spelling, its argument schema (so
// the parser rejects malformed lines the same way for every command) and
// the code that runs it.
type Command struct {
	// Name is the first word of the line ("mmap").
	Name string
	// Usage is the synopsis `ptsim help` shows ("mmap ADDR LEN [PROT] [flags...]").
	Usage string
	// Summary is one line saying what the command does.
	Summary string
	// Args are the positional arguments, in order.
	Args []Arg
	// Opts are the options and flags, in any order after the name.
	Opts []Opt
	// AnyOptions accepts key=value options whose keys are not listed in
	// Opts (config and arch take every knob); Check must validate them.
	AnyOptions bool
	// NoBang forbids the `!` prefix and a following expect-error
	// (expect-error itself).
	NoBang bool
	// NoErrno forbids a following expect-error: the command fails only as
	// a failed expectation, never with an error number (expect). A `!`
	// line may still expect it to fail.
	NoErrno bool
	// Check, if set, validates a parsed call further when the script is
	// parsed (options that exclude each other, a range given by half);
	// its error makes the script malformed.
	Check func(c *Call) error
	// Run carries the command out. An error means the command failed: the
	// script stops with exit status 1 unless the line starts with `!` or
	// the next line is expect-error. Return a *Mismatch for a failed
	// expectation, so the report shows what was expected and found.
	Run func(e *Env, c *Call) error
}

// commandTable assembles every command: the core ones and each feature's.
// A feature adds its commands in its own file (cmd_<feature>.go) and one
// entry here.
func commandTable() []Command {
	return concat(
		coreCommands(),
		mremapCommands(),
		forkCommands(),
		hugetlbCommands(),
		pftCommands(),
	)
}

// concat joins command slices in order.
func concat(groups ...[]Command) []Command {
	var all []Command
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// registry is the command table, indexed once; sorted by name.
type registry struct {
	cmds []*Command
}

// theRegistry is built on first use and never changed, so concurrent
// parsers may share it.
var theRegistry = func() *registry {
	r := &registry{}
	seen := map[string]bool{}
	for _, c := range commandTable() {
		c := c
		if seen[c.Name] {
			// Two features claiming one name is a bug in the program text,
			// caught by TestCommandTable; the first definition wins.
			continue
		}
		seen[c.Name] = true
		r.cmds = append(r.cmds, &c)
	}
	sort.Slice(r.cmds, func(i, j int) bool { return r.cmds[i].Name < r.cmds[j].Name })
	return r
}()

// lookup returns the command called name.
func (r *registry) lookup(name string) *Command {
	i := sort.Search(len(r.cmds), func(i int) bool { return r.cmds[i].Name >= name })
	if i < len(r.cmds) && r.cmds[i].Name == name {
		return r.cmds[i]
	}
	return nil
}

// Commands returns every command, sorted by name: the script language's
// reference (ptsim help prints it).
func Commands() []Command {
	out := make([]Command, len(theRegistry.cmds))
	for i, c := range theRegistry.cmds {
		out[i] = *c
	}
	return out
}

// validateTable reports problems in a command table: duplicate names,
// missing Run, a required argument after an optional one, Many not last.
// TestCommandTable runs it on the real table.
func validateTable(cmds []Command) error {
	var errs []string
	seen := map[string]bool{}
	for _, c := range cmds {
		if c.Name == "" || strings.ContainsAny(c.Name, " \t=#!") {
			errs = append(errs, fmt.Sprintf("bad command name %q", c.Name))
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Sprintf("command %s defined twice", c.Name))
		}
		seen[c.Name] = true
		if c.Run == nil {
			errs = append(errs, fmt.Sprintf("command %s has no Run", c.Name))
		}
		if c.Usage == "" || c.Summary == "" {
			errs = append(errs, fmt.Sprintf("command %s needs Usage and Summary", c.Name))
		}
		opt := false
		for i, a := range c.Args {
			if opt && !a.Optional {
				errs = append(errs, fmt.Sprintf("command %s: required %s after an optional argument", c.Name, a.Name))
			}
			opt = opt || a.Optional
			if a.Many && i != len(c.Args)-1 {
				errs = append(errs, fmt.Sprintf("command %s: %s takes many values but is not last", c.Name, a.Name))
			}
			if a.Kind == KindFlag {
				errs = append(errs, fmt.Sprintf("command %s: argument %s cannot be a flag", c.Name, a.Name))
			}
			if a.Kind == KindChoice && len(a.Choices) == 0 {
				errs = append(errs, fmt.Sprintf("command %s: %s has no choices", c.Name, a.Name))
			}
		}
		for _, o := range c.Opts {
			if o.Name == "" || strings.ContainsAny(o.Name, " \t=#!") {
				errs = append(errs, fmt.Sprintf("command %s: bad option name %q", c.Name, o.Name))
			}
			if o.Kind == KindChoice && len(o.Choices) == 0 {
				errs = append(errs, fmt.Sprintf("command %s: option %s has no choices", c.Name, o.Name))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// value is one parsed argument or option.
type value struct {
	// set is true when the script gave the value.
	set bool
	// word is the text as written (the flag word for flags).
	word string
	// num is the number, for numeric kinds and KindProt (an mmu.Prot).
	num uint64
}

// KeyValue is one key=value option as written.
type KeyValue struct {
	Key, Value string
}

// Call is one parsed command line: which command, and its arguments and
// options, typed and checked.
type Call struct {
	// Cmd is the command.
	Cmd *Command
	// File and Line locate the line; Text is the line without its comment
	// and `!`.
	File string
	Line int
	Text string
	// Bang is set when the line starts with `!`: the command must fail.
	Bang bool
	// ExpectErr is set when an expect-error line follows: the command must
	// fail (with that error).
	ExpectErr bool
	// expectName and expectLine are the error name and line of that
	// expect-error, for the report when the command succeeds.
	expectName string
	expectLine int
	// args holds the positional values, one per Arg (the last may hold
	// many: see many).
	args []value
	// many holds the values of a Many argument.
	many []value
	// opts holds the option values, one per Opt.
	opts []value
	// kvs holds options not in Opts, in order (AnyOptions).
	kvs []KeyValue
}

// find returns the value named name: a positional argument or an option.
func (c *Call) find(name string) (value, Kind, bool) {
	for i, a := range c.Cmd.Args {
		if a.Name == name {
			if a.Many {
				if len(c.many) > 0 {
					return c.many[0], a.Kind, true
				}
				return value{}, a.Kind, true
			}
			return c.args[i], a.Kind, true
		}
	}
	for i, o := range c.Cmd.Opts {
		if o.Name == name {
			return c.opts[i], o.Kind, true
		}
	}
	return value{}, 0, false
}

// Has reports whether the script gave the argument, option or flag called
// name.
func (c *Call) Has(name string) bool {
	v, _, _ := c.find(name)
	return v.set
}

// Num returns the number given for name (an address, size, count or
// value), or 0 when it was not given.
func (c *Call) Num(name string) uint64 {
	v, _, _ := c.find(name)
	return v.num
}

// NumOr returns the number given for name, or def when it was not given.
func (c *Call) NumOr(name string, def uint64) uint64 {
	if v, _, _ := c.find(name); v.set {
		return v.num
	}
	return def
}

// Word returns the word given for name as written ("" if not given).
func (c *Call) Word(name string) string {
	v, _, _ := c.find(name)
	return v.word
}

// WordOr returns the word given for name, or def when it was not given.
func (c *Call) WordOr(name, def string) string {
	if v, _, _ := c.find(name); v.set {
		return v.word
	}
	return def
}

// Prot returns the protection given for name, or def when not given.
func (c *Call) Prot(name string, def mmu.Prot) mmu.Prot {
	if v, _, _ := c.find(name); v.set {
		return mmu.Prot(v.num)
	}
	return def
}

// Words returns every word given for a Many argument, in order.
func (c *Call) Words(name string) []string {
	for _, a := range c.Cmd.Args {
		if a.Name == name && a.Many {
			out := make([]string, len(c.many))
			for i, v := range c.many {
				out[i] = v.word
			}
			return out
		}
	}
	if v, _, _ := c.find(name); v.set {
		return []string{v.word}
	}
	return nil
}

// Options returns the key=value options not listed in the command's Opts
// (AnyOptions), in the order written.
func (c *Call) Options() []KeyValue { return append([]KeyValue(nil), c.kvs...) }

// String returns the line as written, with its `!`.
func (c *Call) String() string {
	if c.Bang {
		return "! " + c.Text
	}
	return c.Text
}
