package cost

import "fmt"

// Rescale is a named rule for deriving the figures of a machine nobody has
// published a table for from a table that is published: work the base
// table prices as CPU cycles runs the same number of cycles at the
// target's clock (figure x FromMHz / ToMHz), while a figure in Keep (a
// memory or interconnect time, which a faster clock does not shorten)
// stays as it is. The s390x, sparc64 and UML tables are built this way.
type Rescale struct {
	// From is the base table; FromName names it in sources ("x86").
	From     *Table
	FromName string
	// FromMHz and ToMHz are the base machine's clock and the target's.
	FromMHz, ToMHz uint64
	// To names the target machine in sources ("a z15").
	To string
	// Keep lists the base figures kept as they are.
	Keep map[Event]bool
	// Skip lists base figures of hardware the target does not have.
	Skip map[Event]bool
}

// Fill adds to figs a derived figure for every event the base table
// prices and figs does not, each with a source that names the rule and
// the base figure's own source. Applying rules in turn lets a later base
// fill only what the earlier ones left unpriced.
func (r Rescale) Fill(figs map[Event]Figure) {
	for e := Event(0); e < NumEvents; e++ {
		f := r.From.Figure(e)
		if _, done := figs[e]; done || f.PS == 0 || r.Skip[e] {
			continue
		}
		switch {
		case r.Keep[e]:
			figs[e] = Figure{PS: f.PS, Source: fmt.Sprintf("derived: the %s figure as it is, a memory or interconnect time (%s: %s)", r.FromName, r.FromName, f.Source)}
		case r.FromMHz == r.ToMHz:
			figs[e] = Figure{PS: f.PS, Source: fmt.Sprintf("derived: the %s figure as it is, %s running at the same clock (%s: %s)", r.FromName, r.To, r.FromName, f.Source)}
		default:
			figs[e] = Figure{PS: f.PS * r.FromMHz / r.ToMHz,
				Source: fmt.Sprintf("derived: the %s figure's cycles (%d ps at %s) at %s's %s, x %s/%s (%s: %s)",
					r.FromName, f.PS, ghz(r.FromMHz), r.To, ghz(r.ToMHz), ghz1(r.FromMHz), ghz1(r.ToMHz), r.FromName, f.Source)}
		}
	}
}

// ghz writes a clock in MHz as GHz ("2.5 GHz"); ghz1 without the unit.
func ghz(mhz uint64) string  { return ghz1(mhz) + " GHz" }
func ghz1(mhz uint64) string { return fmt.Sprintf("%g", float64(mhz)/1000) }
