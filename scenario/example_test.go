package scenario_test

import (
	"fmt"
	"os"

	"github.com/ptsim/ptsim/scenario"
)

// Exec runs a script from Go: what it prints goes to out, diagnostics to
// diag, and the result is `ptsim run`'s exit status.
func ExampleExec() {
	script := `# fork write-protects the parent's private pages
mmap 0x7f0000000000 64K rw
write 0x7f0000000000 64K
fork child
expect fork_ptes == 16
use child
write 0x7f0000000000 val=7
check 0x7f0000000000 4K val=7
stats faults_cow
`
	status := scenario.Exec("example.pts", []byte(script), os.Stdout, os.Stdout, scenario.Options{Audit: true})
	fmt.Println("exit status", status)
	status = scenario.Exec("bad.pts", []byte("mmap 0x1000 4K rw\nexpect faults == 3\n"), os.Stdout, os.Stdout, scenario.Options{})
	fmt.Println("exit status", status)
	// Output:
	// faults_cow 1
	// exit status 0
	// bad.pts:2: expect faults == 3: expected faults == 3, found faults = 0
	// exit status 1
}
