# ptsim: the commands a user and CI need.
GO ?= go

.PHONY: test bench demo lint fmt-check vet

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

lint: fmt-check vet
	cd bench && $(GO) vet ./...
