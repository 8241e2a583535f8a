package sched_test

import (
	"fmt"

	"github.com/ptsim/ptsim/spf/sched"
)

// Two simulated threads with clocks: with Window 0 the thread whose clock
// is earliest runs next, so the interleaving follows simulated time, and
// the same seed replays the same schedule.
func ExampleScheduler() {
	run := func(seed uint64) (string, uint64) {
		s := sched.New(sched.Config{Seed: seed})
		var order string
		for _, name := range []string{"a", "b"} {
			cost := map[string]uint64{"a": 300, "b": 200}[name]
			s.Go(name, 0, func(t *sched.Thread) {
				for i := 0; i < 3; i++ {
					order += name
					t.Advance(cost)
					t.Yield(sched.Start)
				}
			})
		}
		if err := s.Run(); err != nil {
			panic(err)
		}
		return order, s.Hash()
	}
	o1, h1 := run(7)
	o2, h2 := run(7)
	fmt.Println(o1, o1 == o2 && h1 == h2)
	// Output:
	// bababa true
}
