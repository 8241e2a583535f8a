// Command docgen regenerates everything in README.md and docs/ that comes
// from running ptsim, so that no figure in the documentation is typed by
// hand:
//
//	go run ./internal/docgen          # rewrite (what `make docs` runs)
//	go run ./internal/docgen -check   # report what is stale, change nothing
//
// In the Markdown files it fills the fenced block after each marker:
//
//	<!-- script: docs/scripts/NAME.pts -->   the script's text
//	<!-- output: docs/scripts/NAME.pts -->   what `ptsim run` prints for it
//	<!-- exercise: -s 7 -kind fork -c -->     what `ptsim exercise` prints
//
// and for each marker `<!-- dot: docs/scripts/NAME.pts -->` it runs the
// script, whose output ends with a Graphviz graph (`dump format=dot`), writes
// it to docs/img/NAME.dot and renders docs/img/NAME.svg with Graphviz's
// dot (the SVG carries the DOT's SHA-256, so a check needs no Graphviz).
// It draws the plots (internal/plot) into docs/plots. Every script must
// run and hold (exit 0). The test of this package runs the check, so the
// documentation cannot drift from the model: when a cost figure or a
// behaviour changes, `make docs` brings it back in step.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/ptsim/ptsim/internal/exercise"
	"github.com/ptsim/ptsim/internal/plot"
	"github.com/ptsim/ptsim/scenario"
)

func main() {
	check := flag.Bool("check", false, "report stale files instead of rewriting them")
	root := flag.String("root", ".", "the repository's root")
	flag.Parse()
	stale, err := generate(*root, !*check, true, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	if *check && len(stale) > 0 {
		fmt.Fprintf(os.Stderr, "docgen: stale (run `make docs`): %s\n", strings.Join(stale, ", "))
		os.Exit(1)
	}
}

// markerRE finds a marker and the fenced block after it.
var markerRE = regexp.MustCompile("(?m)^<!-- (script|output|exercise|mermaid): ([^>]*?) -->\n```([a-z]*)\n((?:.*\n)*?)```\n")

// captionRE finds a plot caption: the figure's Caption, wrapped, between
// two markers.
var captionRE = regexp.MustCompile(`(?s)<!-- caption: ([a-z0-9-]+) -->\n.*?<!-- /caption -->`)

// dotRE finds a DOT marker (no block follows it).
var dotRE = regexp.MustCompile(`(?m)^<!-- dot: ([^ >]+) -->`)

// generate brings every generated part of the docs up to date under root
// (the plots too when withPlots is set): it rewrites them when write is
// set, and returns the files that were (or would be) changed.
func generate(root string, write, withPlots bool, log io.Writer) ([]string, error) {
	var stale []string
	var figs []*plot.Figure
	if withPlots {
		var err error
		if figs, err = plot.Collect(); err != nil {
			return nil, err
		}
	}
	captions := map[string]string{}
	for _, f := range figs {
		captions[f.Name] = f.Caption
	}
	files := []string{filepath.Join(root, "README.md")}
	mds, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append(files, mds...)
	outputs := map[string]string{} // script path -> output
	runScript := func(rel string) (string, error) {
		if out, ok := outputs[rel]; ok {
			return out, nil
		}
		var out, diag bytes.Buffer
		s, err := scenario.ParseFile(filepath.Join(root, rel))
		if err != nil {
			return "", err
		}
		if err := scenario.Run(s, scenario.Options{Out: &out}); err != nil {
			return "", fmt.Errorf("%s does not hold: %v %s", rel, err, diag.String())
		}
		outputs[rel] = out.String()
		return out.String(), nil
	}
	var dots []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		text := string(data)
		var ferr error
		next := markerRE.ReplaceAllStringFunc(text, func(m string) string {
			g := markerRE.FindStringSubmatch(m)
			kind, arg, lang := g[1], g[2], g[3]
			var body string
			switch kind {
			case "script":
				b, err := os.ReadFile(filepath.Join(root, arg))
				if err != nil {
					ferr = errors.Join(ferr, err)
					return m
				}
				body = string(b)
			case "output", "mermaid":
				out, err := runScript(arg)
				if err != nil {
					ferr = errors.Join(ferr, err)
					return m
				}
				body = out
			case "exercise":
				out, err := exerciseText(arg)
				if err != nil {
					ferr = errors.Join(ferr, fmt.Errorf("%s: exercise %s: %w", f, arg, err))
					return m
				}
				body = out
			}
			return fmt.Sprintf("<!-- %s: %s -->\n```%s\n%s```\n", kind, arg, lang, body)
		})
		next = captionRE.ReplaceAllStringFunc(next, func(m string) string {
			name := captionRE.FindStringSubmatch(m)[1]
			c, ok := captions[name]
			if !ok {
				ferr = errors.Join(ferr, fmt.Errorf("no figure %q for a caption", name))
				return m
			}
			return "<!-- caption: " + name + " -->\n" + wrap(c, 76) + "<!-- /caption -->"
		})
		if ferr != nil {
			return nil, fmt.Errorf("%s: %w", f, ferr)
		}
		for _, g := range dotRE.FindAllStringSubmatch(text, -1) {
			dots = append(dots, g[1])
		}
		if next != text {
			stale = append(stale, rel(root, f))
			if write {
				if err := os.WriteFile(f, []byte(next), 0o644); err != nil {
					return nil, err
				}
			}
		}
	}
	sort.Strings(dots)
	for _, d := range dots {
		s, err := renderDOT(root, d, runScript, write)
		if err != nil {
			return nil, err
		}
		stale = append(stale, s...)
	}
	s, err := plots(root, figs, write)
	if err != nil {
		return nil, err
	}
	stale = append(stale, s...)
	for _, s := range stale {
		if write {
			fmt.Fprintln(log, "wrote", s)
		}
	}
	return stale, nil
}

// rel returns path relative to root, for messages.
func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

// exerciseText runs `ptsim exercise` with the marker's arguments.
func exerciseText(args string) (string, error) {
	fs := flag.NewFlagSet("exercise", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	seed := fs.Uint64("s", 0, "")
	answer := fs.Bool("c", false, "")
	kind := fs.String("kind", "", "")
	archName := fs.String("arch", "", "")
	if err := fs.Parse(strings.Fields(args)); err != nil {
		return "", err
	}
	e, err := exercise.Generate(exercise.Options{Seed: *seed, Kind: *kind, Arch: *archName})
	if err != nil {
		return "", err
	}
	if *answer {
		return e.Problem + "\n" + e.Answer, nil
	}
	return e.Problem, nil
}

// hashMark is the comment docgen puts in a rendered SVG: the SHA-256 of
// the DOT it was rendered from.
const hashMark = "<!-- ptsim-dot-sha256: "

// renderDOT runs the script of a DOT marker, writes docs/img/NAME.dot and
// renders docs/img/NAME.svg; it returns the stale files.
func renderDOT(root, script string, run func(string) (string, error), write bool) ([]string, error) {
	out, err := run(script)
	if err != nil {
		return nil, err
	}
	// The graph is the script's last output: what a `mremap` printed
	// before it is dropped.
	i := strings.LastIndex(out, "digraph ")
	if i < 0 || !strings.HasSuffix(out, "}\n") {
		return nil, fmt.Errorf("%s: a dot marker's script must end with a `dump format=dot`", script)
	}
	out = out[i:]
	name := strings.TrimSuffix(filepath.Base(script), ".pts")
	dotPath := filepath.Join(root, "docs", "img", name+".dot")
	svgPath := filepath.Join(root, "docs", "img", name+".svg")
	sum := sha256.Sum256([]byte(out))
	mark := hashMark + hex.EncodeToString(sum[:]) + " -->"
	var stale []string
	if old, err := os.ReadFile(dotPath); err != nil || string(old) != out {
		stale = append(stale, rel(root, dotPath))
		if write {
			if err := os.MkdirAll(filepath.Dir(dotPath), 0o755); err != nil {
				return nil, err
			}
			if err := os.WriteFile(dotPath, []byte(out), 0o644); err != nil {
				return nil, err
			}
		}
	}
	if old, err := os.ReadFile(svgPath); err != nil || !bytes.Contains(old, []byte(mark)) {
		stale = append(stale, rel(root, svgPath))
		if write {
			svg, err := graphviz(out)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", script, err)
			}
			// The mark goes after the XML declaration.
			svg = strings.Replace(svg, "?>\n", "?>\n"+mark+"\n", 1)
			if err := os.WriteFile(svgPath, []byte(svg), 0o644); err != nil {
				return nil, err
			}
		}
	}
	return stale, nil
}

// graphviz renders DOT text to SVG with Graphviz's dot.
func graphviz(dot string) (string, error) {
	path, err := exec.LookPath("dot")
	if err != nil {
		return "", fmt.Errorf("Graphviz's dot is not installed (make docs-deps, or apt-get install -y graphviz): %w", err)
	}
	cmd := exec.Command(path, "-Tsvg")
	cmd.Stdin = strings.NewReader(dot)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("dot: %v: %s", err, errb.String())
	}
	return out.String(), nil
}

// plots draws every figure into docs/plots and returns the stale files.
// SVGs are compared byte for byte; a PNG is rewritten when its SVG is
// (PNG bytes may differ across machines).
func plots(root string, figs []*plot.Figure, write bool) ([]string, error) {
	dir := filepath.Join(root, "docs", "plots")
	var stale []string
	for _, f := range figs {
		svg, err := plot.SVG(f)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, f.Name+".svg")
		_, pngErr := os.Stat(filepath.Join(dir, f.Name+".png"))
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, svg) && pngErr == nil {
			continue
		}
		stale = append(stale, rel(root, path))
		if write {
			if _, err := plot.Write(dir, []*plot.Figure{f}); err != nil {
				return nil, err
			}
		}
	}
	return stale, nil
}

// wrap breaks text into lines of at most width columns, each ending in a
// newline.
func wrap(text string, width int) string {
	var b strings.Builder
	col := 0
	for _, w := range strings.Fields(text) {
		switch {
		case col == 0:
		case col+1+len(w) > width:
			b.WriteByte('\n')
			col = 0
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	if col > 0 {
		b.WriteByte('\n')
	}
	return b.String()
}
