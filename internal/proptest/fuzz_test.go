package proptest

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
)

// byteSource draws choices from the fuzzer's bytes: one byte for a choice
// among at most 256, two for more, eight for a 64-bit value; zeroes once
// the bytes run out.
type byteSource struct {
	b []byte
}

func (s *byteSource) next(n int) []byte {
	var buf [8]byte
	k := copy(buf[:n], s.b)
	s.b = s.b[k:]
	return buf[:n]
}

func (s *byteSource) intn(n int, label string) int {
	if n <= 256 {
		return int(s.next(1)[0]) % n
	}
	return int(binary.LittleEndian.Uint16(s.next(2))) % n
}

func (s *byteSource) u64(label string) uint64 { return binary.LittleEndian.Uint64(s.next(8)) }

// maxFuzzOps bounds one input's operations.
const maxFuzzOps = 48

// FuzzOps decodes an architecture, a twin and a sequence of operations
// from bytes and runs them as TestStateMachine does, with every check after
// every operation: no input may panic, break an invariant, make the twins
// differ or change the state with a failing call Linux makes without
// effect.
func FuzzOps(f *testing.F) {
	names := archs.Names()
	// Seeds: for every arch and twin, a few short random sequences.
	r := rand.New(rand.NewPCG(1, 2))
	for ai := range names {
		for ti := 0; ti < 7; ti++ {
			b := make([]byte, 2+r.IntN(160))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			b[0], b[1] = byte(ai), byte(ti)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &byteSource{b: data}
		name := names[s.intn(len(names), "arch")]
		ts := twins(mustArch(t, name))
		tw := ts[s.intn(len(ts), "twin")]
		w, err := newWorld(name, tw, s.intn(2, "thp") == 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < maxFuzzOps && len(s.b) > 0; i++ {
			o := w.gen(s, opKind(s.intn(int(numOps), "op")))
			if _, err := w.apply(o); err != nil {
				t.Fatalf("%s, twin %s: %v\noperations:\n%s", name, tw.name, err, w.history())
			}
		}
	})
}
