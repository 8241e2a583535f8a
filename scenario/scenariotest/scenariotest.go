// Package scenariotest runs folders of scenario scripts from `go test`
// and compares what each prints with a golden file next to it, so users
// keep their own suites of scripts:
//
//	func TestScripts(t *testing.T) { scenariotest.RunDir(t, "testdata") }
//
// Every file ending in .pts under the folder (recursively) is one subtest,
// named by its path in the folder. Its golden file has the same name with
// .golden in place of .pts and holds exactly what the script printed; a
// script that does not exit 0 adds a line `exit status N` followed by its
// diagnostics, the file named by its path in the folder, so a script
// expected to fail (a failed expectation, a malformed line) is asserted by
// its golden file like any other.
//
// Run `go test -run TestScripts -update` to write the golden files from
// the current output (review the diff before committing it). The package
// registers the -update flag when it is imported, unless another package
// registered a flag of that name first; a test package that defines its
// own -update flag at package level collides with it, so use this one
// (or set Options.Update).
package scenariotest

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/scenario"
)

// Ext is the file extension of scenario scripts.
const Ext = ".pts"

// GoldenExt is the extension of golden files.
const GoldenExt = ".golden"

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files of scenario scripts (scenariotest)")
	}
}

// updating reports whether -update was given.
func updating() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return f.Value.String() == "true"
	}
	b, _ := g.Get().(bool)
	return b
}

// Options tune RunDir.
type Options struct {
	// NoAudit turns off the invariant check after every command (on by
	// default: tests should catch a broken machine at the line that broke
	// it). Turn it off for big scripts.
	NoAudit bool
	// Update, when set, overrides the -update flag.
	Update *bool
	// Skip names folders under the directory, as paths relative to it
	// ("scale"), whose scripts are not run: scripts too big for a test
	// run, such as ptsim's 64 GiB scale script, which `make bench` runs.
	Skip []string
}

// RunDir runs every script under dir as a subtest and compares its output
// with its golden file; see the package documentation.
func RunDir(t *testing.T, dir string) { RunDirOptions(t, dir, Options{}) }

// RunDirOptions is RunDir with options.
func RunDirOptions(t *testing.T, dir string, o Options) {
	t.Helper()
	update := updating()
	if o.Update != nil {
		update = *o.Update
	}
	var scripts []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != dir {
			if rel, err := filepath.Rel(dir, path); err == nil && slices.Contains(o.Skip, filepath.ToSlash(rel)) {
				return filepath.SkipDir
			}
		}
		if !d.IsDir() && strings.HasSuffix(path, Ext) {
			scripts = append(scripts, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scenariotest: %v", err)
	}
	if len(scripts) == 0 {
		t.Fatalf("scenariotest: no %s scripts under %s", Ext, dir)
	}
	for _, path := range scripts {
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			rel = path
		}
		rel = filepath.ToSlash(rel)
		t.Run(rel, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := Output(rel, src, scenario.Options{Audit: !o.NoAudit})
			golden := strings.TrimSuffix(path, Ext) + GoldenExt
			if update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run `go test -run %s -update` to create it)", err, t.Name())
			}
			if got != string(want) {
				t.Errorf("%s: output differs from %s (run with -update to accept):\n%s",
					rel, filepath.Base(golden), diff(string(want), got))
			}
		})
	}
}

// Output runs one script and returns what its golden file holds: the
// script's output, then, unless it exits 0, `exit status N` and the
// diagnostics.
func Output(name string, src []byte, opt scenario.Options) string {
	var out, diag bytes.Buffer
	status := scenario.Exec(name, src, &out, &diag, opt)
	if status != 0 {
		fmt.Fprintf(&out, "exit status %d\n%s", status, diag.String())
	}
	return out.String()
}

// diff shows where want and got differ: from the first differing line,
// up to 12 lines, unchanged ones indented, changed ones as -want/+got.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "first difference at line %d (-golden +got)\n", i+1)
	for j := i; j < i+12 && (j < len(w) || j < len(g)); j++ {
		switch {
		case j < len(w) && j < len(g) && w[j] == g[j]:
			fmt.Fprintf(&b, "  %s\n", w[j])
		default:
			if j < len(w) {
				fmt.Fprintf(&b, "- %s\n", w[j])
			}
			if j < len(g) {
				fmt.Fprintf(&b, "+ %s\n", g[j])
			}
		}
	}
	return b.String()
}
