package spf

import (
	"fmt"
	"testing"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/mmu"
)

// TestBatchSizes checks zone_batchsize and calculate_normal_threshold
// against values worked out from Linux's formulas.
func TestBatchSizes(t *testing.T) {
	batch := []struct {
		pages, pageSize uint64
		want            int
	}{
		{1 << 18, 4096, 63},  // 1 GiB: 256 -> 64 -> rounddown(96) - 1
		{1 << 22, 4096, 63},  // 16 GiB: capped at 1 MiB of pages
		{1 << 15, 4096, 7},   // 128 MiB: 32 -> 8 -> rounddown(12) - 1
		{2048, 4096, 1},      // 8 MiB: 2 -> 0 -> 1 -> 0, at least 1
		{1 << 17, 8192, 31},  // 1 GiB of 8 KiB pages: 128 -> 32 -> 31
		{1 << 16, 65536, 3},  // 4 GiB of 64 KiB pages: capped at 16 -> 4 -> 3
		{1 << 20, 16384, 15}, // 16 GiB of 16 KiB pages: capped at 64 -> 16 -> 15
	}
	for _, c := range batch {
		if got := zoneBatchSize(c.pages, c.pageSize); got != c.want {
			t.Errorf("zoneBatchSize(%d pages of %d) = %d, want %d", c.pages, c.pageSize, got, c.want)
		}
	}
	thr := []struct {
		cpus  int
		pages uint64
		want  int64
	}{
		{33, 1 << 18, 60},    // 2 fls(33)=12 x (1 + fls(8)=4)
		{17, 1 << 18, 50},    // 2 x 5 x 5
		{112, 96 << 18, 125}, // 2 x 7 x (1 + fls(768)=10) = 154, capped
		{1, 2048, 2},         // 2 x 1 x (1 + fls(0))
	}
	for _, c := range thr {
		if got := statThreshold(c.cpus, c.pages, 12); got != c.want {
			t.Errorf("statThreshold(%d cpus, %d pages) = %d, want %d", c.cpus, c.pages, got, c.want)
		}
	}
}

// TestSharedBatchesCounted: a one-thread pft of n pages does, on every
// fault path, what Linux's batching gives for n anonymous write faults:
// a pcp refill (63 buddy pages under zone->lock) per 63 allocations, an
// LRU flush under lru_lock per 15 pages, a memcg charge of every page
// counter level per 32 pages, and an RSS sync per 66 faults (events++ >
// TASK_RSS_EVENTS_THRESH).
func TestSharedBatchesCounted(t *testing.T) {
	const n = 700
	for _, mode := range []mmu.SPFMode{mmu.SPFOff, mmu.SPFSeq, mmu.SPFVMA} {
		t.Run(mode.String(), func(t *testing.T) {
			a, err := archs.ByName("x86_64")
			if err != nil {
				t.Fatal(err)
			}
			m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 1 << 30, CPUs: 1})
			if err != nil {
				t.Fatal(err)
			}
			mm, err := m.NewMM("pft")
			if err != nil {
				t.Fatal(err)
			}
			const base = 0x7f00_0000_0000
			if err := mm.Mmap(base, n*4096, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{}); err != nil {
				t.Fatal(err)
			}
			before := m.Counts()
			r, err := PFT(mm, PFTConfig{Threads: 1, Addr: base, Len: n * 4096}, Options{Mode: mode, Seed: 1, CheckEachStep: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Check(); err != nil {
				t.Fatal(err)
			}
			if r.Faults != n {
				t.Fatalf("%d faults, want %d", r.Faults, n)
			}
			after := m.Counts()
			d := after.Sub(&before)
			refills := uint64((n + 62) / 63)
			want := map[cost.Event]uint64{
				cost.PCPRefills:         refills,
				cost.BuddyPages:         63 * refills,
				cost.LRUAddBatches:      n / 15,
				cost.LRUAddPages:        15 * (n / 15),
				cost.PageCounterCharges: memcgDepth * ((n + 31) / 32),
			}
			for ev, w := range want {
				if d[ev] != w {
					t.Errorf("%s = %d, want %d", ev, d[ev], w)
				}
			}
			// The folds: RSS syncs (one per 66 faults: events++ > 64),
			// and the statistics; at least the RSS syncs.
			if syncs := uint64(n / 66); d[cost.PercpuFolds] < syncs {
				t.Errorf("percpu_folds = %d, want at least the %d RSS syncs", d[cost.PercpuFolds], syncs)
			}
		})
	}
}

// TestMapFaultLayout: mmap(NULL) areas lie next to each other; unguarded
// ones merge into one VMA whatever thread mapped them, guarded ones stay
// apart; every page written holds its address, on every path.
func TestMapFaultLayout(t *testing.T) {
	for _, mode := range []mmu.SPFMode{mmu.SPFOff, mmu.SPFSeq, mmu.SPFVMA} {
		for _, guard := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/guard=%v", mode, guard), func(t *testing.T) {
				a, err := archs.ByName("x86_64")
				if err != nil {
					t.Fatal(err)
				}
				m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 64 << 20, CPUs: 3})
				if err != nil {
					t.Fatal(err)
				}
				mm, err := m.NewMM("app")
				if err != nil {
					t.Fatal(err)
				}
				areas := []MapFaultArea{{Pages: 2, Guard: guard}, {Pages: 3, Guard: guard}}
				r, err := MapFault(mm, MapFaultConfig{Threads: 3, Areas: areas}, Options{Mode: mode, Seed: 2, CheckEachStep: true})
				if err != nil {
					t.Fatal(err)
				}
				if r.Faults != 3*5 || r.ElapsedPS == 0 {
					t.Fatalf("%d faults in %d ps", r.Faults, r.ElapsedPS)
				}
				var rw, none int
				for _, v := range mm.VMAs() {
					if v.Flags&mmu.VMWrite != 0 {
						rw++
						for p := v.Start; p < v.End; p += 4096 {
							if got, ok := mm.Content(p); !ok || got != p {
								t.Errorf("page %#x holds %#x, %v", p, got, ok)
							}
						}
					} else {
						none++
					}
				}
				wantRW, wantNone := 1, 0
				if guard {
					wantRW, wantNone = 6, 6
				}
				if rw != wantRW || none != wantNone {
					t.Errorf("%d read-write and %d guard VMAs, want %d and %d: %v", rw, none, wantRW, wantNone, mm.VMAs())
				}
			})
		}
	}
}
