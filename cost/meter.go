package cost

import (
	"fmt"
	"io"
)

// Counts holds one counter per event.
type Counts [NumEvents]uint64

// Sub returns the difference c - old, event by event.
func (c *Counts) Sub(old *Counts) Counts {
	var d Counts
	for i := range c {
		d[i] = c[i] - old[i]
	}
	return d
}

// Add adds o to c, event by event.
func (c *Counts) Add(o *Counts) {
	for i := range c {
		c[i] += o[i]
	}
}

// Record is one primitive step, as the trace shows it.
type Record struct {
	// Owner names the meter that counted the step (an address space, or
	// "kernel" for the machine).
	Owner string
	// Event is what happened, N how many times.
	Event Event
	N     uint64
	// Addr is the virtual address concerned, if any.
	Addr uint64
	// Val is an entry value, a PFN or a length, as the event defines.
	Val uint64
}

// String formats the record as one line of the text trace.
func (r Record) String() string {
	s := fmt.Sprintf("%-8s %-18s n=%d", r.Owner, r.Event, r.N)
	if r.Addr != 0 {
		s += fmt.Sprintf(" addr=%#x", r.Addr)
	}
	if r.Val != 0 {
		s += fmt.Sprintf(" val=%#x", r.Val)
	}
	return s
}

// Tracer receives every primitive step while tracing is on.
type Tracer interface {
	Trace(Record)
}

// TextTracer writes each record as a line of text.
type TextTracer struct{ W io.Writer }

// Trace writes r as one line.
func (t TextTracer) Trace(r Record) { fmt.Fprintln(t.W, r.String()) }

// Meter counts the events of one owner. The zero Meter is ready to use.
type Meter struct {
	// Name is the owner's name, shown in traces.
	Name string
	// counts holds the event counters since the last Reset.
	counts Counts
	// tracer, when set, sees every step; nil costs one branch per step.
	tracer Tracer
}

// Add counts n occurrences of e; a value that is no event counts nothing.
// It costs an add and two branches.
func (m *Meter) Add(e Event, n uint64) {
	if e >= NumEvents {
		return
	}
	m.counts[e] += n
	if m.tracer != nil {
		m.trace(e, n, 0, 0)
	}
}

// trace hands one step to the tracer; kept out of line so that Add and
// Note inline (without the directive the compiler inlines trace into them
// and they grow past the inlining budget).
//
//go:noinline
func (m *Meter) trace(e Event, n, addr, val uint64) {
	m.tracer.Trace(Record{Owner: m.Name, Event: e, N: n, Addr: addr, Val: val})
}

// Note counts n occurrences of e at address addr with value val, which the
// trace shows; a value that is no event counts nothing.
func (m *Meter) Note(e Event, n, addr, val uint64) {
	if e >= NumEvents {
		return
	}
	m.counts[e] += n
	if m.tracer != nil {
		m.trace(e, n, addr, val)
	}
}

// Count returns the counter of e, 0 for a value that is no event.
func (m *Meter) Count(e Event) uint64 {
	if e >= NumEvents {
		return 0
	}
	return m.counts[e]
}

// Counts returns a copy of every counter.
func (m *Meter) Counts() Counts { return m.counts }

// Reset sets every counter to zero.
func (m *Meter) Reset() { m.counts = Counts{} }

// SetTracer makes t see every later step; nil turns tracing off.
func (m *Meter) SetTracer(t Tracer) { m.tracer = t }

// Tracing reports whether a tracer is set, so callers can skip building
// expensive trace detail.
func (m *Meter) Tracing() bool { return m.tracer != nil }
