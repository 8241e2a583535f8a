package fidelity

// mremapExperiments returns the mremap experiments; the mremap work fills it in.
func mremapExperiments() []Experiment { return nil }
