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
	for _, id := range []string{"F1", "F2", "F3", "F4", "F5"} {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, id+" ") && !strings.Contains(line, " yes [") {
				t.Errorf("%s out of band: %s", id, line)
			}
		}
	}
}
