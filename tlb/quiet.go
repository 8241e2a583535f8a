package tlb

// QuietFlag implements pgtable.QuietObserver: the flag it points to is
// true while the arch's policy has no write hook, so that Written would do
// nothing and page tables may write runs of entries without telling the
// context one by one. It follows SetPolicy; a released context stops
// observing its table altogether.
func (c *Context) QuietFlag() *bool { return &c.sys.noWriteHook }
