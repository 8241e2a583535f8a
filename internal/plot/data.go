package plot

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/internal/fidelity"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/mremap"
	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/vmemmap"
)

// machine builds a machine of the named arch with knobs "key=value".
func machine(archName string, cpus int, mem uint64, knobs ...string) (*mmu.Machine, error) {
	a, err := archs.ByName(archName)
	if err != nil {
		return nil, err
	}
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: mem, CPUs: cpus})
	if err != nil {
		return nil, err
	}
	for _, kv := range knobs {
		k, v, _ := strings.Cut(kv, "=")
		if err := m.SetKnob(k, v); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// MremapNS maps and writes n bytes of anonymous memory at a PUD-aligned
// address, moves them with one mremap(MREMAP_MAYMOVE|MREMAP_FIXED) to
// another PUD-aligned address, and returns the simulated time of the
// mremap alone: the workload of F1-F5 at any size.
func MremapNS(archName string, n uint64, knobs ...string) (uint64, error) {
	m, err := machine(archName, 1, n+1<<30, knobs...)
	if err != nil {
		return 0, err
	}
	a := m.Arch()
	pud := a.Geometry.Size(pgtable.PUD)
	src := max(uint64(0x7f00_0000_0000)&^(pud-1), pud)
	if top := a.User.End; src+4*max(pud, n) > top {
		src = pud
	}
	dst := src + 2*max(pud, n)
	dst = (dst + pud - 1) &^ (pud - 1)
	mm, err := m.NewMM("bench")
	if err != nil {
		return 0, err
	}
	if err := mm.Mmap(src, n, mmu.ProtRead|mmu.ProtWrite, mmu.MapFlags{Populate: true}); err != nil {
		return 0, err
	}
	if err := mm.Write(0, src, 1); err != nil {
		return 0, err
	}
	m.Reset()
	if _, err := mremap.Mremap(mm, src, n, n, mremap.MayMove|mremap.Fixed, dst); err != nil {
		return 0, err
	}
	return m.SimNS(), nil
}

// mremapPaths are the three ways of moving, as config switches.
var mremapPaths = []struct {
	name  string
	knobs []string
}{
	{"per PTE", []string{"move_pmd=off", "move_pud=off"}},
	{"PMD moves", []string{"move_pud=off"}},
	{"PUD moves", nil},
}

// mremapFigure plots mremap's simulated time against the region size on
// every arch, for each path the arch has.
func mremapFigure() (*Figure, error) {
	f := &Figure{Name: "mremap", Title: "mremap of written memory: simulated time by path",
		XLabel: "region size", YLabel: "simulated time of the mremap (us)", LogX: true, LogY: true,
		Caption: "Per-PTE moves grow with the region; a PMD move costs one entry and one flush per 2 MiB; " +
			"a PUD move carries a whole 1 GiB in one entry, so that line drops at 1 GiB. Arches without " +
			"HAVE_MOVE_PMD (s390x, sparc64, um) only have the per-PTE path."}
	var unpriced []string
	sizes := []uint64{2 << 20, 8 << 20, 32 << 20, 128 << 20, 512 << 20, 1 << 30}
	f.XTicks = sizeTicks(sizes, 1<<20)
	type line struct {
		arch  string
		path  int
		style int
	}
	lines := []line{{"x86_64", 0, 0}, {"x86_64", 1, 0}, {"x86_64", 2, 0}, {"arm64", 0, 1}, {"arm64", 1, 1}, {"arm64", 2, 1},
		{"s390x", 0, 2}, {"sparc64", 0, 3}, {"um", 0, 4}}
	for _, l := range lines {
		p := mremapPaths[l.path]
		s := Series{Name: l.arch + ", " + p.name, Style: l.style, Dash: l.path}
		for _, n := range sizes {
			knobs := p.knobs
			if l.path == 0 && l.arch != "x86_64" && l.arch != "arm64" {
				knobs = nil // the only path there
			}
			ns, err := MremapNS(l.arch, n, knobs...)
			if err != nil {
				return nil, fmt.Errorf("%s %s %d: %w", l.arch, p.name, n, err)
			}
			s.X = append(s.X, float64(n)/(1<<20))
			s.Y = append(s.Y, float64(ns)/1e3)
		}
		if slices.Contains(s.Y, 0) {
			// The arch's cost table prices none of this work yet.
			unpriced = append(unpriced, l.arch)
			continue
		}
		f.Lines = append(f.Lines, s)
	}
	if len(unpriced) > 0 {
		f.Caption += " Not drawn, because their cost tables price none of this work yet: " + strings.Join(unpriced, ", ") + "."
	}
	return f, nil
}

// forkFigure plots the simulated time of a 1 GiB fork against the folio
// size, batched and not, on x86_64 (F6) and arm64 with contpte.
func forkFigure() (*Figure, error) {
	f := &Figure{Name: "fork", Title: "fork of 1 GiB of PTE-mapped folios: simulated time",
		XLabel: "folio size", YLabel: "simulated time of the fork (ms)", LogX: true, LogY: true,
		Caption: "Without batching fork copies one PTE at a time whatever the folio size; with batching " +
			"(Linux 6.9) a run of PTEs of one folio is one step: one refcount add, one rmap dup, one " +
			"write-protect. On arm64 the unbatched write-protect also unfolds every contiguous block."}
	sizes := []uint64{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 2 << 20}
	f.XTicks = sizeTicks(sizes, 1<<10)
	for i, run := range []struct {
		arch, batch string
		style, dash int
	}{{"x86_64", "on", 0, 0}, {"x86_64", "off", 0, 1}, {"arm64", "on", 1, 0}, {"arm64", "off", 1, 1}} {
		s := Series{Name: fmt.Sprintf("%s, fork_batch=%s", run.arch, run.batch), Style: run.style, Dash: run.dash}
		for _, sz := range sizes {
			r, err := fidelity.RunFork1GiB(run.arch, sz, "thp=never", "fork_batch="+run.batch)
			if err != nil {
				return nil, fmt.Errorf("run %d size %d: %w", i, sz, err)
			}
			s.X = append(s.X, float64(sz)/1024)
			s.Y = append(s.Y, float64(r.NS)/1e6)
		}
		f.Lines = append(f.Lines, s)
	}
	return f, nil
}

// pf3Figure draws F8: page_fault3's throughput relative to large folios
// off, ptsim beside the published figures, with the target bands.
func pf3Figure() (*Figure, error) {
	var e *fidelity.Experiment
	for _, x := range fidelity.All() {
		if x.ID == "F8" {
			e = &x
		}
	}
	if e == nil {
		return nil, fmt.Errorf("no experiment F8")
	}
	res, err := e.Run()
	if err != nil {
		return nil, err
	}
	f := &Figure{Name: "page-fault3", Title: "arm64 page_fault3 (128 CPUs): throughput / large folios off",
		YLabel: "throughput relative to large folios off",
		Caption: "Write faults into 64K file folios one page at a time: with contpte every 16th fault " +
			"folds its block (a contpte_convert: 16 TLBIs broadcast to 127 busy CPUs); mapping the whole " +
			"folio in finish_fault sets the contiguous bit directly. Bars are F8 of `ptsim demo`; the " +
			"whiskers are the target bands."}
	f.Bars = append(f.Bars, Bar{Label: "large folios off", Value: 1, Published: 1, Lo: 1, Hi: 1})
	for _, m := range res.Measures {
		label, _, _ := strings.Cut(m.Name, " / ")
		f.Bars = append(f.Bars, Bar{Label: label, Value: m.Value, Published: publishedValue(m.Published), Lo: m.Band.Lo, Hi: m.Band.Hi})
	}
	return f, nil
}

// publishedValue reads the number after the last "= " of a published
// figure ("16164943 / 92378735 = 0.175"), or NaN.
func publishedValue(s string) float64 {
	i := strings.LastIndex(s, "= ")
	if i < 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(strings.TrimRight(strings.Fields(s[i+2:])[0], "x%"), 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// HVONS allocates n 2 MiB hugetlb folios in one batch on an x86_64
// machine with the given CPUs (virt: IPIs trap) and returns the
// simulated time, for hvo and hvoBatch "on" or "off".
func HVONS(cpus int, virt bool, n int, hvo, hvoBatch string) (uint64, error) {
	m, err := machine("x86_64", cpus, uint64(n)*(2<<20)+1<<30, "hvo="+hvo, "hvo_batch="+hvoBatch, "virt="+onOff(virt))
	if err != nil {
		return 0, err
	}
	p, err := vmemmap.Of(m).Pool(2 << 20)
	if err != nil {
		return 0, err
	}
	m.Reset()
	if got, err := p.Alloc(n); err != nil || got != n {
		return 0, fmt.Errorf("alloc %d of %d: %v", got, n, err)
	}
	return m.SimNS(), nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// hvoFigure plots the hugetlb allocation's simulated time against the
// number of 2 MiB folios, HVO off, unbatched and batched, on the two
// platforms of F10 and F11.
func hvoFigure() (*Figure, error) {
	f := &Figure{Name: "hvo", Title: "hugetlb alloc of N 2 MiB folios (x86_64): simulated time",
		XLabel: "folios allocated in one batch (N)", YLabel: "simulated time (ms)", LogX: true, LogY: true,
		Caption: "Unbatched HVO flushes the kernel TLB once or twice per folio, each an IPI to every CPU " +
			"(trapping in a VM); batched HVO (Linux 6.7) splits every vmemmap PMD first and flushes twice " +
			"per batch, so its line runs parallel to HVO off."}
	counts := []int{16, 64, 256, 1024, 4096}
	for _, n := range counts {
		f.XTicks = append(f.XTicks, Tick{Value: float64(n), Label: strconv.Itoa(n)})
	}
	flows := []struct {
		name, hvo, batch string
		dash             int
	}{{"HVO off", "off", "off", 2}, {"HVO unbatched", "on", "off", 1}, {"HVO batched", "on", "on", 0}}
	for pi, plat := range []struct {
		name string
		cpus int
		virt bool
	}{{"bare metal, 288 CPUs", 288, false}, {"VM, 252 vCPUs", 252, true}} {
		for _, fl := range flows {
			s := Series{Name: fl.name + ", " + plat.name, Style: pi, Dash: fl.dash}
			for _, n := range counts {
				ns, err := HVONS(plat.cpus, plat.virt, n, fl.hvo, fl.batch)
				if err != nil {
					return nil, fmt.Errorf("%s %s N=%d: %w", plat.name, fl.name, n, err)
				}
				s.X = append(s.X, float64(n))
				s.Y = append(s.Y, float64(ns)/1e6)
			}
			f.Lines = append(f.Lines, s)
		}
	}
	return f, nil
}

// sizeTicks labels each size, plotted in units of unit bytes, as scripts
// spell sizes (4K, 2M, 1G).
func sizeTicks(sizes []uint64, unit uint64) []Tick {
	var ts []Tick
	for _, n := range sizes {
		label := ""
		for _, u := range []struct {
			s string
			b uint64
		}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
			if n >= u.b && n%u.b == 0 {
				label = strconv.FormatUint(n/u.b, 10) + u.s
				break
			}
		}
		ts = append(ts, Tick{Value: float64(n) / float64(unit), Label: label})
	}
	return ts
}
