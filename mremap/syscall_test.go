package mremap

import (
	"reflect"
	"testing"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// TestErrors checks every error mremap returns for a bad request, and
// that nothing changed: the VMAs, translations, contents and counts of
// both ranges are as before.
func TestErrors(t *testing.T) {
	type setup func(e *env)
	const k = 1 << 10
	private := func(e *env) {
		e.mmap(e.src, 8*e.ps, mmu.MapFlags{})
		e.fill(e.src, 8*e.ps, e.ps)
	}
	withFlags := func(f mmu.VMFlags) setup {
		return func(e *env) { private(e); e.mm.FindVMA(e.src).Flags |= f }
	}
	hugetlb := func(e *env) {
		private(e)
		v := e.mm.FindVMA(e.src)
		v.Flags |= mmu.VMHugeTLB
		v.HugeShift = 21
	}
	cases := []struct {
		name  string
		setup setup
		old   func(e *env) (addr, oldLen, newLen uint64, fl Flags, newAddr uint64)
		errno error
	}{
		{"unknown flag", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, e.ps, MayMove | 8, 0
		}, mmu.EINVAL},
		{"unaligned address", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src + 1, e.ps, 2 * e.ps, MayMove, 0
		}, mmu.EINVAL},
		{"new length 0", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, 0, MayMove, 0
		}, mmu.EINVAL},
		{"new length wraps", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, ^uint64(0), MayMove, 0
		}, mmu.EINVAL},
		{"new length beyond TASK_SIZE", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, e.a.User.End + e.ps, MayMove, 0
		}, mmu.EINVAL},
		{"new address unaligned", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, e.ps, MayMove | Fixed, e.dst + 4*k + 1
		}, mmu.EINVAL},
		{"new range beyond TASK_SIZE", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 2 * e.ps, 2 * e.ps, MayMove | Fixed, e.a.User.End - e.ps
		}, mmu.EINVAL},
		{"fixed without maymove", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, e.ps, Fixed, e.dst
		}, mmu.EINVAL},
		{"dontunmap without maymove", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, e.ps, DontUnmap, e.dst
		}, mmu.EINVAL},
		{"dontunmap with a size change", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, 2 * e.ps, MayMove | DontUnmap, e.dst
		}, mmu.EINVAL},
		{"overlapping ranges", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 4 * e.ps, 4 * e.ps, MayMove | Fixed, e.src + 3*e.ps
		}, mmu.EINVAL},
		{"old length 0 on a private mapping", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 0, e.ps, MayMove, 0
		}, mmu.EINVAL},
		{"dontunmap on VM_DONTEXPAND", withFlags(mmu.VMDontExpand), func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, e.ps, MayMove | DontUnmap, 0
		}, mmu.EINVAL},
		{"dontunmap on VM_PFNMAP", withFlags(mmu.VMPFNMap), func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, e.ps, MayMove | DontUnmap, 0
		}, mmu.EINVAL},
		{"file offset overflows", func(e *env) {
			e.mmap(e.src, e.ps, mmu.MapFlags{File: "f", Shared: true})
			e.mm.FindVMA(e.src).PgOff = ^uint64(0) - 1
		}, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, 4 * e.ps, MayMove, 0
		}, mmu.EINVAL},
		{"hugetlb address not huge-aligned", hugetlb, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src + e.ps, e.ps, e.ps, MayMove | Fixed, e.dst
		}, mmu.EINVAL},
		{"hugetlb expansion", hugetlb, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 2 << 20, 4 << 20, MayMove, 0
		}, mmu.EINVAL},
		{"no mapping at the address", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.dst, e.ps, 2 * e.ps, MayMove, 0
		}, mmu.EFAULT},
		{"old range past the mapping's end", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src + 4*e.ps, 8 * e.ps, 16 * e.ps, MayMove, 0
		}, mmu.EFAULT},
		// A fixed move without a resize may run past the VMA into a gap
		// (a multi-VMA move); with a resize it may not.
		{"fixed resize past the mapping's end", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src + 4*e.ps, 8 * e.ps, 9 * e.ps, MayMove | Fixed, e.dst
		}, mmu.EFAULT},
		{"expanding VM_DONTEXPAND", withFlags(mmu.VMDontExpand), func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 8 * e.ps, 16 * e.ps, MayMove, 0
		}, mmu.EFAULT},
		{"expanding VM_PFNMAP", withFlags(mmu.VMPFNMap), func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 8 * e.ps, 16 * e.ps, MayMove, 0
		}, mmu.EFAULT},
		{"multi-vma move with a gap at the start", func(e *env) {
			e.mmap(e.src+e.ps, 2*e.ps, mmu.MapFlags{})
		}, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 4 * e.ps, 4 * e.ps, MayMove | Fixed, e.dst
		}, mmu.EFAULT},
		{"multi-vma move through a uffd-wp VMA", func(e *env) {
			private(e)
			if err := e.mm.Mprotect(e.src+2*e.ps, 2*e.ps, mmu.ProtRead); err != nil {
				e.t.Fatal(err)
			}
			e.mm.FindVMA(e.src + 2*e.ps).Flags |= mmu.VMUffdWP
		}, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 8 * e.ps, 8 * e.ps, MayMove | Fixed, e.dst
		}, mmu.EFAULT},
		{"cannot grow in place without maymove", func(e *env) {
			private(e)
			e.mmap(e.src+8*e.ps, e.ps, mmu.MapFlags{File: "blocker"})
		}, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 8 * e.ps, 16 * e.ps, 0, 0
		}, mmu.ENOMEM},
		{"no free range", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 8 * e.ps, e.a.User.End - 16*e.ps, MayMove, 0
		}, mmu.ENOMEM},
		// Check order: where two errors apply, Linux's first wins
		// (check_mremap_params before the VMA lookup, then
		// check_prep_vma in its order, then the resize paths).
		{"order: unaligned new address before no mapping", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.dst, e.ps, e.ps, MayMove | Fixed, e.dst + 64*e.ps + k
		}, mmu.EINVAL},
		{"order: overlap before no mapping", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.dst, 4 * e.ps, 4 * e.ps, MayMove | Fixed, e.dst + 2*e.ps
		}, mmu.EINVAL},
		{"order: new range beyond TASK_SIZE before no mapping", private, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.dst, e.ps, 2 * e.ps, MayMove | DontUnmap | Fixed, e.a.User.End - e.ps
		}, mmu.EINVAL},
		{"order: dontunmap on VM_DONTEXPAND before the range check", withFlags(mmu.VMDontExpand), func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src + 4*e.ps, 8 * e.ps, 8 * e.ps, MayMove | DontUnmap, e.dst
		}, mmu.EINVAL},
		{"order: range past the end before VM_DONTEXPAND", withFlags(mmu.VMDontExpand), func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src + 4*e.ps, 8 * e.ps, 16 * e.ps, 0, 0
		}, mmu.EFAULT},
		{"order: file offset overflow before VM_DONTEXPAND", func(e *env) {
			e.mmap(e.src, e.ps, mmu.MapFlags{File: "f", Shared: true})
			v := e.mm.FindVMA(e.src)
			v.PgOff = ^uint64(0) - 1
			v.Flags |= mmu.VMDontExpand
		}, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, e.ps, 4 * e.ps, MayMove, 0
		}, mmu.EINVAL},
		{"order: VM_DONTEXPAND before cannot grow without maymove", func(e *env) {
			withFlags(mmu.VMDontExpand)(e)
			e.mmap(e.src+8*e.ps, e.ps, mmu.MapFlags{File: "blocker"})
		}, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src, 8 * e.ps, 16 * e.ps, 0, 0
		}, mmu.EFAULT},
		{"order: hugetlb alignment before the range check", hugetlb, func(e *env) (uint64, uint64, uint64, Flags, uint64) {
			return e.src + e.ps, 64 * e.ps, 64 * e.ps, MayMove | Fixed, e.dst
		}, mmu.EINVAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "x86_64")
			c.setup(e)
			addr, oldLen, newLen, fl, newAddr := c.old(e)
			ranges := [][2]uint64{{e.src, 16 * e.ps}, {e.dst, 16 * e.ps}}
			before := e.snapshot(ranges...)
			counts := e.mm.Meter().Counts()
			_, err := e.mremap(addr, oldLen, newLen, fl, newAddr)
			wantErr(t, err, c.errno)
			if d := diffStates(before, e.snapshot(ranges...)); d != "" {
				t.Fatalf("the failed call changed the model:\n%s", d)
			}
			after := e.mm.Meter().Counts()
			diff := after.Sub(&counts)
			for ev, n := range diff {
				switch cost.Event(ev) {
				case cost.Syscalls, cost.MmapLocks, cost.LocalFullFlushes, cost.TLBInvalidated:
				default:
					if n != 0 {
						t.Errorf("the failed call counted %d %s", n, cost.Event(ev))
					}
				}
			}
		})
	}
}

// TestMapCountLimit lowers max_map_count to reach mremap's map-count
// check as Linux 6.17 makes it: under mmap_lock, for every call (even a
// no-op or a shrink), before the VMA is looked up, the address space
// must have room for four more VMAs (the two unmaps of a shrink and a
// Fixed target, the copy and the source unmap of the move), else ENOMEM
// with nothing changed; the argument checks (EINVAL) come first.
func TestMapCountLimit(t *testing.T) {
	saved := maxMapCount
	defer func() { maxMapCount = saved }()
	type call struct {
		old, oldLen, newLen uint64
		fl                  Flags
		newAddr             uint64
	}
	cases := []struct {
		name string
		call func(e *env) call
		// errAt is the error at max_map_count = VMAs + 3; okErr the
		// result at VMAs + 4 (nil: it succeeds).
		okErr error
	}{
		{"no-op", func(e *env) call { return call{e.src, 2 * e.ps, 2 * e.ps, 0, 0} }, nil},
		{"shrink in place", func(e *env) call { return call{e.src, 2 * e.ps, e.ps, 0, 0} }, nil},
		{"fixed move", func(e *env) call { return call{e.src, 2 * e.ps, 2 * e.ps, MayMove | Fixed, e.dst} }, nil},
		{"grow by moving", func(e *env) call { return call{e.src, 2 * e.ps, 4 * e.ps, MayMove, 0} }, nil},
		{"dontunmap", func(e *env) call { return call{e.src, 2 * e.ps, 2 * e.ps, MayMove | DontUnmap, e.dst} }, nil},
		{"no mapping: EFAULT only below the limit", func(e *env) call { return call{e.src + 8*e.ps, e.ps, e.ps, 0, 0} }, mmu.EFAULT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, room := range []int{3, 4} {
				e := newEnv(t, "x86_64")
				e.mmap(e.src, 2*e.ps, mmu.MapFlags{})
				e.fill(e.src, 2*e.ps, e.ps)
				e.mmap(e.src+2*e.ps, e.ps, mmu.MapFlags{File: "blocker"})
				e.mmap(e.src+4*e.ps, e.ps, mmu.MapFlags{File: "other"})
				c := tc.call(e)
				before := e.snapshot([2]uint64{e.src, 8 * e.ps}, [2]uint64{e.dst, 8 * e.ps})
				maxMapCount = len(e.mm.VMAs()) + room
				// Bad arguments are refused first, whatever the count.
				_, err := e.mremap(c.old, c.oldLen, c.newLen, c.fl|0x100, c.newAddr)
				wantErr(t, err, mmu.EINVAL)
				_, err = e.mremap(c.old, c.oldLen, c.newLen, c.fl, c.newAddr)
				maxMapCount = saved
				if room == 3 {
					wantErr(t, err, mmu.ENOMEM)
					if d := diffStates(before, e.snapshot([2]uint64{e.src, 8 * e.ps}, [2]uint64{e.dst, 8 * e.ps})); d != "" {
						t.Fatalf("refused call changed the address space:\n%s", d)
					}
					continue
				}
				if tc.okErr != nil {
					wantErr(t, err, tc.okErr)
				} else if err != nil {
					t.Fatalf("with room for four more VMAs: %v", err)
				}
			}
		})
	}
}

// TestResize covers the in-place paths: no change, shrink (also across
// VMAs), and growth into free space (merging with a following VMA).
func TestResize(t *testing.T) {
	e := newEnv(t, "x86_64")
	ps := e.ps
	e.mmap(e.src, 8*ps, mmu.MapFlags{})
	e.fill(e.src, 8*ps, ps)

	if got := e.mustMremap(e.src, 8*ps, 8*ps, 0, 0); got != e.src {
		t.Fatalf("no-op returned %#x", got)
	}
	if got := e.mustMremap(e.src, 8*ps, 6*ps, 0, 0); got != e.src {
		t.Fatalf("shrink returned %#x", got)
	}
	e.wantUnmapped(e.src+6*ps, 2*ps)
	e.wantContent(e.src, 6*ps, ps, func(a uint64) uint64 { return a })

	// Grow in place; the bytes up to the next VMA are free, and the next
	// VMA is compatible, so the three become one.
	e.mmap(e.src+10*ps, 2*ps, mmu.MapFlags{})
	if got := e.mustMremap(e.src, 6*ps, 10*ps, 0, 0); got != e.src {
		t.Fatalf("grow returned %#x", got)
	}
	vs := e.mm.VMAs()
	if len(vs) != 1 || vs[0].Start != e.src || vs[0].End != e.src+12*ps {
		t.Fatalf("after growing: %v", vs)
	}
	e.wantContent(e.src+6*ps, 4*ps, ps, func(uint64) uint64 { return 0 })

	// Shrink across two VMAs: the tail of both goes.
	if err := e.mm.Mprotect(e.src+8*ps, 4*ps, mmu.ProtRead); err != nil {
		t.Fatal(err)
	}
	if got := e.mustMremap(e.src, 12*ps, 2*ps, 0, 0); got != e.src {
		t.Fatalf("shrink returned %#x", got)
	}
	e.wantUnmapped(e.src+2*ps, 10*ps)
	if vs := e.mm.VMAs(); len(vs) != 1 || vs[0].End != e.src+2*ps {
		t.Fatalf("after the shrink: %v", vs)
	}
}

// TestGrowByMoving grows a mapping that cannot grow in place: with
// MREMAP_MAYMOVE it moves to a free range at the same offset in its PMD
// (so the PTE tables move whole), otherwise ENOMEM.
func TestGrowByMoving(t *testing.T) {
	e := newEnv(t, "x86_64")
	pmd := e.pmd
	e.mmap(e.src, 2*pmd, mmu.MapFlags{})
	e.fill(e.src, 2*pmd, e.ps)
	e.mmap(e.src+2*pmd, e.ps, mmu.MapFlags{File: "blocker"})
	e.reset()
	got := e.mustMremap(e.src, 2*pmd, 4*pmd, MayMove, 0)
	if got == e.src || got%pmd != e.src%pmd {
		t.Fatalf("moved to %#x, want another address at the same offset in its PMD as %#x", got, e.src)
	}
	e.wantCounts(map[cost.Event]uint64{cost.PMDMoves: 2, cost.PTEMoves: 0})
	e.wantContent(got, 2*pmd, e.ps, func(a uint64) uint64 { return a - got + e.src })
	e.wantContent(got+2*pmd, 2*pmd, pmd, func(uint64) uint64 { return 0 })
	e.wantUnmapped(e.src, 2*pmd)
	if v := e.mm.FindVMA(got); v == nil || v.End != got+4*pmd {
		t.Fatalf("new VMA %v", v)
	}
}

// TestDontUnmap moves the pages and leaves the old VMA in place, empty:
// reading it gives fresh zero pages, as userfaultfd-based GCs expect.
func TestDontUnmap(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		e := newEnv(t, "x86_64")
		pmd := e.pmd
		e.mmap(e.src, 2*pmd, mmu.MapFlags{})
		e.fill(e.src, 2*pmd, e.ps)
		rss := e.mm.RSS(mmu.MMAnonPages)
		fl, hint := MayMove|DontUnmap, e.dst
		if fixed {
			fl |= Fixed
		}
		got := e.mustMremap(e.src, 2*pmd, 2*pmd, fl, hint)
		if got != e.dst {
			t.Fatalf("moved to %#x, want the free hint %#x", got, e.dst)
		}
		v := e.mm.FindVMA(e.src)
		if v == nil || v.End != e.src+2*pmd || v.AnonVMA {
			t.Fatalf("old VMA %v (anon_vma %v), want it kept, unlinked from its anon pages", v, v != nil && v.AnonVMA)
		}
		if !e.mm.PageTable().IsEmpty(e.src, 2*pmd) {
			t.Fatal("the old range still maps pages")
		}
		if e.mm.RSS(mmu.MMAnonPages) != rss {
			t.Fatalf("rss %d, want %d", e.mm.RSS(mmu.MMAnonPages), rss)
		}
		e.wantContent(e.dst, 2*pmd, e.ps, func(a uint64) uint64 { return a - e.dst + e.src })
		if got, err := e.mm.Read(0, e.src+e.ps); err != nil || got != 0 {
			t.Fatalf("old range reads %#x, %v; want a fresh zero page", got, err)
		}
		e.check()
	}
}

// TestFixedReplaces moves onto a range that is mapped: the old mapping
// there is unmapped first (its pages freed), as MAP_FIXED does.
func TestFixedReplaces(t *testing.T) {
	e := newEnv(t, "x86_64")
	ps := e.ps
	e.mmap(e.src, 4*ps, mmu.MapFlags{})
	e.fill(e.src, 4*ps, ps)
	e.mmap(e.dst, 8*ps, mmu.MapFlags{})
	for a := e.dst; a < e.dst+8*ps; a += ps {
		if err := e.mm.Write(0, a, 0xdead); err != nil {
			t.Fatal(err)
		}
	}
	e.check()
	e.mustMremap(e.src, 4*ps, 4*ps, MayMove|Fixed, e.dst+2*ps)
	e.wantContent(e.dst+2*ps, 4*ps, ps, func(a uint64) uint64 { return a - e.dst - 2*ps + e.src })
	e.wantContent(e.dst, 2*ps, ps, func(uint64) uint64 { return 0xdead })
	e.wantContent(e.dst+6*ps, 2*ps, ps, func(uint64) uint64 { return 0xdead })
	if got := e.mm.RSS(mmu.MMAnonPages); got != 8 {
		t.Fatalf("rss %d, want 8 (4 moved, 4 of the old target left)", got)
	}
}

// TestShrinkAndMove shrinks and moves in one call: the tail goes, the
// rest moves.
func TestShrinkAndMove(t *testing.T) {
	e := newEnv(t, "x86_64")
	ps := e.ps
	e.mmap(e.src, 8*ps, mmu.MapFlags{})
	e.fill(e.src, 8*ps, ps)
	e.mustMremap(e.src, 8*ps, 3*ps, MayMove|Fixed, e.dst)
	e.wantUnmapped(e.src, 8*ps)
	e.wantContent(e.dst, 3*ps, ps, func(a uint64) uint64 { return a - e.dst + e.src })
	if got := e.mm.RSS(mmu.MMAnonPages); got != 3 {
		t.Fatalf("rss %d, want 3", got)
	}
}

// TestMultiVMA moves three VMAs with gaps between them in one fixed call
// (Linux 6.17): each moves separately and the gaps are kept.
func TestMultiVMA(t *testing.T) {
	e := newEnv(t, "x86_64")
	ps := e.ps
	e.mmap(e.src, 2*ps, mmu.MapFlags{})
	e.mmap(e.src+3*ps, 2*ps, mmu.MapFlags{File: "f"})
	e.mmap(e.src+5*ps, 3*ps, mmu.MapFlags{})
	e.fill(e.src, 2*ps, ps)
	e.fill(e.src+5*ps, 3*ps, ps)
	if _, err := e.mm.Read(0, e.src+3*ps); err != nil {
		t.Fatal(err)
	}
	e.check()
	before := e.snapshot([2]uint64{e.src, 10 * ps})
	got := e.mustMremap(e.src, 10*ps, 10*ps, MayMove|Fixed, e.dst)
	if got != e.dst {
		t.Fatalf("returned %#x", got)
	}
	e.wantUnmapped(e.src, 10*ps)
	after := e.snapshot([2]uint64{e.dst, 10 * ps})
	var starts []uint64
	for _, v := range e.mm.VMAs() {
		starts = append(starts, v.Start-e.dst)
	}
	if !reflect.DeepEqual(starts, []uint64{0, 3 * ps, 5 * ps}) {
		t.Fatalf("VMA offsets %#x, want 0, 3 pages, 5 pages", starts)
	}
	for i := range before.Pages {
		b, a := before.Pages[i], after.Pages[i]
		if b.Mapped != a.Mapped || b.PFN != a.PFN || b.Content != a.Content {
			t.Fatalf("page %d: %+v moved to %+v", i, b, a)
		}
	}
}

// TestDuplicateShared uses mremap's old_len == 0 case: a second mapping
// of the same shared pages, the first staying.
func TestDuplicateShared(t *testing.T) {
	e := newEnv(t, "x86_64")
	ps := e.ps
	e.mmap(e.src, 2*ps, mmu.MapFlags{File: "f", Shared: true})
	e.fill(e.src, 2*ps, ps)
	got := e.mustMremap(e.src, 0, 2*ps, MayMove, 0)
	if got == e.src {
		t.Fatal("duplicate at the same address")
	}
	if err := e.mm.Write(0, got, 99); err != nil {
		t.Fatal(err)
	}
	e.check()
	if v, _ := e.mm.Content(e.src); v != 99 {
		t.Fatalf("the duplicate does not share the page: %#x", v)
	}
	if len(e.mm.VMAs()) != 2 {
		t.Fatalf("VMAs %v", e.mm.VMAs())
	}
}
