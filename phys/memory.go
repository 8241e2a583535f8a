package phys

import (
	"fmt"

	"github.com/ptsim/ptsim/internal/errno"
)

// PFN is a page frame number: a physical address shifted right by the page
// shift.
type PFN uint64

// Kind says what an allocation is for, so that fault injection can aim at
// one kind of allocation site.
type Kind uint8

// Allocation kinds.
const (
	// KindTable is a page-table page.
	KindTable Kind = iota
	// KindFolio is a user folio: anonymous, page cache or hugetlb.
	KindFolio
	// KindKernel is any other kernel page (vmemmap pages, for example).
	KindKernel
	// KindSlab is a kernel object Linux takes from a slab cache, such as
	// the vm_area_struct that mmap, a VMA split, fork and mremap
	// allocate. It uses no frames (InUse is always 0); AllocSlab only
	// gives fault injection a point to fail. A fail policy counts slab
	// allocations only when its Kinds name KindSlab, so policies written
	// for frame allocations keep their counts.
	KindSlab
	numKinds
)

var kindNames = [numKinds]string{"table", "folio", "kernel", "slab"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Config describes the simulated physical memory.
type Config struct {
	// Size is the memory size in bytes; it is rounded down to whole pages.
	Size uint64
	// PageShift is log2 of the base page size (12 for 4 KiB).
	PageShift uint
	// MaxOrder is the largest folio order the allocator can hand out.
	MaxOrder uint
}

// DefaultSize is the simulated memory size when none is given: 64 GiB.
const DefaultSize = 64 << 30

// Memory is the simulated physical memory: frames, their per-page and
// per-folio state, and a deterministic buddy allocator. Frame metadata is
// allocated a section at a time on first use, so memory that is never
// touched costs nothing.
type Memory struct {
	// pageShift is log2 of the base page size.
	pageShift uint
	// frames is the number of frames.
	frames uint64
	// sectionShift is log2 of the frames per metadata section; a section
	// is at least as large as the largest folio, so a folio's pages are
	// contiguous in one slice.
	sectionShift uint
	// sections holds the page metadata, nil until a frame in it is used.
	sections [][]Page
	// bd hands out frame ranges.
	bd *buddy
	// maxOrder is the largest order bd can hand out.
	maxOrder uint
	// fail decides which allocations fail, for testing error paths.
	fail FailPolicy
	// allocs counts allocation attempts seen by fail.
	allocs uint64
	// inUse counts allocated frames by kind.
	inUse [numKinds]uint64
}

// minSectionShift gives sections of 2^18 frames (1 GiB of 4 KiB pages).
const minSectionShift = 18

// New returns a memory of cfg.Size bytes with every frame free.
func New(cfg Config) (*Memory, error) {
	if cfg.PageShift < 12 || cfg.PageShift > 16 {
		return nil, fmt.Errorf("phys: page shift %d: %w", cfg.PageShift, errno.EINVAL)
	}
	if cfg.Size == 0 {
		cfg.Size = DefaultSize
	}
	frames := cfg.Size >> cfg.PageShift
	if frames == 0 || frames > 1<<40 {
		return nil, fmt.Errorf("phys: memory size %#x: %w", cfg.Size, errno.EINVAL)
	}
	if cfg.MaxOrder > 30 {
		return nil, fmt.Errorf("phys: max order %d: %w", cfg.MaxOrder, errno.EINVAL)
	}
	shift := uint(minSectionShift)
	if cfg.MaxOrder > shift {
		shift = cfg.MaxOrder
	}
	nsec := (frames + 1<<shift - 1) >> shift
	return &Memory{
		pageShift:    cfg.PageShift,
		frames:       frames,
		sectionShift: shift,
		sections:     make([][]Page, nsec),
		bd:           newBuddy(frames, cfg.MaxOrder),
		maxOrder:     cfg.MaxOrder,
	}, nil
}

// PageShift returns log2 of the base page size.
func (m *Memory) PageShift() uint { return m.pageShift }

// Frames returns the number of frames.
func (m *Memory) Frames() uint64 { return m.frames }

// FreeFrames returns the number of free frames.
func (m *Memory) FreeFrames() uint64 { return m.bd.nfree }

// InUse returns the number of allocated frames of kind k (0 for a kind
// that is not one).
func (m *Memory) InUse(k Kind) uint64 {
	if k >= numKinds {
		return 0
	}
	return m.inUse[k]
}

// MaxOrder returns the largest order Alloc accepts.
func (m *Memory) MaxOrder() uint { return m.maxOrder }

// Valid reports whether pfn names a frame of this memory.
func (m *Memory) Valid(pfn PFN) bool { return uint64(pfn) < m.frames }

// Page returns the metadata of frame pfn, allocating its section on first
// use. Precondition: m.Valid(pfn).
func (m *Memory) Page(pfn PFN) *Page {
	s := uint64(pfn) >> m.sectionShift
	sec := m.sections[s]
	if sec == nil {
		sec = m.grow(s)
	}
	return &sec[uint64(pfn)&(1<<m.sectionShift-1)]
}

// pages returns the metadata of frames [pfn, pfn+n) as one slice.
// Precondition: the range lies in one section (true for any folio).
func (m *Memory) pages(pfn PFN, n uint64) []Page {
	s := uint64(pfn) >> m.sectionShift
	sec := m.sections[s]
	if sec == nil {
		sec = m.grow(s)
	}
	off := uint64(pfn) & (1<<m.sectionShift - 1)
	return sec[off : off+n]
}

func (m *Memory) grow(s uint64) []Page {
	n := uint64(1) << m.sectionShift
	if end := (s + 1) << m.sectionShift; end > m.frames {
		n -= end - m.frames
	}
	m.sections[s] = make([]Page, n)
	return m.sections[s]
}

// SectionsInUse returns how many metadata sections have been allocated.
func (m *Memory) SectionsInUse() int {
	n := 0
	for _, s := range m.sections {
		if s != nil {
			n++
		}
	}
	return n
}

// Alloc allocates a naturally aligned block of 2^order frames and returns
// its first frame. The block becomes a folio of that order with refcount
// 1; its pages are zero (content 0) and carry no flags but FlagAllocated
// (and FlagPageTable for KindTable). It fails with ENOMEM when no block is
// free or when the fail policy says so, and with EINVAL for an order above
// MaxOrder. Cost: O(order) bitmap updates plus one metadata write per frame.
func (m *Memory) Alloc(order uint, kind Kind) (PFN, error) {
	if order > m.maxOrder {
		return 0, fmt.Errorf("phys: alloc order %d above max %d: %w", order, m.maxOrder, errno.EINVAL)
	}
	if kind >= KindSlab {
		return 0, fmt.Errorf("phys: alloc of %s: not a kind of frame: %w", kind, errno.EINVAL)
	}
	if m.fail.matches(kind) {
		m.allocs++
		if m.fail.fails(m.allocs) {
			return 0, fmt.Errorf("phys: alloc order %d (%s, injected failure #%d): %w", order, kind, m.allocs, errno.ENOMEM)
		}
	}
	b, ok := m.bd.alloc(order)
	if !ok {
		return 0, fmt.Errorf("phys: alloc order %d (%s): %w", order, kind, errno.ENOMEM)
	}
	pfn := PFN(b)
	n := uint64(1) << order
	flags := uint32(order) | FlagAllocated
	if kind == KindTable {
		flags |= FlagPageTable
	}
	ps := m.pages(pfn, n)
	ps[0] = Page{flags: flags, ref: 1}
	for i := 1; i < len(ps); i++ {
		ps[i] = Page{flags: flags | FlagTail}
	}
	m.inUse[kind] += n
	return pfn, nil
}

// Free returns the folio whose head is pfn to the allocator, whatever its
// refcount. Callers normally drop references with Put, which frees at
// zero. Free of a frame that is not an allocated head is a no-op that
// reports false.
func (m *Memory) Free(pfn PFN, kind Kind) bool {
	if !m.Valid(pfn) || kind >= KindSlab {
		return false
	}
	p := m.Page(pfn)
	if p.flags&FlagAllocated == 0 || p.flags&FlagTail != 0 {
		return false
	}
	order := p.Order()
	if uint64(pfn)&(1<<order-1) != 0 {
		return false
	}
	n := uint64(1) << order
	ps := m.pages(pfn, n)
	for i := range ps {
		ps[i] = Page{}
	}
	m.bd.release(uint64(pfn), order)
	m.inUse[kind] -= n
	return true
}

// IsFree reports whether frame pfn is free in the allocator.
func (m *Memory) IsFree(pfn PFN) bool { return m.Valid(pfn) && m.bd.isFree(uint64(pfn)) }
