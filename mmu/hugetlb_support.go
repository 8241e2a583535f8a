package mmu

// HugeTLB returns the hugetlb state that the vmemmap package keeps on the
// machine (its pools and their vmemmap optimisation), or nil before the
// package first used the machine. The machine never looks inside: the
// field only gives the state the machine's lifetime.
func (m *Machine) HugeTLB() any { return m.hugetlb }

// SetHugeTLB stores the vmemmap package's hugetlb state on the machine.
// Only that package calls it, once per machine.
func (m *Machine) SetHugeTLB(v any) { m.hugetlb = v }
