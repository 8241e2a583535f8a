package scenario

import (
	"github.com/ptsim/ptsim/mmu"
)

// Oracle is the scenario's own record of what every page should hold,
// kept independently of the model so that `check` tests the model rather
// than repeating it. It knows nothing of page tables: only which value was
// last written where, and where data went when a command moved or copied
// it.
//
// It keeps, per address space, the private pages (anonymous memory and
// private copies of file pages), keyed by virtual page; and per file
// (named files and the shmem behind shared anonymous mappings), the page
// cache, keyed by page index. A page of a shared mapping reads its file's
// value; a page of a private mapping reads its own value if it has one,
// else its file's value (not yet copied on write), else zero.
//
// Commands that move or copy data update it through the methods below:
// write (Write, WriteDefault), munmap and mmap (Unmap), populate of a
// private writable file mapping (CopyOnWrite). The feature commands call
// them too: mremap calls Move (and Unmap for a shrunk tail), fork calls
// Fork (and Unmap for VM_WIPEONFORK and VM_DONTCOPY ranges in the child).
// Addresses and lengths are bytes; lengths are rounded up to pages, and
// parts of a range that no VMA maps are ignored where the VMA decides.
//
// The Oracle is not safe for concurrent use; it is driven by one script.
type Oracle struct {
	// mms holds each address space's private pages, keyed by virtual
	// page number.
	mms map[*mmu.MM]*pageMap
	// files holds each file's page-cache values, keyed by page index.
	files map[*mmu.File]*pageMap
}

func newOracle(*Env) *Oracle {
	return &Oracle{mms: map[*mmu.MM]*pageMap{}, files: map[*mmu.File]*pageMap{}}
}

// NewOracle returns an empty oracle, for Go programs that drive mmu
// directly and want the same bookkeeping.
func NewOracle() *Oracle { return newOracle(nil) }

// DefaultValue returns what `write` stores at va when no val= is given:
// the page-aligned virtual address, at the time of the write.
func DefaultValue(mm *mmu.MM, va uint64) uint64 {
	return va &^ (mm.Machine().Arch().PageSize() - 1)
}

func pageShift(mm *mmu.MM) uint { return mm.Machine().Arch().Geometry.PageShift }

// pages returns the page-number range [first, last) covering
// [va, va+length); a range that wraps ends at the top of the space.
func pages(mm *mmu.MM, va, length uint64) (uint64, uint64) {
	s := pageShift(mm)
	end := va + length
	if end < va {
		end = ^uint64(0)
	}
	last := end >> s
	if end&(1<<s-1) != 0 {
		last++
	}
	return va >> s, last
}

// vmasIn returns the VMAs overlapping the pages [first, last).
func vmasIn(mm *mmu.MM, first, last uint64) []*mmu.VMA {
	s := pageShift(mm)
	end := last << s
	if last >= 1<<(64-s) {
		end = ^uint64(0)
	}
	return mm.VMAsIn(first<<s, end)
}

func (o *Oracle) mmMap(mm *mmu.MM) *pageMap {
	p := o.mms[mm]
	if p == nil {
		p = &pageMap{}
		o.mms[mm] = p
	}
	return p
}

func (o *Oracle) fileMap(f *mmu.File) *pageMap {
	p := o.files[f]
	if p == nil {
		p = &pageMap{}
		o.files[f] = p
	}
	return p
}

// sharedFile reports whether writes through v reach its file.
func sharedFile(v *mmu.VMA) bool { return v.File != nil && v.Flags&mmu.VMShared != 0 }

// write records value base+k*stride for the k-th page of the range.
func (o *Oracle) write(mm *mmu.MM, va, length, base, stride uint64) {
	s := pageShift(mm)
	first, last := pages(mm, va, length)
	for _, v := range vmasIn(mm, first, last) {
		a, b := max(first, v.Start>>s), min(last, v.End>>s)
		if a >= b {
			continue
		}
		val := base + (a-first)*stride
		if sharedFile(v) {
			idx := v.PgOffAt(a<<s, s)
			o.fileMap(v.File).set(idx, idx+(b-a), val, stride)
			continue
		}
		o.mmMap(mm).set(a, b, val, stride)
	}
}

// Write records that every page of [va, va+length) in mm was written
// with val.
func (o *Oracle) Write(mm *mmu.MM, va, length, val uint64) { o.write(mm, va, length, val, 0) }

// WriteDefault records that every page of [va, va+length) in mm was
// written with its default value (DefaultValue).
func (o *Oracle) WriteDefault(mm *mmu.MM, va, length uint64) {
	ps := uint64(1) << pageShift(mm)
	o.write(mm, va, length, va&^(ps-1), ps)
}

// Unmap records that the private data of [va, va+length) in mm is gone:
// munmap, a fresh mmap, MADV_DONTNEED, the source of MREMAP_DONTUNMAP, a
// VM_WIPEONFORK range in a fork child. Files keep their contents.
func (o *Oracle) Unmap(mm *mmu.MM, va, length uint64) {
	if p := o.mms[mm]; p != nil {
		p.clear(pages(mm, va, length))
	}
}

// Move records that the private data of [oldVA, oldVA+length) in mm now
// lives at [newVA, newVA+length) (mremap's move): the new range holds
// exactly what the old one held, and the old range holds no private data
// afterwards. The ranges may overlap.
func (o *Oracle) Move(mm *mmu.MM, oldVA, newVA, length uint64) {
	p := o.mms[mm]
	if p == nil {
		return
	}
	s := pageShift(mm)
	a, b := pages(mm, oldVA, length)
	rs := p.extract(a, b)
	p.clear(a, b)
	na := newVA >> s
	p.clear(na, na+(b-a))
	p.place(rs, na-a)
}

// Copy records that the private data of [srcVA, srcVA+length) in src was
// copied to [dstVA, dstVA+length) in dst, replacing what dst held there.
func (o *Oracle) Copy(src *mmu.MM, srcVA uint64, dst *mmu.MM, dstVA, length uint64) {
	s := pageShift(src)
	a, b := pages(src, srcVA, length)
	var rs []run
	if p := o.mms[src]; p != nil {
		rs = p.extract(a, b)
	}
	d := o.mmMap(dst)
	da := dstVA >> s
	d.clear(da, da+(b-a))
	d.place(rs, da-a)
}

// Fork records that child starts as a copy of parent: every private page
// of the parent reads the same in the child (copy on write shares it,
// shared mappings read their files anyway). The fork command then calls
// Unmap on the child for ranges the child does not get (VM_DONTCOPY) or
// gets empty (VM_WIPEONFORK).
func (o *Oracle) Fork(parent, child *mmu.MM) {
	if p := o.mms[parent]; p != nil {
		o.mms[child] = p.clone()
	} else {
		delete(o.mms, child)
	}
}

// Drop forgets an address space that has been torn down.
func (o *Oracle) Drop(mm *mmu.MM) { delete(o.mms, mm) }

// CopyOnWrite records that every page of [va, va+length) in mm now holds
// a private copy of what it showed: private file pages stop following
// their file (MAP_POPULATE write-faults a private writable mapping, and a
// write fault copies the file page).
func (o *Oracle) CopyOnWrite(mm *mmu.MM, va, length uint64) {
	s := pageShift(mm)
	first, last := pages(mm, va, length)
	for _, v := range vmasIn(mm, first, last) {
		if v.File == nil || sharedFile(v) {
			continue
		}
		a, b := max(first, v.Start>>s), min(last, v.End>>s)
		if a >= b {
			continue
		}
		p := o.mmMap(mm)
		own := p.extract(a, b)
		idx := v.PgOffAt(a<<s, s)
		p.set(a, b, 0, 0)
		if f := o.files[v.File]; f != nil {
			p.place(f.extract(idx, idx+(b-a)), a-idx)
		}
		p.place(own, 0)
	}
}

// Expected returns the value a reader of va in mm should see; ok is false
// when no VMA maps va.
func (o *Oracle) Expected(mm *mmu.MM, va uint64) (val uint64, ok bool) {
	v := mm.FindVMA(va)
	if v == nil {
		return 0, false
	}
	s := pageShift(mm)
	if !sharedFile(v) {
		if p := o.mms[mm]; p != nil {
			if val, ok := p.get(va >> s); ok {
				return val, true
			}
		}
	}
	if v.File != nil {
		if f := o.files[v.File]; f != nil {
			val, _ := f.get(v.PgOffAt(va, s))
			return val, true
		}
	}
	return 0, true
}
