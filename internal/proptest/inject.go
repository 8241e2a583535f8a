package proptest

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/phys"
)

// Injection is one operation run under fault injection by EachAllocation.
type Injection[E any] struct {
	// Setup builds a fresh environment, the same on every call, and
	// returns it with the memory whose allocations are to fail. What
	// Setup allocates is not counted.
	Setup func(t testing.TB) (E, *phys.Memory)
	// Op is the operation under test.
	Op func(env E) error
	// Kinds aims the failures at allocations of these kinds (nil: every
	// kind of frame; phys.KindSlab only when named).
	Kinds []phys.Kind
	// After checks the outcome: n is the allocation that failed (0 for
	// the run in which none did) and err what Op returned.
	After func(t testing.TB, env E, n uint64, err error)
}

// EachAllocation runs c.Op on a fresh environment with no failure, to
// learn how many allocations of c.Kinds it makes (there must be at least
// one: a case that allocates nothing tests nothing), then once per
// allocation on another fresh environment with that allocation failing
// (phys.FailPolicy{Nth: n, Kinds: c.Kinds}), calling c.After after every
// run. It returns the number of allocation points.
func EachAllocation[E any](t *testing.T, c Injection[E]) uint64 {
	t.Helper()
	env, mem := c.Setup(t)
	mem.SetFailPolicy(phys.FailPolicy{Kinds: c.Kinds})
	err := c.Op(env)
	n := mem.Allocations()
	mem.SetFailPolicy(phys.FailPolicy{})
	c.After(t, env, 0, err)
	if err != nil {
		t.Fatalf("without injected failures: %v", err)
	}
	if n == 0 {
		t.Fatalf("no allocation of kinds %v to fail", c.Kinds)
	}
	for i := uint64(1); i <= n; i++ {
		ok := t.Run(fmt.Sprintf("fail=%d_of_%d", i, n), func(t *testing.T) {
			env, mem := c.Setup(t)
			mem.SetFailPolicy(phys.FailPolicy{Nth: i, Kinds: c.Kinds})
			err := c.Op(env)
			failed := mem.Allocations() >= i
			mem.SetFailPolicy(phys.FailPolicy{})
			if !failed {
				t.Fatalf("allocation %d of %d never happened (the operation is not deterministic)", i, n)
			}
			c.After(t, env, i, err)
		})
		if !ok {
			break
		}
	}
	return n
}
