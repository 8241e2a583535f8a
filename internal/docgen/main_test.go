package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsUpToDate regenerates every generated part of README.md and docs/
// in memory (script outputs, exercises, DOT graphs, plots) and fails on
// anything stale: the documentation shows what the model does now. Every
// docs script must run and hold.
func TestDocsUpToDate(t *testing.T) {
	stale, err := generate("../..", false, true, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("stale, run `make docs` and review the diff: %s", strings.Join(stale, ", "))
	}
}

// TestEveryScriptIsShown keeps docs/scripts and the tutorials in step: each
// script is shown (script, output, mermaid or dot marker) somewhere.
func TestEveryScriptIsShown(t *testing.T) {
	scripts, _ := filepath.Glob("../../docs/scripts/*.pts")
	if len(scripts) == 0 {
		t.Fatal("no docs scripts")
	}
	var all strings.Builder
	mds, _ := filepath.Glob("../../docs/*.md")
	for _, f := range append(mds, "../../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	for _, s := range scripts {
		if !strings.Contains(all.String(), ": docs/scripts/"+filepath.Base(s)+" -->") {
			t.Errorf("%s is shown in no tutorial", s)
		}
	}
}

// TestGenerate runs the generator on a small tree: markers are filled,
// a second run finds nothing stale, and a failing script is an error.
func TestGenerate(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "docs", "scripts"), 0o755))
	script := "mmap 0x10000000 64K\nwrite 0x10000000 64K\nstats faults\n"
	must(os.WriteFile(filepath.Join(root, "docs", "scripts", "a.pts"), []byte(script), 0o644))
	md := "# t\n<!-- script: docs/scripts/a.pts -->\n```\nold\n```\n\n<!-- output: docs/scripts/a.pts -->\n```\n```\n" +
		"<!-- exercise: -s 1 -kind tlb -->\n```\n```\n"
	must(os.WriteFile(filepath.Join(root, "README.md"), []byte(md), 0o644))
	stale, err := generate(root, true, false, io.Discard)
	must(err)
	if len(stale) != 1 || stale[0] != "README.md" {
		t.Fatalf("stale %v", stale)
	}
	got, _ := os.ReadFile(filepath.Join(root, "README.md"))
	for _, want := range []string{"```\n" + script + "```\n", "```\nfaults 16\n```\n", "Exercise: tlb, seed 1, x86_64"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("README lacks %q:\n%s", want, got)
		}
	}
	if stale, err := generate(root, false, false, io.Discard); err != nil || len(stale) != 0 {
		t.Errorf("second run: %v %v", stale, err)
	}
	must(os.WriteFile(filepath.Join(root, "docs", "scripts", "a.pts"), []byte("mmap 0x10000000 64K\nexpect faults == 3\n"), 0o644))
	if _, err := generate(root, false, false, io.Discard); err == nil || !strings.Contains(err.Error(), "does not hold") {
		t.Errorf("a failing script: %v", err)
	}
}

func TestWrap(t *testing.T) {
	got := wrap("aaa bbb ccc ddd", 7)
	if got != "aaa bbb\nccc ddd\n" {
		t.Errorf("wrap: %q", got)
	}
	if wrap("", 10) != "" {
		t.Error("wrap of nothing")
	}
}
