# ptsim: the commands a user and CI need.
GO ?= go

.PHONY: test bench demo docs docs-deps lint fmt-check vet

# test is what CI runs (.ci/run): formatting, vet, and every test under the
# race detector.
test: fmt-check vet
	$(GO) test -race -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# bench runs the speed targets of TARGETS.md and the side-by-side
# comparison with gVisor's pagetables (a separate module under bench/).
bench:
	$(GO) test -run '^$$' -bench . -benchtime=1s ./...
	cd bench && $(GO) test -run '^$$' -bench . -benchtime=2s -count=3 . | $(GO) run ./cmd/compare

# demo runs every fidelity experiment and prints ours beside the
# published figures.
demo:
	$(GO) run ./cmd/ptsim demo

# docs regenerates everything in README.md and docs/ that comes from runs:
# script outputs, exercises, the table pictures (DOT rendered to SVG by
# Graphviz, see docs-deps) and the plots. `go test ./internal/docgen`
# fails when any of it is stale.
docs:
	$(GO) run ./internal/docgen

# docs-deps installs Graphviz from Debian's packages when dot is missing.
docs-deps:
	@command -v dot >/dev/null 2>&1 || (apt-get update && apt-get install -y graphviz)

lint: fmt-check vet
	cd bench && $(GO) vet ./...
