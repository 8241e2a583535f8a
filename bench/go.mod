module github.com/ptsim/ptsim/bench

// go 1.26.3 rather than 1.26: the pinned gVisor module declares go 1.26.3,
// and with a lower go line `go test` fails with "updates to go.mod needed"
// (`go mod tidy` raises it to 1.26.3 by itself).
go 1.26.3

// gVisor is pinned to a pseudo-version of the synthetic "go" branch
// (generated walkers and *_state_autogen.go files checked in, no Bazel
// needed). Do not run `go get -u` or `@latest` on this module: master
// needs Bazel and does not build with plain `go build`.
require gvisor.dev/gvisor v0.0.0-20260905035102-160fafc42237

require (
	golang.org/x/sys v0.43.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)

// The ptsim library itself, from the enclosing repository (ptsim_test.go).
require github.com/ptsim/ptsim v0.0.0

replace github.com/ptsim/ptsim => ../
