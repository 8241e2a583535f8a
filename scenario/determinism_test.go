package scenario_test

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/scenario"
)

// p7All adds the scripts whose traces are too big for every test run.
var p7All = flag.Bool("p7.all", false, "TestDeterminism: trace every script, the heavy ones too (`make bench` does)")

// heavyTraces are the scripts whose `trace on` output runs to hundreds of
// megabytes (1 GiB mremaps traced primitive by primitive, about 175 MB and
// 675 MB): their untraced output is compared on every run, their trace
// with -p7.all, which `make bench` passes.
var heavyTraces = map[string]bool{
	"mremap/example.pts": true,
	"mremap/paths.pts":   true,
}

// determinismScripts returns every script under testdata, by path relative
// to it, except testdata/scale (the 64 GiB P6 script, run by `make bench`).
func determinismScripts(t *testing.T) []string {
	t.Helper()
	const dir = "../testdata"
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() && rel == "scale" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(rel, ".pts") {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("scripts under %s: %d, %v", dir, len(out), err)
	}
	return out
}

// withTrace returns src with `trace on` as its first command, or right
// after its arch line (arch must come first).
func withTrace(src []byte) []byte {
	lines := strings.SplitAfter(string(src), "\n")
	for i, l := range lines {
		f := strings.Fields(strings.SplitN(l, "#", 2)[0])
		if len(f) == 0 {
			continue
		}
		at := i
		if f[0] == "arch" {
			at = i + 1
		}
		head := strings.Join(lines[:at], "")
		if at > 0 && !strings.HasSuffix(head, "\n") {
			head += "\n"
		}
		return []byte(head + "trace on\n" + strings.Join(lines[at:], ""))
	}
	return []byte("trace on\n" + string(src))
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n int
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += len(p)
	return c.w.Write(p)
}

// digest runs one script in-process and returns the SHA-256 of everything
// it printed (hashed as it is printed: a trace can run to hundreds of
// megabytes), its diagnostics and its exit status, and the output's size.
func digest(name string, src []byte) ([sha256.Size]byte, int) {
	h := sha256.New()
	out := &counter{w: h}
	var diag bytes.Buffer
	st := scenario.Exec(name, src, out, &diag, scenario.Options{})
	fmt.Fprintf(h, "\x00%s\x00%d", diag.Bytes(), st)
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum, out.n
}

// TestDeterminism is P7 of TARGETS.md: every script of the suite, run
// with GOMAXPROCS 1 and then 2, prints byte for byte the same output,
// diagnostics and exit status, untraced and with `trace on` from its
// first command (every primitive step printed as it happens).
func TestDeterminism(t *testing.T) {
	scripts := determinismScripts(t)
	type result struct {
		plain, traced [sha256.Size]byte
		tracedBytes   int
		hasTrace      bool
	}
	run := func(procs int) map[string]result {
		old := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(old)
		out := map[string]result{}
		for _, rel := range scripts {
			src, err := os.ReadFile(filepath.Join("../testdata", rel))
			if err != nil {
				t.Fatal(err)
			}
			var r result
			r.plain, _ = digest(rel, src)
			if *p7All || !heavyTraces[rel] {
				r.traced, r.tracedBytes = digest(rel, withTrace(src))
				r.hasTrace = true
			}
			out[rel] = r
		}
		return out
	}
	one, two := run(1), run(2)
	traced := 0
	for _, rel := range scripts {
		a, b := one[rel], two[rel]
		if a.plain != b.plain {
			t.Errorf("%s: output differs between GOMAXPROCS 1 and 2", rel)
		}
		if a.traced != b.traced || a.tracedBytes != b.tracedBytes {
			t.Errorf("%s: traced output differs between GOMAXPROCS 1 and 2 (%d and %d bytes)", rel, a.tracedBytes, b.tracedBytes)
		}
		if a.hasTrace {
			traced++
		}
	}
	// The traced runs must really have traced: `trace on` adds output.
	for _, rel := range []string{"quickstart.pts", "fork.pts"} {
		src, err := os.ReadFile(filepath.Join("../testdata", rel))
		if err != nil {
			t.Fatal(err)
		}
		_, plain := digest(rel, src)
		if r := one[rel]; r.tracedBytes <= plain {
			t.Errorf("%s: traced output %d bytes, untraced %d: trace on printed nothing", rel, r.tracedBytes, plain)
		}
	}
	t.Logf("%d scripts compared, %d of them traced", len(scripts), traced)
}

// TestWithTrace checks where `trace on` goes.
func TestWithTrace(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"arch first", "# c\narch arm64\nmmap 0x1000 4K\n", "# c\narch arm64\ntrace on\nmmap 0x1000 4K\n"},
		{"no arch", "\n# c\nmmap 0x1000 4K\n", "\n# c\ntrace on\nmmap 0x1000 4K\n"},
		{"arch without newline", "arch um", "arch um\ntrace on\n"},
		{"only comments", "# c\n", "trace on\n# c\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(withTrace([]byte(c.in))); got != c.want {
				t.Fatalf("withTrace(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
