package proptest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
	"github.com/ptsim/ptsim/phys"
	"github.com/ptsim/ptsim/spf"
	"github.com/ptsim/ptsim/vmemmap"
)

// twin names the knob two machines of a world differ in: the optimised
// path (the arch's default) against its slow twin.
type twin struct {
	// name labels the twin in test names and failures.
	name string
	// slow are the switches of the slow machine; fast ones the optimised
	// machine's, when they are not the defaults.
	slow, fast [][2]string
}

// twins returns the twins an architecture has.
func twins(a *arch.Arch) []twin {
	ts := []twin{{name: "fork_batch", slow: [][2]string{{"fork_batch", "off"}}}}
	if a.Caps.HaveMovePMD {
		ts = append(ts, twin{name: "move_pmd", slow: [][2]string{{"move_pmd", "off"}, {"move_pud", "off"}}, fast: [][2]string{{"move_pud", "off"}}})
	}
	if a.Caps.HaveMovePUD {
		ts = append(ts, twin{name: "move_pud", slow: [][2]string{{"move_pud", "off"}}})
	}
	if a.Caps.ContPTEs > 0 {
		ts = append(ts, twin{name: "contpte", slow: [][2]string{{"contpte", "off"}}})
	}
	if a.Caps.OptimizeVmemmap {
		ts = append(ts, twin{name: "hvo_batch", slow: [][2]string{{"hvo_batch", "off"}}})
	}
	ts = append(ts, twin{name: "spf_seq", slow: [][2]string{{"spf", "seq"}}},
		twin{name: "spf_off", slow: [][2]string{{"spf", "off"}}})
	return ts
}

// Machine shape: two CPUs (so TLB shootdowns happen), memory enough that
// no sequence runs out (twins use slightly different numbers of table
// pages, and must never be told apart by where memory runs out).
const (
	cpus       = 2
	memorySize = 2 << 30
)

// mach is one machine of a world with its content oracle.
type mach struct {
	m *mmu.Machine
	o *oracle
}

// world runs every operation on two machines that differ only in the
// twin's knob, and keeps what the operations need to know: the live
// address spaces (the same names on both) and the pins taken.
type world struct {
	arch  string
	l     *layout
	twin  twin
	ms    [2]mach
	names []string
	// children counts forks, for unique child names.
	children int
	// last is machine 0's Snapshot after the previous step.
	last Snapshot
	// trace lists the operations applied, for failure reports.
	trace []string
}

// maxMMs bounds the live address spaces.
const maxMMs = 4

func newWorld(name string, tw twin, thp bool) (*world, error) {
	w := &world{arch: name, twin: tw, names: []string{"p"}}
	for i := range w.ms {
		a, err := archs.ByName(name)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			w.l = newLayout(a)
		}
		m, err := mmu.New(mmu.Config{Arch: a, MemorySize: memorySize, CPUs: cpus, Seed: 7})
		if err != nil {
			return nil, err
		}
		knobs := tw.fast
		if i == 1 {
			knobs = tw.slow
		}
		if a.Caps.OptimizeVmemmap {
			knobs = append([][2]string{{"hvo", "on"}}, knobs...)
		}
		if !thp && w.l.thp {
			knobs = append(knobs, [2]string{"thp", "never"})
		}
		for _, kv := range knobs {
			if err := m.SetKnob(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		if _, err := m.NewMM("p"); err != nil {
			return nil, err
		}
		w.ms[i] = mach{m: m, o: newOracle(a.Geometry.PageShift)}
	}
	w.last = Take(w.ms[0].m)
	return w, nil
}

// mm returns address space i (modulo the live ones) of machine k.
func (w *world) mm(k, i int) *mmu.MM {
	mm, _ := w.ms[k].m.MM(w.names[i%len(w.names)])
	return mm
}

// outcome is what one operation returned on one machine.
type outcome struct {
	// Errno names the error's errno ("" for success, "none" for an error
	// that wraps none); Short is set for mremap's ErrShortMove.
	Errno string
	Short bool
	// Val is the operation's result (mremap's address, folios added or
	// freed).
	Val uint64
}

func (o outcome) String() string {
	switch {
	case o.Short:
		return "ENOMEM (short move)"
	case o.Errno != "":
		return o.Errno
	}
	return fmt.Sprintf("ok %#x", o.Val)
}

func outcomeOf(val uint64, err error) outcome {
	if err == nil {
		return outcome{Val: val}
	}
	var en errno.Errno
	o := outcome{Errno: "none", Val: val, Short: errors.Is(err, mremap.ErrShortMove)}
	if errors.As(err, &en) {
		o.Errno = en.Name()
	}
	return o
}

// unchangedOnError lists the operations that Linux fails without changing
// anything (an mremap that ran out of memory mid-move is the exception and
// is flagged Short).
var unchangedOnError = map[opKind]bool{opMmap: true, opMunmap: true, opMprotect: true, opMremap: true,
	opExit: true, opUnpin: true, opHugeFree: false, opKnob: true, opRead: true, opWrite: true}

// pftAllowed reports whether a pft over the range may run: every page
// mapped by a writable VMA (pft threads that fault on anything else stop
// half-way, which the content oracle cannot follow).
func pftAllowed(mm *mmu.MM, addr, n uint64) bool {
	if n == 0 || addr+n < addr {
		return false
	}
	for a := addr; a < addr+n; {
		v := mm.FindVMA(a)
		if v == nil || v.Flags&mmu.VMWrite == 0 {
			return false
		}
		a = v.End
	}
	return true
}

// apply runs op on both machines and reports what went wrong: different
// outcomes, an error without an errno, a failed invariant check, a page
// that does not hold what the oracle expects, different states, or a
// failing operation that changed the state. skipped is true when op does
// not apply to the world as it is (a fork with too many address spaces,
// a pft over a range it cannot write).
func (w *world) apply(o op) (skipped bool, err error) {
	switch o.Kind {
	case opFork:
		if len(w.names) >= maxMMs {
			return true, nil
		}
	case opExit:
		if len(w.names) < 2 {
			return true, nil
		}
	case opPFT:
		if !pftAllowed(w.mm(0, o.MM), o.Addr, o.Len) {
			return true, nil
		}
	}
	child := fmt.Sprintf("c%d", w.children+1)
	var outs [2]outcome
	for k := range w.ms {
		outs[k] = w.run(k, o, child)
	}
	if outs[0] != outs[1] {
		return false, fmt.Errorf("%s: outcomes differ: %s %+v, %s %+v", o, w.label(0), outs[0], w.label(1), outs[1])
	}
	out := outs[0]
	w.trace = append(w.trace, fmt.Sprintf("%v -> %s", o, out))
	if out.Errno == "none" {
		return false, fmt.Errorf("%s: error without an errno", o)
	}
	if out.Short {
		return false, fmt.Errorf("%s: mremap ran out of memory mid-move with memory to spare", o)
	}
	if out.Errno == "" {
		switch o.Kind {
		case opFork:
			w.children++
			w.names = append(w.names, child)
		case opExit:
			i := o.MM % len(w.names)
			w.names = append(w.names[:i:i], w.names[i+1:]...)
		}
	}
	s, err := w.check()
	if err != nil {
		return false, fmt.Errorf("after %s -> %s: %w", o, out, err)
	}
	if out.Errno != "" && unchangedOnError[o.Kind] && !w.last.Equal(&s) {
		if d := cmp.Diff(w.last, s); d != "" {
			return false, fmt.Errorf("%s failed with %s but changed the state (-before +after):\n%s", o, out.Errno, d)
		}
	}
	w.last = s
	return false, nil
}

func (w *world) label(k int) string {
	if k == 0 {
		return "fast"
	}
	return "slow " + w.twin.name
}

// run applies op to machine k and updates its oracle.
func (w *world) run(k int, o op, child string) outcome {
	x := w.ms[k]
	mm := w.mm(k, o.MM)
	switch o.Kind {
	case opMmap:
		err := mm.Mmap(o.Addr, o.Len, o.Prot, o.Flags)
		if err == nil {
			x.o.unmap(mm, o.Addr, o.Len)
			if o.Flags.Populate && o.Prot&mmu.ProtWrite != 0 && !o.Flags.Shared {
				x.o.cow(mm, o.Addr, o.Len)
			}
		}
		return outcomeOf(0, err)
	case opMunmap:
		err := mm.Munmap(o.Addr, o.Len)
		if err == nil {
			x.o.unmap(mm, o.Addr, o.Len)
		}
		return outcomeOf(0, err)
	case opMprotect:
		return outcomeOf(0, mm.Mprotect(o.Addr, o.Len, o.Prot))
	case opRead:
		v, err := mm.Read(o.CPU, o.Addr)
		return outcomeOf(v, err)
	case opWrite:
		err := mm.Write(o.CPU, o.Addr, o.Val)
		if err == nil {
			x.o.write(mm, o.Addr, o.Val)
		}
		return outcomeOf(0, err)
	case opMremap:
		ps := w.l.ps
		oldLen := (o.Len + ps - 1) &^ (ps - 1)
		newLen := (o.NewLen + ps - 1) &^ (ps - 1)
		// A fixed move without a resize moves every VMA of the range
		// on its own, keeping the gaps between them, and unmaps only
		// each one's target (Linux 6.17's remap_move): note the pieces.
		type piece struct{ from, to, n uint64 }
		var pieces []piece
		if o.RFlags&mremap.Fixed != 0 && oldLen == newLen && oldLen != 0 && o.Addr+oldLen > o.Addr {
			to, last := o.NewAddr, uint64(0)
			for i, v := range mm.VMAsIn(o.Addr, o.Addr+oldLen) {
				from := max(v.Start, o.Addr)
				if i > 0 {
					to += v.Start - last
				}
				n := min(o.Addr+oldLen, v.End) - from
				pieces = append(pieces, piece{from, to, n})
				to += n
				last = v.End
			}
		}
		addr, err := mremap.Mremap(mm, o.Addr, o.Len, o.NewLen, o.RFlags, o.NewAddr)
		if err == nil && pieces != nil {
			for _, p := range pieces {
				x.o.move(mm, p.from, p.to, p.n)
			}
		} else if err == nil {
			if newLen < oldLen {
				x.o.unmap(mm, o.Addr+newLen, oldLen-newLen)
			}
			if o.RFlags&mremap.Fixed != 0 {
				x.o.unmap(mm, addr, newLen)
			}
			if addr != o.Addr {
				x.o.move(mm, o.Addr, addr, min(oldLen, newLen))
			}
		}
		return outcomeOf(addr, err)
	case opFork:
		c, err := fork.Fork(mm, child)
		if err == nil {
			x.o.fork(mm, c)
		}
		return outcomeOf(0, err)
	case opExit:
		err := x.m.DestroyMM(mm)
		if err == nil {
			x.o.drop(mm)
		}
		return outcomeOf(0, err)
	case opPin:
		return outcomeOf(0, mm.Pin(o.Addr, o.Len))
	case opUnpin:
		return outcomeOf(0, mm.Unpin(o.Addr, o.Len))
	case opHugeAlloc, opHugeFree:
		p, err := vmemmap.Of(x.m).Pool(o.Size)
		if err != nil {
			return outcomeOf(0, err)
		}
		var n int
		if o.Kind == opHugeAlloc {
			n, err = p.Alloc(o.N)
		} else {
			n, err = p.Free(o.N)
		}
		return outcomeOf(uint64(n), err)
	case opPFT:
		_, err := spf.PFT(mm, spf.PFTConfig{Threads: o.N, Addr: o.Addr, Len: o.Len, Writer: o.Writer},
			spf.Options{FromKnobs: true, CheckEachStep: false})
		if err == nil {
			for a := o.Addr; a < o.Addr+o.Len; a += w.l.ps {
				x.o.write(mm, a, a)
			}
		}
		return outcomeOf(0, err)
	case opKnob:
		return outcomeOf(0, x.m.SetKnob(o.Key, o.Value))
	}
	return outcome{Errno: "unknown op"}
}

// check runs every check on both machines and compares their states; it
// returns machine 0's Snapshot.
func (w *world) check() (Snapshot, error) {
	var snaps [2]Snapshot
	for k, x := range w.ms {
		var errs []error
		if err := x.m.Check(); err != nil {
			errs = append(errs, fmt.Errorf("Check: %w", err))
		}
		if x.m.HugeTLB() != nil {
			if err := vmemmap.Of(x.m).Check(); err != nil {
				errs = append(errs, fmt.Errorf("hugetlb Check: %w", err))
			}
		}
		for _, mm := range x.m.MMs() {
			if err := x.o.verify(mm); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return Snapshot{}, fmt.Errorf("%s machine: %w", w.label(k), errors.Join(errs...))
		}
		snaps[k] = Take(x.m)
	}
	a, b := snaps[0], snaps[1]
	switch w.twin.name {
	case "contpte":
		a.LoosenAD()
		b.LoosenAD()
	case "move_pmd", "move_pud":
		fm := &w.ms[0].m.Arch().Format
		a.LoosenSoftDirty(fm)
		b.LoosenSoftDirty(fm)
		// Page-table pages in use may differ: a table moved whole
		// leaves nothing behind, while moving its PTEs one by one
		// allocates a destination table and leaves the emptied source
		// table to the old VMA when it stays (MREMAP_DONTUNMAP), as in
		// Linux. Check proves neither leaks one.
		a.InUse[phys.KindTable], b.InUse[phys.KindTable] = 0, 0
	}
	if a.Equal(&b) {
		return snaps[0], nil
	}
	if d := cmp.Diff(a, b); d != "" {
		return Snapshot{}, fmt.Errorf("states differ (-fast +slow %s):\n%s", w.twin.name, d)
	}
	return snaps[0], nil
}

// history returns the operations applied so far, one per line.
func (w *world) history() string { return strings.Join(w.trace, "\n") }

// mustArch returns the architecture called name.
func mustArch(t testing.TB, name string) *arch.Arch {
	t.Helper()
	a, err := archs.ByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
