package proptest

import (
	"fmt"
	"sort"

	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/pgtable"
)

// oracle is the tests' own record of what every page of one machine
// should hold, kept apart from the model: which value was last written
// where, and where data went when an operation moved or copied it. It
// keeps, per address space, the private pages (anonymous memory and
// private copies of file pages) by virtual page number, and per file
// (named files and the shmem behind shared anonymous mappings) the page
// cache by page index. A shared file mapping reads its file; a private
// one reads its own copy if it has one, else its file (not yet copied on
// write), else zero.
type oracle struct {
	// shift is the base page shift.
	shift uint
	// priv holds each address space's private pages.
	priv map[*mmu.MM]map[uint64]uint64
	// files holds each file's page-cache values.
	files map[*mmu.File]map[uint64]uint64
}

func newOracle(shift uint) *oracle {
	return &oracle{shift: shift, priv: map[*mmu.MM]map[uint64]uint64{}, files: map[*mmu.File]map[uint64]uint64{}}
}

func sharedFile(v *mmu.VMA) bool { return v.File != nil && v.Flags&mmu.VMShared != 0 }

func (o *oracle) privOf(mm *mmu.MM) map[uint64]uint64 {
	p := o.priv[mm]
	if p == nil {
		p = map[uint64]uint64{}
		o.priv[mm] = p
	}
	return p
}

func (o *oracle) fileOf(f *mmu.File) map[uint64]uint64 {
	p := o.files[f]
	if p == nil {
		p = map[uint64]uint64{}
		o.files[f] = p
	}
	return p
}

// write records a store of val to the page at va.
func (o *oracle) write(mm *mmu.MM, va, val uint64) {
	v := mm.FindVMA(va)
	if v == nil {
		return
	}
	if sharedFile(v) {
		o.fileOf(v.File)[v.PgOffAt(va, o.shift)] = val
		return
	}
	o.privOf(mm)[va>>o.shift] = val
}

// inRange reports whether page number vpn lies in [va, va+n) bytes; the
// range may end at the top of the space.
func (o *oracle) inRange(vpn, va, n uint64) bool {
	first := va >> o.shift
	return vpn >= first && vpn-first < n>>o.shift
}

// unmap forgets the private data of [va, va+n): munmap, a fresh mmap, the
// target of a fixed mremap, a wipe-on-fork range. Files keep theirs.
func (o *oracle) unmap(mm *mmu.MM, va, n uint64) {
	p := o.priv[mm]
	for vpn := range p {
		if o.inRange(vpn, va, n) {
			delete(p, vpn)
		}
	}
}

// move records that the private data of [from, from+n) now lives at
// [to, to+n), and the old range holds none.
func (o *oracle) move(mm *mmu.MM, from, to, n uint64) {
	p := o.priv[mm]
	if p == nil {
		return
	}
	moved := map[uint64]uint64{}
	for vpn, val := range p {
		if o.inRange(vpn, from, n) {
			moved[vpn-from>>o.shift+to>>o.shift] = val
			delete(p, vpn)
		}
	}
	o.unmap(mm, to, n)
	for vpn, val := range moved {
		p[vpn] = val
	}
}

// fork records that child starts with a copy of parent's private data,
// less what it does not inherit (VM_DONTCOPY areas, which it lacks, and
// VM_WIPEONFORK areas, which it gets empty).
func (o *oracle) fork(parent, child *mmu.MM) {
	c := map[uint64]uint64{}
	for vpn, val := range o.priv[parent] {
		v := child.FindVMA(vpn << o.shift)
		if v == nil || v.Flags&mmu.VMWipeOnFork != 0 {
			continue
		}
		c[vpn] = val
	}
	o.priv[child] = c
}

// cow records that the pages of private file mappings in [va, va+n) now
// hold private copies of what they showed (MAP_POPULATE write-faults a
// private writable mapping).
func (o *oracle) cow(mm *mmu.MM, va, n uint64) {
	for _, v := range mm.VMAsIn(va, va+n) {
		if v.File == nil || sharedFile(v) {
			continue
		}
		lo, hi := max(va, v.Start), min(va+n, v.End)
		p := o.privOf(mm)
		for a := lo; a < hi; a += 1 << o.shift {
			if _, ok := p[a>>o.shift]; !ok {
				p[a>>o.shift] = o.files[v.File][v.PgOffAt(a, o.shift)]
			}
		}
	}
}

// drop forgets an address space that was torn down.
func (o *oracle) drop(mm *mmu.MM) { delete(o.priv, mm) }

// expected returns what a reader of va in mm should see; ok is false when
// no VMA maps va.
func (o *oracle) expected(mm *mmu.MM, va uint64) (uint64, bool) {
	v := mm.FindVMA(va)
	if v == nil {
		return 0, false
	}
	if !sharedFile(v) {
		if val, ok := o.priv[mm][va>>o.shift]; ok {
			return val, true
		}
	}
	if v.File != nil {
		return o.files[v.File][v.PgOffAt(va, o.shift)], true
	}
	return 0, true
}

// verify compares every page worth looking at with what the oracle
// expects: every mapped page, every page the oracle holds a value for,
// every cached file page a VMA maps, and the first page of every VMA.
// It returns the first few differences.
func (o *oracle) verify(mm *mmu.MM) error {
	ps := uint64(1) << o.shift
	pages := map[uint64]bool{}
	for _, v := range mm.VMAs() {
		pages[v.Start] = true
		mm.PageTable().Leaves(v.Start, v.End, func(l pgtable.Leaf) bool {
			lo, hi := max(v.Start, l.Addr), min(v.End, l.Addr+l.Size)
			for a := lo; a < hi; a += ps {
				pages[a] = true
			}
			return true
		})
		if v.File != nil {
			first, n := v.PgOff, v.Len()>>o.shift
			for _, idx := range v.File.Indices() {
				if idx >= first && idx-first < n {
					pages[v.Start+(idx-first)<<o.shift] = true
				}
			}
			for idx := range o.files[v.File] {
				if idx >= first && idx-first < n {
					pages[v.Start+(idx-first)<<o.shift] = true
				}
			}
		}
	}
	for vpn := range o.priv[mm] {
		pages[vpn<<o.shift] = true
	}
	addrs := make([]uint64, 0, len(pages))
	for a := range pages {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	var bad []string
	for _, a := range addrs {
		want, inVMA := o.expected(mm, a)
		got, ok := mm.Content(a)
		if ok != inVMA || got != want {
			bad = append(bad, fmt.Sprintf("%#x holds %#x (in a vma: %v), oracle %#x (in a vma: %v)", a, got, ok, want, inVMA))
			if len(bad) == 5 {
				break
			}
		}
	}
	if bad != nil {
		return fmt.Errorf("%s: contents: %v", mm.Name(), bad)
	}
	return nil
}
