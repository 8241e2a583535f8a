// Package exercise generates page-table exercises in the spirit of the
// OSTEP homework simulators: a problem from a seed, and with it the worked
// answer, step by step, for a student to check their own.
//
// Five kinds exist (Kinds): translate (walk virtual addresses through a
// set of tables by hand), mremap (which path each extent of a move takes,
// how many entries move at each level, how many TLB flushes it costs),
// fork (which PTEs get write-protected in parent and child, how many copy
// steps, what the refcounts become), contpte (does an arm64 block fold
// after a sequence of operations; folds, unfolds and converts) and tlb
// (which TLB entries an x86 flush drops, per-page or full, and how many
// IPIs it sends).
//
// Every answer comes from running the model: the generator builds a
// machine, sets up the tables, performs the operation and reads what the
// model did (walk traces, counters, the primitive trace, TLB probes). No
// second implementation of the rules exists here; the words that explain
// each rule name the Linux function that applies it.
//
// Deterministic: the same seed, kind and arch give the same problem and
// answer, byte for byte, on any machine and any Go release. Choices come
// from a PCG generator (math/rand/v2, whose PCG output is specified) read
// only through Uint64, and the model is deterministic itself.
package exercise

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/mmu"
)

// Options select an exercise.
type Options struct {
	// Seed selects the problem.
	Seed uint64
	// Kind is one of Kinds(); empty lets the seed choose.
	Kind string
	// Arch is an architecture name the kind supports (KindArchs); empty
	// lets the seed choose among them.
	Arch string
}

// Exercise is one generated problem with its worked answer.
type Exercise struct {
	// Kind, Arch and Seed say which exercise this is; with them
	// `ptsim exercise` prints it again.
	Kind, Arch string
	Seed       uint64
	// Problem is the text a student gets.
	Problem string
	// Answer is the worked answer, step by step, each rule in words with
	// the Linux function that applies it.
	Answer string
}

// String returns the problem followed by the answer.
func (e *Exercise) String() string { return e.Problem + "\n" + e.Answer }

// kind is one generator.
type kind struct {
	name    string
	summary string
	// archs are the architectures the kind can use; a seed that names
	// none picks one of them, all equally likely.
	archs []string
	gen   func(r *rng, arch string) (*Exercise, error)
}

// kinds lists the generators in the order Kinds reports them.
var kinds = []kind{
	{"translate", "walk virtual addresses through a set of page tables to physical addresses or faults",
		[]string{"x86_64", "x86_64-la57", "arm64", "arm64-16k", "arm64-64k", "s390x", "sparc64", "um", "um32"}, genTranslate},
	{"mremap", "which path each extent of an mremap takes (PTE, PMD, PUD), entries moved per level, TLB flushes",
		[]string{"x86_64", "arm64", "s390x", "sparc64", "um", "um32"}, genMremap},
	{"fork", "which PTEs fork write-protects in parent and child, its copy steps and batches, refcounts and mapcounts",
		[]string{"x86_64", "arm64"}, genFork},
	{"contpte", "does an arm64 contiguous block fold after a sequence of operations: folds, unfolds, converts",
		[]string{"arm64"}, genContpte},
	{"tlb", "which TLB entries an x86 flush drops on which CPU, per page or whole (the 33-page ceiling), and its IPIs",
		[]string{"x86_64"}, genTLB},
}

// Kinds returns the exercise kinds.
func Kinds() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.name
	}
	return out
}

// Summary returns a one-line description of a kind ("" if unknown).
func Summary(name string) string {
	for _, k := range kinds {
		if k.name == name {
			return k.summary
		}
	}
	return ""
}

// KindArchs returns the architectures a kind supports (nil if unknown).
func KindArchs(name string) []string {
	for _, k := range kinds {
		if k.name == name {
			return slices.Clone(k.archs)
		}
	}
	return nil
}

// Generate builds the exercise o selects. An unknown kind, or an arch the
// kind does not support, is an error wrapping EINVAL.
func Generate(o Options) (*Exercise, error) {
	pick := newRNG(o.Seed, 0)
	var k *kind
	if o.Kind == "" {
		k = &kinds[pick.intn(len(kinds))]
	} else {
		for i := range kinds {
			if kinds[i].name == o.Kind {
				k = &kinds[i]
			}
		}
		if k == nil {
			return nil, fmt.Errorf("exercise kind %q (valid: %s): %w", o.Kind, strings.Join(Kinds(), ", "), errno.EINVAL)
		}
	}
	archName := o.Arch
	if archName == "" {
		archName = k.archs[pick.intn(len(k.archs))]
	} else if !slices.Contains(k.archs, archName) {
		if _, err := archs.ByName(archName); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("exercise kind %s on %s (it supports %s): %w", k.name, archName, strings.Join(k.archs, ", "), errno.EINVAL)
	}
	// The kind's own stream: the same seed gives the same problem
	// whether the kind was chosen by the seed or named.
	r := newRNG(o.Seed, streamOf(k.name+"/"+archName))
	e, err := k.gen(r, archName)
	if err != nil {
		return nil, fmt.Errorf("exercise %s seed %d on %s: %w", k.name, o.Seed, archName, err)
	}
	e.Kind, e.Arch, e.Seed = k.name, archName, o.Seed
	cmd := fmt.Sprintf("ptsim exercise -s %d -kind %s -arch %s", o.Seed, k.name, archName)
	e.Problem = fmt.Sprintf("Exercise: %s, seed %d, %s  (%s)\n\n", k.name, o.Seed, archName, cmd) + e.Problem
	e.Answer = fmt.Sprintf("Answer (%s -c)\n\n", cmd) + e.Answer
	return e, nil
}

// rng draws the exercise's choices. Only PCG's Uint64, whose output
// math/rand/v2 specifies, is used, so every Go release and machine draws
// the same numbers.
type rng struct{ p *rand.PCG }

func newRNG(seed, stream uint64) *rng { return &rng{rand.NewPCG(seed, stream)} }

// streamOf hashes a name into a PCG stream (FNV-1a).
func streamOf(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// intn returns a number in [0, n) (n > 0), by the high half of a 128-bit
// product: a negligible bias, no rejection loop.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.p.Uint64(), uint64(n))
	return int(hi)
}

// between returns a number in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// chance returns true with probability num/den.
func (r *rng) chance(num, den int) bool { return r.intn(den) < num }

// pickOf returns one of the choices.
func pickOf[T any](r *rng, xs ...T) T { return xs[r.intn(len(xs))] }

// perm returns a permutation of 0..n-1 (Fisher-Yates).
func (r *rng) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// newMachine builds a machine of the named arch for an exercise: 4 GiB of
// memory and the given CPUs, with knobs "key=value" applied.
func newMachine(archName string, cpus int, seed uint64, knobs ...string) (*mmu.Machine, error) {
	a, err := archs.ByName(archName)
	if err != nil {
		return nil, err
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 4 << 30, CPUs: cpus, Seed: seed})
	if err != nil {
		return nil, err
	}
	for _, kv := range knobs {
		k, v, _ := strings.Cut(kv, "=")
		if err := m.SetKnob(k, v); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// text accumulates a problem or an answer.
type text struct{ strings.Builder }

// f appends a formatted line.
func (t *text) f(format string, args ...any) {
	fmt.Fprintf(&t.Builder, format, args...)
	t.WriteByte('\n')
}

// para appends a paragraph wrapped to 76 columns, each line indented by
// indent.
func (t *text) para(indent string, words string) {
	col := 0
	for i, w := range strings.Fields(words) {
		switch {
		case i == 0:
			t.WriteString(indent + w)
			col = len(indent) + len(w)
		case col+1+len(w) > 76:
			t.WriteString("\n" + indent + w)
			col = len(indent) + len(w)
		default:
			t.WriteString(" " + w)
			col += 1 + len(w)
		}
	}
	t.WriteByte('\n')
}

// size spells a byte count the way scripts write it (4K, 2M, 1G).
func size(n uint64) string {
	for _, u := range []struct {
		s    string
		unit uint64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.unit && n%u.unit == 0 {
			return fmt.Sprintf("%d%s", n/u.unit, u.s)
		}
	}
	return fmt.Sprintf("%d", n)
}

// plural returns "1 thing" or "n things".
func plural(n uint64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
