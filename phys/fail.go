package phys

import (
	"fmt"

	"github.com/ptsim/ptsim/internal/errno"
)

// FailPolicy makes chosen allocations fail with ENOMEM, so that every error
// path can be tested. The zero policy fails nothing.
type FailPolicy struct {
	// Nth, when non-zero, fails the Nth counted allocation (1 is the first
	// after the policy was set).
	Nth uint64
	// After, when non-zero, fails every counted allocation after the first
	// After-1 ones; After == 1 fails them all.
	After uint64
	// Kinds restricts the policy to allocations of these kinds; empty
	// means every kind of frame (KindSlab only when named). Only
	// allocations of these kinds are counted.
	Kinds []Kind
}

func (p *FailPolicy) matches(k Kind) bool {
	if len(p.Kinds) == 0 {
		return k != KindSlab
	}
	for _, pk := range p.Kinds {
		if pk == k {
			return true
		}
	}
	return false
}

func (p *FailPolicy) fails(n uint64) bool {
	return (p.Nth != 0 && n == p.Nth) || (p.After != 0 && n >= p.After)
}

// SetFailPolicy installs p and restarts its allocation count.
func (m *Memory) SetFailPolicy(p FailPolicy) {
	m.fail = p
	m.allocs = 0
}

// FailPolicy returns the installed policy.
func (m *Memory) FailPolicy() FailPolicy { return m.fail }

// Allocations returns how many allocations the fail policy has counted
// since it was set: run an operation once with the zero policy to learn
// how many allocation points it has, then fail each in turn.
func (m *Memory) Allocations() uint64 { return m.allocs }

// AllocSlab stands for one allocation of a kernel object from a slab
// cache (kmem_cache_alloc of a vm_area_struct): the model keeps such
// objects as Go values and uses no frames for them, so this only counts
// the allocation against the fail policy and fails with ENOMEM when a
// policy naming KindSlab says so. Cost: one compare when no policy names
// KindSlab.
func (m *Memory) AllocSlab() error {
	if len(m.fail.Kinds) == 0 || !m.fail.matches(KindSlab) {
		return nil
	}
	m.allocs++
	if m.fail.fails(m.allocs) {
		return fmt.Errorf("phys: slab object (injected failure #%d): %w", m.allocs, errno.ENOMEM)
	}
	return nil
}
