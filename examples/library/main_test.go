package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestRun runs the example and checks what it shows: the fork's
// copy-on-write kept the parent's page and the mremap moved two PTE tables
// and no PTE.
func TestRun(t *testing.T) {
	var b bytes.Buffer
	run(&b)
	out := b.String()
	for _, want := range []string{
		"faults 1024",
		"parent reads 1, child reads 42",
		"pmd_moves 2  pte_moves 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestREADME checks that README.md shows run as it is in this file, and
// its output as it is today.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(src, []byte("func run("))
	end := bytes.Index(src[start:], []byte("\n}\n"))
	if start < 0 || end < 0 {
		t.Fatal("main.go has no func run")
	}
	body := src[start : start+end+3]
	if !bytes.Contains(readme, body) {
		t.Errorf("README.md does not show func run as main.go has it:\n%s", body)
	}
	var b bytes.Buffer
	run(&b)
	if !bytes.Contains(readme, b.Bytes()) {
		t.Errorf("README.md does not show the output of today's run:\n%s", b.String())
	}
}
