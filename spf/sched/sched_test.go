package sched_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/spf/sched"
)

// counterRun runs three threads that each add to a shared log at every
// point, with clocks advancing by per-thread costs, and returns the
// scheduler and the log.
func counterRun(t *testing.T, seed, window uint64) (*sched.Scheduler, string) {
	t.Helper()
	s := sched.New(sched.Config{Seed: seed, Window: window, Trace: true})
	var log strings.Builder
	for i := 0; i < 3; i++ {
		cost := uint64(100 * (i + 1))
		s.Go(fmt.Sprintf("w%d", i), i, func(th *sched.Thread) {
			for k := 0; k < 5; k++ {
				fmt.Fprintf(&log, "%d.%d ", th.ID, k)
				th.Advance(cost)
				th.Yield(sched.Step)
			}
		})
	}
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	return s, log.String()
}

func TestSameSeedSameSchedule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window uint64
	}{{"timed", 0}, {"unordered", sched.Unordered}} {
		t.Run(tc.name, func(t *testing.T) {
			a, la := counterRun(t, 42, tc.window)
			b, lb := counterRun(t, 42, tc.window)
			if a.Trace() != b.Trace() || la != lb || a.Hash() != b.Hash() {
				t.Fatalf("seed 42 gave two schedules:\n%s\n--\n%s", a.Trace(), b.Trace())
			}
			if a.Trace() == "" || a.Steps() == 0 {
				t.Fatal("no trace recorded")
			}
		})
	}
}

func TestSeedsChooseInterleavings(t *testing.T) {
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		_, l := counterRun(t, seed, sched.Unordered)
		seen[l] = true
	}
	if len(seen) < 10 {
		t.Fatalf("20 seeds gave only %d interleavings", len(seen))
	}
}

func TestTimedRunsInClockOrder(t *testing.T) {
	s, l := counterRun(t, 7, 0)
	// Thread 1 costs 100 per step, thread 3 costs 300: thread 1 must
	// finish its five steps before thread 3 takes its third.
	i1 := strings.Index(l, "1.4 ")
	i3 := strings.Index(l, "3.2 ")
	if i1 < 0 || i3 < 0 || i1 > i3 {
		t.Fatalf("not in clock order: %s\n%s", l, s.Trace())
	}
}

func TestBlockAndDeadlock(t *testing.T) {
	s := sched.New(sched.Config{Seed: 1})
	flag := false
	var order []string
	s.Go("waiter", 0, func(th *sched.Thread) {
		th.Block(func() bool { return flag })
		order = append(order, "woke")
	})
	s.Go("setter", 1, func(th *sched.Thread) {
		th.Yield(sched.Step)
		order = append(order, "set")
		flag = true
	})
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "set,woke" {
		t.Fatalf("order %v", order)
	}

	d := sched.New(sched.Config{Seed: 9})
	d.Go("stuck", 0, func(th *sched.Thread) { th.Block(func() bool { return false }) })
	err := d.Run()
	if !errors.Is(err, sched.ErrDeadlock) || !strings.Contains(err.Error(), "seed 9") {
		t.Fatalf("want a deadlock naming seed 9, got %v", err)
	}
}

func TestStepLimit(t *testing.T) {
	s := sched.New(sched.Config{Seed: 3, MaxSteps: 10})
	s.Go("spin", 0, func(th *sched.Thread) {
		for {
			th.Yield(sched.Step)
		}
	})
	if err := s.Run(); !errors.Is(err, sched.ErrLivelock) {
		t.Fatalf("want livelock, got %v", err)
	}
}

func TestPanicNamesSeed(t *testing.T) {
	s := sched.New(sched.Config{Seed: 5})
	s.Go("bad", 0, func(th *sched.Thread) { panic("boom") })
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "seed 5") || !strings.Contains(fmt.Sprint(r), "boom") {
			t.Fatalf("want the panic with its seed, got %v", r)
		}
	}()
	_ = s.Run()
}
