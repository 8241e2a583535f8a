package fidelity

// forkExperiments returns the fork experiments; the fork work fills it in.
func forkExperiments() []Experiment { return nil }
