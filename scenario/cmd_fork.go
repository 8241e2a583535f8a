package scenario

// forkCommands returns the fork command:
//
//	fork NAME
//
// creates address space NAME as a fork of the current one, which stays
// current. The fork issue replaces this file: it calls Oracle.Fork(parent,
// child), then Oracle.Unmap on the child for VM_DONTCOPY and VM_WIPEONFORK
// ranges.
func forkCommands() []Command { return nil }
