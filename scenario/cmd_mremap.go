package scenario

// mremapCommands returns the mremap command:
//
//	mremap OLD OLDLEN NEWLEN [maymove] [fixed=ADDR] [dontunmap]
//
// Linux mremap semantics; prints the new address. The mremap issue
// replaces this file: it moves the oracle's data with Oracle.Move (and
// Oracle.Unmap for a shrunk tail or the MREMAP_DONTUNMAP source).
func mremapCommands() []Command { return nil }
