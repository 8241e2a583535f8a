package fidelity

// vmemmapExperiments returns the vmemmap experiments; the vmemmap work fills it in.
func vmemmapExperiments() []Experiment { return nil }
