package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedCorpus adds every script under the repository's testdata/ to f.
func seedCorpus(f *testing.F) {
	var n int
	err := filepath.WalkDir("../testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".pts") {
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			f.Add(src)
			n++
		}
		return nil
	})
	if err != nil || n == 0 {
		f.Fatalf("seed corpus: %d scripts, %v", n, err)
	}
	f.Add([]byte("!"))
	f.Add([]byte("mmap 0x10000000 4K\x00"))
	f.Add([]byte("expect vmas >= 0xffffffffffffffffT"))
}

// FuzzParse checks that no input makes the parser panic, that it returns
// either a script or SyntaxErrors naming lines of the input, and that a
// parsed script prints back to a script that parses to the same calls.
func FuzzParse(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("f.pts", src)
		lines := strings.Count(string(src), "\n") + 1
		if err != nil {
			var se SyntaxErrors
			if !errors.As(err, &se) || len(se) == 0 || len(se) > maxSyntaxErrors || s != nil {
				t.Fatalf("error %v (%T) with script %v", err, err, s)
			}
			for _, e := range se {
				if e.Line < 0 || e.Line > lines || e.File != "f.pts" {
					t.Fatalf("bad location %v (%d lines)", e, lines)
				}
			}
			return
		}
		var b strings.Builder
		prev := 0
		for _, c := range s.Calls {
			if c.Cmd == nil || c.Line <= prev || c.Line > lines {
				t.Fatalf("call %+v after line %d", c, prev)
			}
			prev = c.Line
			b.WriteString(c.String() + "\n")
		}
		again, err := Parse("g.pts", []byte(b.String()))
		if err != nil {
			t.Fatalf("printed script does not parse: %v\n%s", err, b.String())
		}
		if len(again.Calls) != len(s.Calls) {
			t.Fatalf("%d calls, printed %d", len(s.Calls), len(again.Calls))
		}
		for i, c := range again.Calls {
			if c.String() != s.Calls[i].String() || c.ExpectErr != s.Calls[i].ExpectErr {
				t.Fatalf("call %d: %q became %q", i, s.Calls[i], c)
			}
		}
	})
}

// fuzzLimits keep fuzzed runs small: 4 MiB per range, counts up to 8,
// 64 MiB of memory.
var fuzzLimits = limits{maxSize: 4 << 20, maxNum: 8, memory: 64 << 20}

// FuzzRun runs small scripts with the invariant check after every
// command: no input may panic, and the machine's invariants must hold
// whatever the script does.
func FuzzRun(f *testing.F) {
	seedCorpus(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("f.pts", src)
		if err != nil {
			return
		}
		err = Run(s, Options{Audit: true, limits: fuzzLimits})
		var fl *Failure
		switch {
		case err == nil:
		case errors.Is(err, ErrInternal):
			t.Fatalf("panic: %v\nscript:\n%s", err, src)
		case !errors.As(err, &fl):
			t.Fatalf("run error %v (%T) is not a *Failure", err, err)
		case strings.HasPrefix(fl.Expected, "the machine's invariants") && fl.Command != "audit":
			t.Fatalf("invariants broken: %v\nscript:\n%s", err, src)
		}
	})
}
