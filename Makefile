# ptsim: the commands a user and CI need.
GO ?= go

.PHONY: test long fuzz bench demo docs docs-deps lint fmt-check vet

# test is what CI runs (.ci/run): formatting, vet, and every test under the
# race detector.
test: fmt-check vet
	$(GO) test -race -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# long runs the property tests' long mode: 10,000 random operation
# sequences per architecture, each optimised path beside its slow twin,
# every invariant checked after every step (PTSIM_SEQUENCES=N for another
# number). Tens of minutes.
long:
	PTSIM_LONG=1 $(GO) test -count=1 -timeout 0 -run '^TestStateMachine$$' ./internal/proptest

# fuzz runs each native fuzz target for FUZZTIME, one after the other: the
# script parser, the script interpreter, and operation sequences decoded
# from bytes. New failing inputs land in the package's testdata/fuzz.
FUZZTIME ?= 10m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./scenario
	$(GO) test -run '^$$' -fuzz '^FuzzRun$$' -fuzztime $(FUZZTIME) ./scenario
	$(GO) test -run '^$$' -fuzz '^FuzzOps$$' -fuzztime $(FUZZTIME) ./internal/proptest

# bench measures the speed targets P1-P7 of TARGETS.md and prints them in
# one table (median, range and verdict of COUNT runs each), after the
# side-by-side comparison with gVisor's pkg/ring0/pagetables (bench/ is a
# separate module, so gVisor never enters the library's go.mod). P6 runs
# `ptsim run testdata/scale/p6-64g.pts` and reads its maximum RSS; P7 runs
# every script with GOMAXPROCS 1 and 2, traced too. The raw results stay
# in bench.out. A few minutes.
COUNT ?= 5
BENCH_OUT ?= $(CURDIR)/bench.out
bench:
	@echo "load average before: $$(cut -d' ' -f1-3 /proc/loadavg)" | tee $(BENCH_OUT)
	@echo "P3, P4: mremap and fork of 1 GiB ($(COUNT) runs each)..."
	@$(GO) test -run '^$$' -bench 'Mremap1GiB|Fork1GiB' -count=$(COUNT) ./mremap ./fork >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	@echo "P5: memory per page at 16 GiB..."
	@$(GO) test -run '^$$' -bench 'MemoryPerPage' -benchtime=1x ./mmu >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	@echo "P7: every script under GOMAXPROCS 1 and 2, traced and not..."
	@$(GO) test -count=1 -v -run '^TestDeterminism$$' ./scenario -args -p7.all >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	@echo "P1, P2: map and lookup beside gVisor ($(COUNT) runs each)..."
	@cd bench && $(GO) test -run '^$$' -bench 'Map4K|Lookup' -benchtime=2s -count=$(COUNT) . >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	@echo "P6: ptsim run testdata/scale/p6-64g.pts (64 GiB)..."
	@cd bench && $(GO) test -run '^$$' -bench 'Scale64G' -benchtime=1x . >> $(BENCH_OUT) 2>&1 || { cat $(BENCH_OUT); exit 1; }
	@echo "load average after: $$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $(BENCH_OUT)
	@echo
	@cd bench && $(GO) run ./cmd/compare -targets < $(BENCH_OUT)

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
