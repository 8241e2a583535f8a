// Package sched is a deterministic scheduler for simulated threads.
//
// A simulated thread is a Go function run as a coroutine (iter.Pull): it
// runs until it reaches a defined point (a lock acquire or release, a
// sequence-count read, a walk level, a commit check) and calls Yield; the
// scheduler then picks which thread runs next with a random source seeded
// by the caller. Only one thread runs at a time and every hand-off is
// synchronous, so there is no real concurrency and no data race: the
// model stays single-goroutine-at-a-time, and the same seed gives the
// same interleaving, byte for byte. A failing schedule is replayed by
// running it again with its seed.
//
// Each thread has a simulated clock in picoseconds that its owner
// advances by the cost of the work it does (Advance) and by the time it
// waits (WaitUntil). The Window chooses how the clocks steer the choice:
// with Window 0 the thread with the earliest clock runs next (ties broken
// by the seed), which is a discrete-event simulation whose makespan is
// meaningful; with Unordered any runnable thread may run next, which
// explores interleavings that timing would make rare.
//
// Cost: a hand-off is a coroutine switch (a few hundred nanoseconds of
// host time); a choice costs one pass over the threads.
package sched

import (
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"math/rand/v2"
	"strings"
)

// Point is a kind of place where a thread lets the scheduler choose.
type Point uint8

// The defined points.
const (
	// Start is where every thread begins, before its first step.
	Start Point = iota
	// Acquire is just before a lock acquisition.
	Acquire
	// Release is just after a lock release.
	Release
	// SeqRead is after a sequence-count read or check.
	SeqRead
	// WalkLevel is after one level of a page-table walk.
	WalkLevel
	// Commit is between the checks of a speculative commit.
	Commit
	// Step is any other step boundary (one page written, one syscall).
	Step
	// Blocked is where a thread waits for a condition.
	Blocked
	numPoints
)

var pointNames = [numPoints]string{"start", "acquire", "release", "seq", "walk", "commit", "step", "blocked"}

// String names the point as the trace shows it.
func (p Point) String() string {
	if p < numPoints {
		return pointNames[p]
	}
	return fmt.Sprintf("point(%d)", uint8(p))
}

// Unordered is the Window that lets any runnable thread run next,
// whatever its clock.
const Unordered = ^uint64(0)

// Config describes a scheduler.
type Config struct {
	// Seed seeds every choice; the same seed replays the same schedule.
	Seed uint64
	// Window: a thread is eligible to run next when its clock is at most
	// the earliest runnable clock plus Window (picoseconds). 0 runs
	// threads in clock order; Unordered ignores clocks.
	Window uint64
	// MaxSteps bounds the hand-offs of one Run (0: no bound); a schedule
	// that exceeds it fails with ErrLivelock.
	MaxSteps int
	// Trace keeps one line per hand-off for Trace(); the hash of the
	// schedule is kept either way.
	Trace bool
}

// ErrDeadlock is returned by Run when threads remain but none can run.
var ErrDeadlock = errors.New("sched: deadlock: every remaining thread is blocked")

// ErrLivelock is returned by Run when MaxSteps hand-offs did not finish
// the threads.
var ErrLivelock = errors.New("sched: step limit reached")

// Scheduler runs simulated threads one at a time.
type Scheduler struct {
	// cfg is the configuration.
	cfg Config
	// rng draws every choice.
	rng *rand.Rand
	// threads are the threads in creation order (their IDs are index+1).
	threads []*Thread
	// cur is the running thread, nil between hand-offs.
	cur *Thread
	// steps counts hand-offs.
	steps int
	// hash digests every hand-off (thread, point, clock).
	hash uint64
	// trace holds one line per hand-off when tracing.
	trace []string
	// eligible is scratch space for choose.
	eligible []*Thread
	// running is set while Run is on the stack.
	running bool
}

// New returns an empty scheduler.
func New(cfg Config) *Scheduler {
	h := fnv.New64a()
	return &Scheduler{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0xda3e39cb94b95bdb)), hash: h.Sum64()}
}

// Seed returns the seed the schedule replays from.
func (s *Scheduler) Seed() uint64 { return s.cfg.Seed }

// Rand returns the scheduler's seeded random source, for choices the
// threads make (never for anything outside the schedule).
func (s *Scheduler) Rand() *rand.Rand { return s.rng }

// Threads returns the threads in creation order.
func (s *Scheduler) Threads() []*Thread { return s.threads }

// Current returns the running thread, or nil outside a thread.
func (s *Scheduler) Current() *Thread { return s.cur }

// Steps returns the number of hand-offs so far.
func (s *Scheduler) Steps() int { return s.steps }

// Hash returns a digest of the schedule so far: equal hashes mean (with
// overwhelming likelihood) equal interleavings and clocks.
func (s *Scheduler) Hash() uint64 { return s.hash }

// Trace returns the hand-offs as text, one per line (empty unless
// Config.Trace).
func (s *Scheduler) Trace() string { return strings.Join(s.trace, "\n") }

// errStopped unwinds a thread whose coroutine is being stopped.
type errStopped struct{}

// Thread is one simulated thread.
type Thread struct {
	// ID is the thread's number, from 1 in creation order.
	ID int
	// Name names the thread in traces.
	Name string
	// CPU is the simulated CPU the thread runs on.
	CPU int
	// Clock is the thread's simulated time in picoseconds.
	Clock uint64
	// s is the scheduler.
	s *Scheduler
	// next resumes the coroutine until its next point; stop ends it.
	next func() (Point, bool)
	stop func()
	// yield hands control back from inside the coroutine.
	yield func(Point) bool
	// until, when set, must hold before the thread may run again.
	until func() bool
	// done is set when the body returned.
	done bool
	// last is the point the thread last stopped at.
	last Point
	// panicked holds a panic raised by the body, re-raised by Run.
	panicked any
}

// Go adds a thread running body on cpu. Threads start at clock 0 and run
// only under Run. A nil body makes a thread that starts and ends.
func (s *Scheduler) Go(name string, cpu int, body func(t *Thread)) *Thread {
	if body == nil {
		body = func(*Thread) {}
	}
	t := &Thread{ID: len(s.threads) + 1, Name: name, CPU: cpu, s: s}
	seq := func(yield func(Point) bool) {
		t.yield = yield
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(errStopped); !ok {
					t.panicked = r
				}
			}
		}()
		if !yield(Start) {
			return
		}
		body(t)
	}
	t.next, t.stop = iter.Pull(seq)
	s.threads = append(s.threads, t)
	return t
}

// Scheduler returns the thread's scheduler.
func (t *Thread) Scheduler() *Scheduler { return t.s }

// Done reports whether the thread's body has returned.
func (t *Thread) Done() bool { return t.done }

// String names the thread.
func (t *Thread) String() string { return fmt.Sprintf("t%d(%s)", t.ID, t.Name) }

// Advance adds ps picoseconds of work to the thread's clock.
func (t *Thread) Advance(ps uint64) { t.Clock += ps }

// WaitUntil moves the thread's clock forward to at, if it is behind: the
// thread waited for something that happened at simulated time at.
func (t *Thread) WaitUntil(at uint64) {
	if at > t.Clock {
		t.Clock = at
	}
}

// Yield lets the scheduler run another thread; it returns when this one
// is chosen again. It must be called from the thread's own body.
func (t *Thread) Yield(p Point) {
	if t.s.cur != t {
		panic(fmt.Sprintf("sched: %s yields while %v runs", t, t.s.cur))
	}
	if !t.yield(p) {
		panic(errStopped{})
	}
}

// Block yields until cond holds; cond is evaluated by the scheduler
// between hand-offs and must only read model state. It returns at once
// if cond already holds.
func (t *Thread) Block(cond func() bool) {
	for !cond() {
		t.until = cond
		t.Yield(Blocked)
	}
	t.until = nil
}

// runnable reports whether t may be chosen.
func (t *Thread) runnable() bool { return !t.done && (t.until == nil || t.until()) }

// choose picks the next thread, or nil when none can run.
func (s *Scheduler) choose() *Thread {
	s.eligible = s.eligible[:0]
	minClock := ^uint64(0)
	for _, t := range s.threads {
		if t.runnable() && t.Clock < minClock {
			minClock = t.Clock
		}
	}
	if minClock == ^uint64(0) {
		return nil
	}
	limit := minClock + s.cfg.Window
	if limit < minClock {
		limit = ^uint64(0)
	}
	for _, t := range s.threads {
		if t.runnable() && t.Clock <= limit {
			s.eligible = append(s.eligible, t)
		}
	}
	if len(s.eligible) == 1 {
		return s.eligible[0]
	}
	return s.eligible[s.rng.IntN(len(s.eligible))]
}

// note digests one hand-off into the hash and the trace.
func (s *Scheduler) note(t *Thread, p Point) {
	const prime = 1099511628211
	for _, x := range [...]uint64{uint64(t.ID), uint64(p), t.Clock} {
		for i := 0; i < 8; i++ {
			s.hash ^= (x >> (8 * i)) & 0xff
			s.hash *= prime
		}
	}
	if s.cfg.Trace {
		s.trace = append(s.trace, fmt.Sprintf("%6d %-14s %-8s clock=%d", s.steps, t, p, t.Clock))
	}
}

// Run runs the threads until every one has returned. It fails with
// ErrDeadlock when the remaining threads are all blocked, ErrLivelock when
// MaxSteps is exceeded, and re-raises a panic from a thread's body. On an
// error the remaining threads are stopped.
func (s *Scheduler) Run() (err error) {
	if s.running {
		return fmt.Errorf("sched: Run called from a thread")
	}
	s.running = true
	defer func() {
		s.running = false
		if err != nil {
			s.stopAll()
		}
	}()
	for {
		t := s.choose()
		if t == nil {
			for _, x := range s.threads {
				if !x.done {
					return fmt.Errorf("%w (seed %d, step %d, e.g. %s at %s)", ErrDeadlock, s.cfg.Seed, s.steps, x, x.last)
				}
			}
			return nil
		}
		if s.cfg.MaxSteps > 0 && s.steps >= s.cfg.MaxSteps {
			return fmt.Errorf("%w: %d steps (seed %d)", ErrLivelock, s.steps, s.cfg.Seed)
		}
		s.steps++
		s.note(t, t.last)
		s.cur = t
		p, ok := t.next()
		s.cur = nil
		if t.panicked != nil {
			r := t.panicked
			t.panicked = nil
			t.done = true
			panic(fmt.Sprintf("sched: thread %s (seed %d): %v", t, s.cfg.Seed, r))
		}
		if !ok {
			t.done = true
			continue
		}
		t.last = p
	}
}

// stopAll ends every unfinished coroutine.
func (s *Scheduler) stopAll() {
	for _, t := range s.threads {
		if !t.done {
			t.stop()
			t.done = true
		}
	}
}
