package scenariotest_test

import (
	"fmt"

	"github.com/ptsim/ptsim/scenario"
	"github.com/ptsim/ptsim/scenario/scenariotest"
)

// Output is what a golden file holds for a script: its output, and for a
// script that does not exit 0 its status and diagnostics (the second script
// below names the wrong error on purpose). RunDir compares
// every *.pts of a folder with its *.golden this way, from a test:
//
//	func TestScripts(t *testing.T) { scenariotest.RunDir(t, "testdata") }
func ExampleOutput() {
	fmt.Print(scenariotest.Output("ok.pts", []byte("mmap 0x10000000 16K\nwrite 0x10000000 16K\nstats faults\n"), scenario.Options{}))
	fmt.Print(scenariotest.Output("fails.pts", []byte("mmap 0x10000000 16K\n! mmap 0x10000000 4K\nexpect-error EINVAL\n"), scenario.Options{}))
	// Output:
	// faults 4
	// exit status 1
	// fails.pts:3: expect-error EINVAL: expected EINVAL from line 2 (! mmap 0x10000000 4K), found EEXIST: mmap 0x10000000-0x10001000: range already mapped: EEXIST (already exists)
}
