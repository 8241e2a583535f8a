package scenario

// pftCommands returns the page-fault test command:
//
//	pft THREADS ADDR LEN [writer=N]
//
// prints `pft threads=T faults=F elapsed_ns=E`. The speculative page
// faults issue replaces this file: the pages its threads write hold the
// `write` default, recorded with Oracle.WriteDefault.
func pftCommands() []Command { return nil }
