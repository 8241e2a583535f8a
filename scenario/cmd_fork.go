package scenario

import (
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
)

// forkCommands returns the fork command:
//
//	fork NAME
//
// creates address space NAME as a fork of the current one (package fork:
// dup_mmap and copy_page_range, batched or one PTE at a time as `config
// fork_batch=` says), which stays current. The oracle's record of the
// parent's private data is copied to the child, less the VM_DONTCOPY and
// VM_WIPEONFORK ranges, which the child does not have or has empty. A
// taken name fails with EEXIST, running out of memory with ENOMEM (no
// child then, as in Linux).
func forkCommands() []Command {
	return []Command{{
		Name: "fork", Usage: "fork NAME",
		Summary: "create address space NAME as a fork of the current one, which stays current (copy_page_range, batched as config fork_batch says)",
		Args:    []Arg{{Name: "NAME", Kind: KindWord}},
		Run:     runFork,
	}}
}

func runFork(e *Env, c *Call) error {
	parent, err := e.MM()
	if err != nil {
		return err
	}
	child, err := fork.Fork(parent, c.Word("NAME"))
	if err != nil {
		return err
	}
	e.mmNames = append(e.mmNames, child.Name())
	o := e.Oracle()
	o.Fork(parent, child)
	for _, v := range parent.VMAs() {
		if v.Flags&(mmu.VMDontCopy|mmu.VMWipeOnFork) != 0 {
			o.Unmap(child, v.Start, v.Len())
		}
	}
	return nil
}
