package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
)

// TestRun runs the example and checks that every architecture shows its
// four walks: three translations and one fault, with the written values.
func TestRun(t *testing.T) {
	var b bytes.Buffer
	if err := run(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	sections := strings.Split(out, "=== ")[1:]
	if len(sections) != len(archs.Names()) {
		t.Fatalf("%d sections for %d archs:\n%s", len(sections), len(archs.Names()), out)
	}
	for i, s := range sections {
		name := archs.Names()[i]
		if !strings.HasPrefix(s, name+":") {
			t.Fatalf("section %d is not %s: %.40s", i, name, s)
		}
		if n := strings.Count(s, "Translates to Physical Address"); n != 3 {
			t.Errorf("%s: %d translations, want 3", name, n)
		}
		if n := strings.Count(s, "--> Fault ("); n != 1 {
			t.Errorf("%s: %d faults, want 1", name, n)
		}
		for _, v := range []string{"Value: 0xcafe", "Value: 0x0", "Value: 0xbeef"} {
			if !strings.Contains(s, v) {
				t.Errorf("%s lacks %q", name, v)
			}
		}
	}
}
