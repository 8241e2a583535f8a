package tlb_test

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ptsim/ptsim/tlb"
)

// TestMaskWordsMatchEachCPU checks the mask words against the iterator
// over random masks of machines with 1 to 200 CPUs (several mask words):
// the same CPUs in the same order.
func TestMaskWordsMatchEachCPU(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for _, n := range []int{1, 2, 63, 64, 65, 130, 200} {
		s, err := tlb.New(tlb.Config{CPUs: n})
		if err != nil {
			t.Fatal(err)
		}
		ctx := s.NewContext("mm", nil, nil, false)
		for round := 0; round < 20; round++ {
			for i := 0; i < n; i++ {
				if r.IntN(3) == 0 {
					s.CPU(i).Switch(ctx)
				} else {
					s.CPU(i).Switch(nil)
				}
			}
			var want, got []int
			for cpu := range ctx.EachCPU() {
				want = append(want, cpu)
			}
			for w, word := range ctx.MaskWords() {
				for ; word != 0; word &= word - 1 {
					got = append(got, w*64+bits.TrailingZeros64(word))
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%d CPUs: the mask words give %v, EachCPU %v", n, got, want)
			}
			if len(want) != ctx.MaskWeight() {
				t.Fatalf("%d CPUs: %d visited, weight %d", n, len(want), ctx.MaskWeight())
			}
		}
	}
}
