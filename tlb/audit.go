package tlb

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/internal/errno"
)

// SetAudit turns the write-time rule checks on (the default) or off: the
// break-before-make check (arm64) and the live-store check (s390) that
// policies run on every entry write, through CheckBreakBeforeMake and
// CheckLiveStore. With the audit off they return at once and record no
// Violation; nothing else changes: the same entries, flushes, counters
// and simulated time, and Validate still audits the TLBs when called.
//
// It is for benchmarks, which time the simulator and not its checker. A
// test never runs with the audit off: in a test binary
// (testing.Testing) turning it off fails with EPERM unless the caller
// runs inside a benchmark (a testing.B method is on the call stack), so
// a test that tries fails where CI runs it. Outside test binaries (a
// program embedding ptsim) it may be turned off freely.
//
// Cost: O(1); turning it off in a test binary walks the call stack once.
func (s *System) SetAudit(on bool) error {
	if !on && testing.Testing() && !inBenchmark() {
		return fmt.Errorf("tlb: audit off outside a benchmark (tests keep the write checks on): %w", errno.EPERM)
	}
	s.noAudit = !on
	return nil
}

// Audit reports whether the write-time rule checks are on.
func (s *System) Audit() bool { return !s.noAudit }

// inBenchmark reports whether a benchmark function is on the caller's
// stack: the testing package runs every benchmark, and every
// sub-benchmark, from a method of testing.B.
func inBenchmark() bool {
	pcs := make([]uintptr, 256)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "testing.(*B).") {
			return true
		}
		if !more {
			return false
		}
	}
}
