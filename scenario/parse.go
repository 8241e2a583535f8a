package scenario

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/mmu"
)

// Script is a parsed scenario script: its lines as typed calls, ready to
// run.
type Script struct {
	// Name is the file name diagnostics show.
	Name string
	// Calls are the command lines in order; comments and blank lines are
	// gone.
	Calls []*Call
}

// SyntaxError is one malformed line: the script cannot run (exit status 2).
type SyntaxError struct {
	// File and Line locate the line (Line 0: the whole file).
	File string
	Line int
	// Msg says what is wrong.
	Msg string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// SyntaxErrors is every malformed line of a script, in line order.
type SyntaxErrors []*SyntaxError

func (es SyntaxErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxSyntaxErrors bounds how many problems one file reports.
const maxSyntaxErrors = 20

// Parse reads a script. name is the file name diagnostics show. It returns
// SyntaxErrors (every malformed line, up to 20) when the script is
// malformed; nothing has run then.
//
// Lexical rules (SCENARIOS.md): one command per line; `#` starts a
// comment; blank lines are ignored; words are separated by spaces or tabs;
// options are key=value; numbers are decimal or 0x-hex and may end in K, M,
// G or T (powers of 1024, either case); a line starting with `!` must
// fail; expect-error NAME follows a command that must fail with NAME.
// Script rules checked here: arch comes first or not at all, memory comes
// before the first mmap, expect-error follows a command that can fail.
func Parse(name string, src []byte) (*Script, error) {
	s := &Script{Name: name}
	var errs SyntaxErrors
	bad := func(line int, format string, a ...any) {
		if len(errs) < maxSyntaxErrors {
			errs = append(errs, &SyntaxError{File: name, Line: line, Msg: fmt.Sprintf(format, a...)})
		}
	}
	// A UTF-8 byte-order mark, as some editors write, is not part of
	// the first command.
	text := strings.TrimPrefix(string(src), "\ufeff")
	if strings.IndexByte(text, 0) >= 0 {
		bad(0, "binary file (contains a NUL byte)")
		return nil, errs
	}
	seenMmap := false
	for i, raw := range strings.Split(text, "\n") {
		line := i + 1
		c, err := parseLine(name, line, raw)
		if err != nil {
			bad(line, "%v", err)
			continue
		}
		if c == nil {
			continue
		}
		switch c.Cmd.Name {
		case "arch":
			if len(s.Calls) > 0 {
				bad(line, "arch must be the first command (line %d came first)", s.Calls[0].Line)
			}
		case "memory":
			if seenMmap {
				bad(line, "memory must come before the first mmap")
			}
		case "mmap":
			seenMmap = true
		case "expect-error":
			prev := (*Call)(nil)
			if len(s.Calls) > 0 {
				prev = s.Calls[len(s.Calls)-1]
			}
			switch {
			case prev == nil:
				bad(line, "expect-error must follow the command that fails")
			case prev.Cmd.NoBang:
				bad(line, "expect-error must follow a command that can fail, not %s", prev.Cmd.Name)
			case prev.Cmd.NoErrno:
				bad(line, "expect-error must follow a command that fails with an error number; %s fails only as a failed expectation", prev.Cmd.Name)
			default:
				prev.ExpectErr = true
				prev.expectName, prev.expectLine = c.Word("NAME"), line
			}
		}
		s.Calls = append(s.Calls, c)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// splitWords cuts a line's comment and splits it into words.
func splitWords(raw string) (text string, bang bool, words []string) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	text = strings.TrimSpace(raw)
	if strings.HasPrefix(text, "!") {
		bang = true
		text = strings.TrimSpace(text[1:])
	}
	return text, bang, strings.Fields(text)
}

// parseLine parses one line; a nil call means a blank or comment line.
func parseLine(file string, line int, raw string) (*Call, error) {
	text, bang, words := splitWords(raw)
	if len(words) == 0 {
		if bang {
			return nil, fmt.Errorf("`!` needs a command after it")
		}
		return nil, nil
	}
	cmd := theRegistry.lookup(words[0])
	if cmd == nil {
		return nil, fmt.Errorf("unknown command %q (ptsim help lists them)", clip(words[0]))
	}
	if bang && cmd.NoBang {
		return nil, fmt.Errorf("%s cannot take `!`", cmd.Name)
	}
	c := &Call{Cmd: cmd, File: file, Line: line, Text: strings.Join(words, " "), Bang: bang,
		args: make([]value, len(cmd.Args)), opts: make([]value, len(cmd.Opts))}
	_ = text
	next := 0 // index of the next positional argument
	for _, w := range words[1:] {
		if k, v, ok := strings.Cut(w, "="); ok && isKey(k) {
			if err := c.setOption(k, v); err != nil {
				return nil, err
			}
			continue
		}
		if oi := c.flagIndex(w); oi >= 0 {
			if c.opts[oi].set {
				return nil, fmt.Errorf("%s: %s given twice", cmd.Name, w)
			}
			c.opts[oi] = value{set: true, word: w}
			continue
		}
		if next >= len(cmd.Args) {
			return nil, fmt.Errorf("%s: unexpected %q (usage: %s)", cmd.Name, clip(w), cmd.Usage)
		}
		a := cmd.Args[next]
		v, err := parseValue(a.Kind, a.Choices, w)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %v", cmd.Name, a.Name, err)
		}
		if a.Many {
			c.many = append(c.many, v)
			c.args[next] = v
			continue
		}
		c.args[next] = v
		next++
	}
	for i, a := range cmd.Args {
		if a.Optional || c.args[i].set {
			continue
		}
		return nil, fmt.Errorf("%s: missing %s (usage: %s)", cmd.Name, a.Name, cmd.Usage)
	}
	if cmd.Check != nil {
		if err := cmd.Check(c); err != nil {
			return nil, fmt.Errorf("%s: %v", cmd.Name, err)
		}
	}
	return c, nil
}

// isKey reports whether k can be an option key: a letter or underscore,
// then letters, digits, underscores or dashes. Words such as `==`, `<=`
// and `!=` are positional, not options.
func isKey(k string) bool {
	for i, r := range k {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		case i > 0 && (r == '-' || r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return k != ""
}

// flagIndex returns the index of the flag option spelled w, or -1.
func (c *Call) flagIndex(w string) int {
	for i, o := range c.Cmd.Opts {
		if o.Kind == KindFlag && o.Name == w {
			return i
		}
	}
	return -1
}

// setOption records key=value.
func (c *Call) setOption(k, v string) error {
	cmd := c.Cmd
	if k == "" || v == "" {
		return fmt.Errorf("%s: option %q needs a key and a value (key=value)", cmd.Name, clip(k+"="+v))
	}
	for i, o := range cmd.Opts {
		if o.Name != k {
			continue
		}
		if o.Kind == KindFlag {
			return fmt.Errorf("%s: %s is a flag, written without =value", cmd.Name, k)
		}
		if c.opts[i].set {
			return fmt.Errorf("%s: option %s given twice", cmd.Name, k)
		}
		val, err := parseValue(o.Kind, o.Choices, v)
		if err != nil {
			return fmt.Errorf("%s: %s=: %v", cmd.Name, k, err)
		}
		c.opts[i] = val
		return nil
	}
	if cmd.AnyOptions {
		for _, kv := range c.kvs {
			if kv.Key == k {
				return fmt.Errorf("%s: option %s given twice", cmd.Name, k)
			}
		}
		c.kvs = append(c.kvs, KeyValue{Key: k, Value: v})
		return nil
	}
	return fmt.Errorf("%s: unknown option %q%s", cmd.Name, clip(k), knownOpts(cmd))
}

// knownOpts lists a command's options for an error message.
func knownOpts(cmd *Command) string {
	var names []string
	for _, o := range cmd.Opts {
		if o.Kind == KindFlag {
			names = append(names, o.Name)
		} else {
			names = append(names, o.Name+"=")
		}
	}
	if len(names) == 0 {
		return " (" + cmd.Name + " takes no options)"
	}
	return " (known: " + strings.Join(names, " ") + ")"
}

// clip shortens a word for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// parseValue reads one word as kind.
func parseValue(kind Kind, choices []string, w string) (value, error) {
	v := value{set: true, word: w}
	switch kind {
	case KindAddr, KindSize, KindNum, KindValue:
		n, err := ParseNumber(w)
		if err != nil {
			return v, err
		}
		v.num = n
	case KindWord:
	case KindChoice:
		for _, c := range choices {
			if c == w {
				return v, nil
			}
		}
		return v, fmt.Errorf("%q is not one of %s", clip(w), strings.Join(choices, ", "))
	case KindProt:
		p, err := ParseProt(w)
		if err != nil {
			return v, err
		}
		v.num = uint64(p)
	case KindErrno:
		if _, ok := errno.ByName(w); !ok {
			return v, fmt.Errorf("unknown error name %q (EINVAL, ENOMEM, EFAULT, EEXIST, EPERM, EAGAIN, EBUSY, ENOENT...)", clip(w))
		}
	case KindCounter:
		if !IsCounter(w) {
			return v, fmt.Errorf("unknown counter %q (stats lists them)", clip(w))
		}
	default:
		return v, fmt.Errorf("value %q where a flag belongs", clip(w))
	}
	return v, nil
}

// ErrBadNumber is wrapped by ParseNumber's errors.
var ErrBadNumber = errors.New("bad number")

// ParseNumber reads a number as scripts write it: decimal or 0x-hex, with
// an optional K, M, G or T suffix (powers of 1024, either case). A leading
// zero does not mean octal. It fails on a sign, an empty number, a stray
// character, or a value that overflows 64 bits.
func ParseNumber(s string) (uint64, error) {
	orig := s
	shift := uint(0)
	if s != "" {
		switch s[len(s)-1] {
		case 'K', 'k':
			shift = 10
		case 'M', 'm':
			shift = 20
		case 'G', 'g':
			shift = 30
		case 'T', 't':
			shift = 40
		}
		if shift != 0 {
			s = s[:len(s)-1]
		}
	}
	base := 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		base, s = 16, s[2:]
	}
	if s == "" {
		return 0, fmt.Errorf("%w %q", ErrBadNumber, clip(orig))
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%w %q: too large", ErrBadNumber, clip(orig))
		}
		return 0, fmt.Errorf("%w %q", ErrBadNumber, clip(orig))
	}
	if shift != 0 && n > ^uint64(0)>>shift {
		return 0, fmt.Errorf("%w %q: too large", ErrBadNumber, clip(orig))
	}
	return n << shift, nil
}

// ParseProt reads a protection word: none, r, rw, rx or rwx.
func ParseProt(w string) (mmu.Prot, error) {
	switch w {
	case "none":
		return mmu.ProtNone, nil
	case "r":
		return mmu.ProtRead, nil
	case "rw":
		return mmu.ProtRead | mmu.ProtWrite, nil
	case "rx":
		return mmu.ProtRead | mmu.ProtExec, nil
	case "rwx":
		return mmu.ProtRead | mmu.ProtWrite | mmu.ProtExec, nil
	}
	return 0, fmt.Errorf("bad protection %q (want none, r, rw, rx or rwx)", clip(w))
}
