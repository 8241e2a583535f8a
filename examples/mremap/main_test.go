package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRun runs the example: three paths with their move counts, F1-F5 in
// band, and the explanation with the arm64 old-rule TLBI count.
func TestRun(t *testing.T) {
	var b bytes.Buffer
	if err := run(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"per PTE ", " 262144 ", "PTE tables (PMD moves)", " 512 ", "PMD table (PUD move)",
		"=== Fidelity F1-F5", "=== Why the seed saw 500x",
		"262145 TLB instructions", "tlbi_ops 9",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Format prints a title line per experiment ("F1  x86_64 ...") and
	// then one indented line per measure ending in its verdict.
	id := ""
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && len(line) > 0 && line[0] == 'F' {
			id = f[0]
			continue
		}
		if id != "" && strings.HasPrefix(line, "  ") && strings.HasSuffix(line, " NO") {
			t.Errorf("%s out of band: %s", id, line)
		}
	}
	if id == "" {
		t.Errorf("no experiment in the output:\n%s", out)
	}
}
