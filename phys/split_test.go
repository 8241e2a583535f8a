package phys

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/internal/errno"
)

// TestSplitPage: after split_page every frame of the block is an order-0
// block with refcount 1 that frees on its own; freeing them all gives the
// memory back whole; bad heads are refused and change nothing.
func TestSplitPage(t *testing.T) {
	m, err := New(Config{Size: 64 << 20, PageShift: 12, MaxOrder: 10})
	if err != nil {
		t.Fatal(err)
	}
	free0 := m.FreeFrames()
	pfn, err := m.Alloc(9, KindKernel)
	if err != nil {
		t.Fatal(err)
	}
	m.SetContent(pfn+3, 77)
	for _, c := range []struct {
		name string
		pfn  PFN
	}{
		{"tail frame", pfn + 1},
		{"free frame", pfn + 512},
		{"beyond memory", PFN(m.Frames())},
	} {
		if err := m.SplitPage(c.pfn); !errors.Is(err, errno.EINVAL) {
			t.Errorf("%s: %v, want EINVAL", c.name, err)
		}
	}
	if m.FolioOf(pfn+5).Order != 9 {
		t.Fatal("a refused split changed the block")
	}
	if err := m.SplitPage(pfn); err != nil {
		t.Fatal(err)
	}
	if m.InUse(KindKernel) != 512 || m.FreeFrames() != free0-512 {
		t.Fatalf("split changed the accounting: in use %d, free %d", m.InUse(KindKernel), m.FreeFrames())
	}
	for i := PFN(0); i < 512; i++ {
		f := m.FolioOf(pfn + i)
		if f.Order != 0 || f.PFN != pfn+i || m.Refcount(f) != 1 || !m.IsAllocated(pfn+i) {
			t.Fatalf("frame %d: folio %+v ref %d", i, f, m.Refcount(f))
		}
	}
	if m.Content(pfn+3) != 77 {
		t.Fatal("split lost a frame's content")
	}
	// Free every other frame, then the rest: the buddies merge back.
	for _, start := range []PFN{1, 0} {
		for i := start; i < 512; i += 2 {
			if !m.Free(pfn+i, KindKernel) {
				t.Fatalf("frame %d does not free on its own", i)
			}
		}
	}
	if m.FreeFrames() != free0 || m.InUse(KindKernel) != 0 {
		t.Fatalf("free %d (want %d), in use %d", m.FreeFrames(), free0, m.InUse(KindKernel))
	}
	again, err := m.Alloc(9, KindKernel)
	if err != nil || again != pfn {
		t.Fatalf("the block did not merge back: %#x %v", again, err)
	}
	if err := m.SplitPage(again + 0); err != nil {
		t.Fatal(err)
	}
	single, _ := m.Alloc(0, KindKernel)
	if err := m.SplitPage(single); err != nil {
		t.Fatalf("order-0 split: %v", err)
	}
}
