package tlb

// IgnoresWrites implements pgtable.QuietObserver: a context ignores entry
// writes when the arch's policy has no write hook (or the context is
// released), so page tables may write runs of entries without telling it
// one by one.
func (c *Context) IgnoresWrites() bool { return c.sys.writeHook == nil || c.released }
