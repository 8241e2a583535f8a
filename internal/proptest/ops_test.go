package proptest

import (
	"fmt"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
	"github.com/ptsim/ptsim/pgtable"
)

// opKind names an operation of the state machine.
type opKind uint8

const (
	opMmap opKind = iota
	opMunmap
	opMprotect
	opRead
	opWrite
	opMremap
	opFork
	opExit
	opPin
	opUnpin
	opHugeAlloc
	opHugeFree
	opPFT
	opKnob
	numOps
)

var opNames = [numOps]string{"mmap", "munmap", "mprotect", "read", "write", "mremap", "fork", "exit",
	"pin", "unpin", "hugetlb-alloc", "hugetlb-free", "pft", "config"}

func (k opKind) String() string {
	if k < numOps {
		return opNames[k]
	}
	return fmt.Sprintf("op%d", uint8(k))
}

// op is one operation, applied in turn to every machine of a world. MM
// picks the address space (an index into the live ones, modulo their
// number); the other fields are the operation's arguments, passed to the
// public API as they are, valid or not.
type op struct {
	Kind opKind
	MM   int
	CPU  int
	// Addr and Len are the range (every range operation); NewLen, NewAddr
	// and RFlags are mremap's.
	Addr, Len       uint64
	NewLen, NewAddr uint64
	RFlags          mremap.Flags
	// Prot and Flags are mmap's and mprotect's.
	Prot  mmu.Prot
	Flags mmu.MapFlags
	// Val is the value a write stores.
	Val uint64
	// N is the number of hugetlb folios or pft threads; Size the hugetlb
	// size; Writer the pft writer's mmap/munmap pairs.
	N      int
	Size   uint64
	Writer int
	// Key and Value are a config switch.
	Key, Value string
}

func (o op) String() string {
	switch o.Kind {
	case opMmap:
		return fmt.Sprintf("mm%d mmap %#x %#x %v %+v", o.MM, o.Addr, o.Len, o.Prot, o.Flags)
	case opMunmap:
		return fmt.Sprintf("mm%d munmap %#x %#x", o.MM, o.Addr, o.Len)
	case opMprotect:
		return fmt.Sprintf("mm%d mprotect %#x %#x %v", o.MM, o.Addr, o.Len, o.Prot)
	case opRead:
		return fmt.Sprintf("mm%d read %#x cpu=%d", o.MM, o.Addr, o.CPU)
	case opWrite:
		return fmt.Sprintf("mm%d write %#x cpu=%d val=%#x", o.MM, o.Addr, o.CPU, o.Val)
	case opMremap:
		return fmt.Sprintf("mm%d mremap %#x %#x %#x %v new=%#x", o.MM, o.Addr, o.Len, o.NewLen, o.RFlags, o.NewAddr)
	case opFork, opExit:
		return fmt.Sprintf("mm%d %v", o.MM, o.Kind)
	case opPin, opUnpin:
		return fmt.Sprintf("mm%d %v %#x %#x", o.MM, o.Kind, o.Addr, o.Len)
	case opHugeAlloc, opHugeFree:
		return fmt.Sprintf("%v %d %#x", o.Kind, o.N, o.Size)
	case opPFT:
		return fmt.Sprintf("mm%d pft threads=%d %#x %#x writer=%d", o.MM, o.N, o.Addr, o.Len, o.Writer)
	case opKnob:
		return fmt.Sprintf("config %s=%s", o.Key, o.Value)
	}
	return o.Kind.String()
}

// source is where operations draw their choices: rapid's data when
// rapid drives, the fuzzer's bytes when FuzzOps does.
type source interface {
	// intn returns a choice in [0, n), n > 0.
	intn(n int, label string) int
	// u64 returns any 64-bit value.
	u64(label string) uint64
}

// layout is where an architecture's operations put their addresses:
// slots of two PMDs from base (a few pages apart or exactly aligned), big
// slots of one PUD (for PUD moves) where a PUD is at most 2 GiB, and far
// slots high in the user space (s390 grows its tables there; LA57 uses its
// fifth level).
type layout struct {
	ps, pmd, pud   uint64
	slot           uint64
	base           uint64
	big, far       uint64
	contBlock      uint64
	hugeSizes      []uint64
	thp, bigSlots  bool
	maxPopulate    uint64
	folioChoices   []uint64
	knobs          [][2]string
	userEnd        uint64
	hasHugeOptimiz bool
}

const (
	nSlots    = 8
	nBigSlots = 4
	nFarSlots = 2
)

func newLayout(a *arch.Arch) *layout {
	g := &a.Geometry
	l := &layout{ps: g.PageSize(), pmd: g.Size(pgtable.PMD), pud: g.Size(pgtable.PUD), userEnd: a.User.End}
	l.slot = max(2*l.pmd, 64*l.ps)
	l.base = 0x10_0000_0000
	if a.User.End != 0 && a.User.End < 1<<32 {
		l.base = 0x4000_0000
		l.far = 0x8000_0000
	} else {
		l.far = a.User.End / 2
		if a.Name == "s390x" {
			l.far = 1 << 53 // above the region-second limit: five levels
		}
		l.far &^= l.slot - 1
	}
	if l.pud <= 2<<30 && l.base >= 1<<32 {
		l.bigSlots = true
		l.big = l.base + 64<<30
	}
	l.thp = a.Caps.THPLevels[pgtable.PMD]
	l.maxPopulate = 64 * l.ps
	l.folioChoices = []uint64{0, 0, 4 * l.ps}
	if n := a.Caps.ContPTEs; n > 0 && uint64(n)*l.ps <= l.pmd {
		l.contBlock = uint64(n) * l.ps
		l.folioChoices = append(l.folioChoices, l.contBlock)
	}
	// PMD-sized folios (THPs, or PTE-mapped THPs with thp=never), except
	// on arm64 with 64 KiB pages where one is 512 MiB of 8192 pages: every
	// step checks every page, and that would dwarf everything else.
	if l.pmd/l.ps <= 2048 {
		l.folioChoices = append(l.folioChoices, l.pmd)
	}
	for _, s := range a.Caps.HugeSizes {
		if s <= 32<<20 {
			l.hugeSizes = append(l.hugeSizes, s)
		}
	}
	l.knobs = [][2]string{{"fault_around_bytes", "0"}, {"fault_around_bytes", "65536"},
		{"fault_whole_folio", "on"}, {"fault_whole_folio", "off"},
		{"file_large_folios", "on"}, {"file_large_folios", "off"}, {"thp", "never"}}
	if l.thp {
		l.knobs = append(l.knobs, [2]string{"thp", "always"})
	}
	return l
}

// pick returns one of xs.
func pick[T any](s source, xs []T, label string) T { return xs[s.intn(len(xs), label)] }

// addr draws an address: mostly in a slot (aligned, or a few pages in, or
// a few pages before the next slot), sometimes in a big or far slot,
// rarely anything at all.
func (l *layout) addr(s source) uint64 {
	switch k := s.intn(20, "addr kind"); {
	case k < 15:
		a := l.base + uint64(s.intn(nSlots, "slot"))*l.slot
		switch s.intn(4, "slot offset") {
		case 1:
			a += uint64(s.intn(16, "pages in")) * l.ps
		case 2:
			a += l.slot - uint64(1+s.intn(16, "pages before end"))*l.ps
		case 3:
			a += l.pmd
		}
		return a
	case k < 17 && l.bigSlots:
		return l.big + uint64(s.intn(nBigSlots, "big slot"))*l.pud
	case k < 19:
		return l.far + uint64(s.intn(nFarSlots, "far slot"))*l.slot
	}
	return s.u64("wild address")
}

// length draws a length: mostly a few pages, sometimes a PMD, a slot or a
// PUD, rarely anything at all (zero, unaligned, huge).
func (l *layout) length(s source) uint64 {
	switch k := s.intn(20, "len kind"); {
	case k < 12:
		return uint64(1+s.intn(32, "pages")) * l.ps
	case k < 15:
		return l.pmd
	case k < 17:
		return l.slot
	case k < 19 && l.bigSlots:
		return l.pud
	}
	return s.u64("wild length")
}

func (l *layout) prot(s source) mmu.Prot {
	return pick(s, []mmu.Prot{mmu.ProtRead | mmu.ProtWrite, mmu.ProtRead | mmu.ProtWrite, mmu.ProtRead,
		mmu.ProtNone, mmu.ProtRead | mmu.ProtExec, mmu.ProtRead | mmu.ProtWrite | mmu.ProtExec}, "prot")
}

// vmaPage draws an address inside one of the VMAs of mm (its first page,
// its last, or one between), or, when mm has none, any address.
func (l *layout) vmaPage(s source, mm *mmu.MM) uint64 {
	vs := mm.VMAs()
	if len(vs) == 0 {
		return l.addr(s)
	}
	v := vs[s.intn(len(vs), "vma")]
	pages := v.Len() / l.ps
	switch s.intn(4, "page in vma") {
	case 0:
		return v.Start
	case 1:
		return v.End - l.ps
	}
	return v.Start + uint64(s.intn(int(min(pages, 1<<20)), "page"))*l.ps
}

// vmaRange draws a range that overlaps the VMAs of mm: part of one,
// one whole, or one and its neighbour.
func (l *layout) vmaRange(s source, mm *mmu.MM) (uint64, uint64) {
	vs := mm.VMAs()
	if len(vs) == 0 || s.intn(8, "range kind") == 0 {
		return l.addr(s), l.length(s)
	}
	i := s.intn(len(vs), "vma")
	v := vs[i]
	switch s.intn(4, "range in vma") {
	case 0:
		return v.Start, v.Len()
	case 1:
		if i+1 < len(vs) {
			return v.Start, vs[i+1].End - v.Start
		}
	}
	pages := v.Len() / l.ps
	first := uint64(s.intn(int(min(pages, 1<<20)), "first page"))
	n := 1 + uint64(s.intn(int(min(pages-first, 64)), "pages"))
	return v.Start + first*l.ps, n * l.ps
}

// gen draws an operation of kind k for the world's current state.
func (w *world) gen(s source, k opKind) op {
	l := w.l
	o := op{Kind: k, MM: s.intn(len(w.names), "mm")}
	mm := w.mm(0, o.MM)
	switch k {
	case opMmap:
		o.Addr, o.Len = l.addr(s), l.length(s)
		o.Prot = l.prot(s)
		fl := &o.Flags
		switch s.intn(6, "backing") {
		case 1:
			fl.Shared = true
		case 2:
			fl.File = pick(s, []string{"f0", "f1"}, "file")
			fl.Offset = uint64(s.intn(4, "file offset")) * l.pmd
		case 3:
			fl.File = pick(s, []string{"f0", "f1"}, "file")
			fl.Offset = uint64(s.intn(4, "file offset")) * l.pmd
			fl.Shared = true
		}
		fl.FolioSize = pick(s, l.folioChoices, "folio")
		if fl.File == "" && !fl.Shared {
			switch s.intn(8, "fork flags") {
			case 0:
				fl.DontCopy = true
			case 1:
				fl.WipeOnFork = true
			}
		}
		// Populate only small ranges: every page of a big one would be
		// faulted in, and checked after every step.
		fl.Populate = s.intn(4, "populate") == 0 && o.Len <= l.maxPopulate
		if s.intn(16, "bad flags") == 0 {
			o.Prot |= mmu.Prot(1 << (3 + s.intn(5, "bad prot bit")))
			fl.FolioSize += uint64(s.intn(3, "bad folio")) * l.ps
			fl.Offset += uint64(s.intn(2, "bad offset"))
		}
	case opMunmap:
		o.Addr, o.Len = l.vmaRange(s, mm)
	case opPin, opUnpin:
		// Pin faults every page in: keep it small, as populate.
		o.Addr, o.Len = l.vmaRange(s, mm)
		o.Len = min(o.Len, l.maxPopulate)
	case opMprotect:
		o.Addr, o.Len = l.vmaRange(s, mm)
		o.Prot = l.prot(s)
	case opRead, opWrite:
		o.Addr = l.vmaPage(s, mm)
		o.CPU = s.intn(3, "cpu") // 2 is a CPU the machine lacks
		if s.intn(8, "good cpu") != 0 {
			o.CPU &= 1
		}
		o.Val = s.u64("value")
	case opMremap:
		o.Addr, o.Len = l.vmaRange(s, mm)
		switch s.intn(4, "new len") {
		case 0:
			o.NewLen = o.Len
		case 1:
			o.NewLen = o.Len / 2 &^ (l.ps - 1)
		case 2:
			o.NewLen = o.Len + uint64(1+s.intn(16, "grow pages"))*l.ps
		default:
			o.NewLen = l.length(s)
		}
		o.RFlags = pick(s, []mremap.Flags{mremap.MayMove, mremap.MayMove | mremap.Fixed, mremap.MayMove | mremap.Fixed,
			mremap.MayMove | mremap.DontUnmap, mremap.MayMove | mremap.DontUnmap | mremap.Fixed, 0, mremap.Fixed, 8}, "mremap flags")
		o.NewAddr = l.addr(s)
		if s.intn(4, "aligned like old") == 0 {
			o.NewAddr = o.NewAddr&^(l.pmd-1) | o.Addr&(l.pmd-1)
		}
	case opHugeAlloc, opHugeFree:
		o.N = s.intn(4, "folios")
		o.Size = l.ps << 9
		if len(l.hugeSizes) > 0 {
			o.Size = pick(s, l.hugeSizes, "huge size")
		}
	case opPFT:
		o.N = 1 + s.intn(2, "threads")
		o.Addr, o.Len = l.vmaRange(s, mm)
		o.Len = min(o.Len, 32*l.ps)
		if o.N == 1 {
			o.Writer = s.intn(3, "writer")
		}
	case opKnob:
		kv := pick(s, l.knobs, "knob")
		o.Key, o.Value = kv[0], kv[1]
	}
	return o
}
