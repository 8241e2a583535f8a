package scenario

import (
	"fmt"

	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

func runDump(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	o := pgtable.DumpOptions{Title: fmt.Sprintf("%s (%s)", mm.Name(), mm.Machine().Arch().Name)}
	if c.Has("ADDR") {
		if c.Num("LEN") == 0 {
			return fmt.Errorf("dump %#x: length 0: %w", c.Num("ADDR"), mmu.EINVAL)
		}
		o.Start = c.Num("ADDR")
		o.End = o.Start + c.Num("LEN")
		if o.End < o.Start {
			o.End = 0
		}
	}
	switch c.WordOr("format", "tree") {
	case "dot":
		o.Format = pgtable.DumpDOT
	case "mermaid":
		o.Format = pgtable.DumpMermaid
	}
	return mm.PageTable().Dump(e.Out(), o)
}

func runWalk(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	addr := c.Num("ADDR")
	if err := mm.PageTable().WriteWalk(e.Out(), addr); err != nil {
		return err
	}
	if tr, ok := mm.Translate(addr); ok {
		e.Printf("  --> Value: %#x\n", mm.Machine().Memory().Content(tr.PFN))
	}
	return nil
}
