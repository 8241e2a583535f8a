// Package cost counts the primitive steps the simulator performs and turns
// the counts into simulated time.
//
// Every primitive of the model (an entry write, a table allocation, a TLB
// invalidation instruction, an IPI, a refcount atomic, a lock acquisition...)
// is an Event. A Meter counts events for one owner: an address space, or the
// machine for kernel work. A Table gives each event a cost in picoseconds for
// one architecture, with the source of every figure; simulated time is the
// sum over events of count times cost. Integer picoseconds keep the result
// identical on every host: no floating point enters the model.
//
// Constraints: deterministic, no allocation when counting, and no cost when
// nobody traces. A Meter is not safe for concurrent use; the model is driven
// from one goroutine.
package cost
