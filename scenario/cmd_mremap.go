package scenario

import (
	"errors"
	"fmt"

	"github.com/ptsim/ptsim/mremap"
)

// mremapCommands returns the mremap command:
//
//	mremap OLD OLDLEN NEWLEN [maymove] [fixed=ADDR] [dontunmap] [hint=ADDR]
//
// Linux mremap semantics (package mremap): shrink or grow in place, or
// move with maymove; fixed=ADDR is MREMAP_FIXED to ADDR; dontunmap is
// MREMAP_DONTUNMAP, with hint=ADDR (an extra) as its new-address hint. It
// prints `mremap OLD -> NEW`. The content oracle follows the data: a
// shrunk tail is forgotten, a move carries the old range's data to the
// new one and leaves the old range empty (MREMAP_DONTUNMAP's old VMA then
// reads fresh pages), and a fixed move's target loses what it held.
func mremapCommands() []Command {
	return []Command{{
		Name:    "mremap",
		Usage:   "mremap OLD OLDLEN NEWLEN [maymove] [fixed=ADDR] [dontunmap] [hint=ADDR]",
		Summary: "resize and/or move a mapping as Linux mremap does (maymove, fixed=ADDR, dontunmap, hint=ADDR); prints the new address",
		Args:    []Arg{{Name: "OLD", Kind: KindAddr}, {Name: "OLDLEN", Kind: KindSize}, {Name: "NEWLEN", Kind: KindSize}},
		Opts: []Opt{{Name: "maymove", Kind: KindFlag}, {Name: "fixed", Kind: KindAddr},
			{Name: "dontunmap", Kind: KindFlag}, {Name: "hint", Kind: KindAddr}},
		Check: func(c *Call) error {
			if c.Has("fixed") && c.Has("hint") {
				return fmt.Errorf("fixed= and hint= both give the new address; use one")
			}
			return nil
		},
		Run: runMremap,
	}}
}

func runMremap(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	var fl mremap.Flags
	var newAddr uint64
	if c.Has("maymove") {
		fl |= mremap.MayMove
	}
	if c.Has("fixed") {
		fl |= mremap.Fixed
		newAddr = c.Num("fixed")
	}
	if c.Has("dontunmap") {
		fl |= mremap.DontUnmap
	}
	if c.Has("hint") {
		newAddr = c.Num("hint")
	}
	old, oldLen, newLen := c.Num("OLD"), c.Num("OLDLEN"), c.Num("NEWLEN")
	ps := mm.Machine().Arch().PageSize()
	// A fixed move without a resize moves every VMA of the old range
	// separately (remap_move, Linux 6.17), keeping the gaps: only the
	// parts of the target that a moved VMA lands on are unmapped, the
	// rest of the target keeps its mappings. Note the parts before the
	// call.
	var parts []span
	if fl&mremap.Fixed != 0 && alignUp(oldLen, ps) == alignUp(newLen, ps) && old&(ps-1) == 0 {
		end := old + alignUp(oldLen, ps)
		if end > old {
			for _, v := range mm.VMAsIn(old, end) {
				a := max(v.Start, old)
				parts = append(parts, span{a, min(v.End, end) - a})
			}
		}
	}
	got, err := mremap.Mremap(mm, old, oldLen, newLen, fl, newAddr)
	oldLen, newLen = alignUp(oldLen, ps), alignUp(newLen, ps)
	o := e.Oracle()
	if err != nil {
		if errors.Is(err, mremap.ErrShortMove) {
			// The source is intact, but a fixed move's target was
			// unmapped and a shrunk tail went before the move failed.
			if fl&mremap.Fixed != 0 {
				o.Unmap(mm, newAddr, newLen)
			}
			if newLen < oldLen {
				o.Unmap(mm, old+newLen, oldLen-newLen)
			}
		}
		return err
	}
	if newLen < oldLen {
		o.Unmap(mm, old+newLen, oldLen-newLen)
	}
	switch {
	case got == old:
	case len(parts) > 0:
		for _, p := range parts {
			to := got + (p.addr - old)
			o.Unmap(mm, to, p.len)
			o.Move(mm, p.addr, to, p.len)
		}
	default:
		o.Unmap(mm, got, newLen)
		o.Move(mm, old, got, min(oldLen, newLen))
	}
	e.Printf("mremap %#x -> %#x\n", old, got)
	return nil
}

// span is a range of addresses: [addr, addr+len).
type span struct{ addr, len uint64 }

// alignUp rounds n up to a multiple of ps (a power of two), saturating at
// the top of the space.
func alignUp(n, ps uint64) uint64 {
	r := (n + ps - 1) &^ (ps - 1)
	if r < n {
		return ^(ps - 1)
	}
	return r
}
