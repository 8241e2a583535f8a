package scenario_test

import (
	"testing"

	"github.com/ptsim/ptsim/scenario/scenariotest"
)

// TestScripts runs every script under the repository's testdata/ and
// compares its output, exit status and diagnostics with its golden file.
// Run `go test ./scenario -run TestScripts -update` to rewrite them.
// testdata/scale holds the 64 GiB script of target P6, which `make bench`
// runs instead.
func TestScripts(t *testing.T) {
	scenariotest.RunDirOptions(t, "../testdata", scenariotest.Options{Skip: []string{"scale"}})
}
