package scenario

import "testing"

// TestCommandTable checks the assembled table: unique names, a Run for
// every command, optional arguments last, Many last.
func TestCommandTable(t *testing.T) {
	if err := validateTable(commandTable()); err != nil {
		t.Fatal(err)
	}
	if len(theRegistry.cmds) != len(commandTable()) {
		t.Fatalf("registry has %d commands, table %d", len(theRegistry.cmds), len(commandTable()))
	}
}
