package cost

import "fmt"

// Figure is the cost of one event and where the figure comes from.
type Figure struct {
	// PS is the cost of one occurrence in picoseconds.
	PS uint64
	// Source names the published measurement, manual or derivation that
	// gives the figure.
	Source string
}

// Table is the cost table of one architecture: one figure per event. Every
// experiment on that architecture uses the same table.
type Table struct {
	// Arch names the architecture the table describes.
	Arch    string
	figures [NumEvents]Figure
}

// NewTable returns a table for arch with every figure taken from figs.
// Events missing from figs cost nothing; an event given twice is an error.
func NewTable(arch string, figs map[Event]Figure) (*Table, error) {
	t := &Table{Arch: arch}
	for e, f := range figs {
		if e >= NumEvents {
			return nil, fmt.Errorf("cost table %s: unknown event %d", arch, e)
		}
		if f.PS > 0 && f.Source == "" {
			return nil, fmt.Errorf("cost table %s: %s has no source", arch, e)
		}
		t.figures[e] = f
	}
	return t, nil
}

// MustTable is NewTable for tables written in the program text; it panics
// on an error, which is a bug in the table, never in user input.
func MustTable(arch string, figs map[Event]Figure) *Table {
	t, err := NewTable(arch, figs)
	if err != nil {
		panic(err)
	}
	return t
}

// Figure returns the figure for e, the zero Figure for a value that is no
// event.
func (t *Table) Figure(e Event) Figure {
	if e >= NumEvents {
		return Figure{}
	}
	return t.figures[e]
}

// PS returns the total cost of counts in picoseconds.
func (t *Table) PS(c *Counts) uint64 {
	var ps uint64
	for e := range c {
		ps += c[e] * t.figures[e].PS
	}
	return ps
}

// NS returns the total cost of counts in nanoseconds, rounded down.
func (t *Table) NS(c *Counts) uint64 { return t.PS(c) / 1000 }
