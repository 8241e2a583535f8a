package fidelity

// spfExperiments returns the spf experiments; the spf work fills it in.
func spfExperiments() []Experiment { return nil }
