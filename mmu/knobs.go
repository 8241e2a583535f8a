package mmu

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/ptsim/ptsim/arch"
)

// SPFMode selects how page faults synchronise with address-space writers.
type SPFMode uint8

const (
	// SPFOff: every fault takes mmap_lock for reading.
	SPFOff SPFMode = iota
	// SPFSeq: speculative faults validated by the mmap sequence count
	// (Michel Lespinasse's v2).
	SPFSeq
	// SPFVMA: per-VMA locks, as landed in Linux 6.4.
	SPFVMA
)

var spfNames = [...]string{"off", "seq", "vma"}

func (s SPFMode) String() string {
	if int(s) < len(spfNames) {
		return spfNames[s]
	}
	return fmt.Sprintf("spf(%d)", uint8(s))
}

// Knobs are the kernel behaviour switches scripts set with `config`. Their
// defaults follow what today's Linux does on the arch.
type Knobs struct {
	// MovePMD and MovePUD let mremap move whole tables (HAVE_MOVE_PMD/PUD).
	MovePMD, MovePUD bool
	// MremapLatencyLimit caps a move_ptes extent at this many pages and
	// flushes after each (before Linux 4.18: 64); 0 is today's behaviour.
	MremapLatencyLimit int
	// ForkBatch makes fork copy runs of PTEs of one folio in one step.
	ForkBatch bool
	// ContPTE enables arm64's transparent contiguous PTEs.
	ContPTE bool
	// BBML2 marks CPUs with break-before-make level 2 without conflict
	// aborts: contpte_convert skips its TLB flush.
	BBML2 bool
	// FaultWholeFolio makes finish_fault map a whole file folio.
	FaultWholeFolio bool
	// FileLargeFolios lets the page cache hold large folios.
	FileLargeFolios bool
	// HVO optimises the vmemmap of hugetlb folios; HVOBatch batches the
	// splits and flushes of many folios.
	HVO, HVOBatch bool
	// SPF selects the fault synchronisation.
	SPF SPFMode
	// SPFPTL says when munmap frees a PTE table's lock (spf_ptl; see
	// SPFPTLModel in spf_support.go).
	SPFPTL SPFPTLModel
	// THP lets a PMD-sized folio be mapped by one PMD entry.
	THP bool
	// Virt models a virtual machine: IPIs trap to the hypervisor.
	Virt bool
	// RangeTLBI gives arm64 the FEAT_TLBIRANGE range invalidations.
	RangeTLBI bool
	// FaultAroundBytes is the fault-around window of read faults on files.
	FaultAroundBytes uint64
}

// DefaultKnobs returns today's Linux defaults for a; for a nil arch, the
// defaults of one that selects none of the optional features.
func DefaultKnobs(a *arch.Arch) Knobs {
	var caps arch.Caps
	if a != nil {
		caps = a.Caps
	}
	return Knobs{
		MovePMD:          caps.HaveMovePMD,
		MovePUD:          caps.HaveMovePUD,
		ForkBatch:        true,
		ContPTE:          caps.ContPTEs > 0,
		FaultWholeFolio:  true,
		FileLargeFolios:  true,
		HVOBatch:         true,
		SPF:              SPFVMA,
		THP:              caps.THPLevels != [len(caps.THPLevels)]bool{},
		FaultAroundBytes: 64 << 10,
	}
}

// knobSetters maps each `config` key to the code that sets it.
var knobSetters = map[string]func(k *Knobs, a *arch.Arch, v string) error{
	"move_pmd": func(k *Knobs, a *arch.Arch, v string) error {
		return setCap(&k.MovePMD, v, a.Caps.HaveMovePMD, a.Name+" does not select HAVE_MOVE_PMD")
	},
	"move_pud": func(k *Knobs, a *arch.Arch, v string) error {
		return setCap(&k.MovePUD, v, a.Caps.HaveMovePUD, a.Name+" does not select HAVE_MOVE_PUD")
	},
	"mremap_latency_limit": func(k *Knobs, a *arch.Arch, v string) error {
		n, err := strconv.ParseUint(v, 0, 31)
		if err != nil {
			return fmt.Errorf("mremap_latency_limit=%s: want a number of pages", v)
		}
		k.MremapLatencyLimit = int(n)
		return nil
	},
	"fork_batch": func(k *Knobs, a *arch.Arch, v string) error { return setBool(&k.ForkBatch, v) },
	"contpte": func(k *Knobs, a *arch.Arch, v string) error {
		return setCap(&k.ContPTE, v, a.Caps.ContPTEs > 0, a.Name+" has no contiguous-PTE bit")
	},
	"bbml2": func(k *Knobs, a *arch.Arch, v string) error {
		return setCap(&k.BBML2, v, a.Caps.ContPTEs > 0, "BBML2 is an arm64 feature; "+a.Name+" has no contiguous PTEs")
	},
	"fault_whole_folio": func(k *Knobs, a *arch.Arch, v string) error { return setBool(&k.FaultWholeFolio, v) },
	"file_large_folios": func(k *Knobs, a *arch.Arch, v string) error { return setBool(&k.FileLargeFolios, v) },
	"hvo": func(k *Knobs, a *arch.Arch, v string) error {
		return setCap(&k.HVO, v, a.Caps.OptimizeVmemmap, a.Name+" does not select ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP")
	},
	"hvo_batch": func(k *Knobs, a *arch.Arch, v string) error { return setBool(&k.HVOBatch, v) },
	"spf": func(k *Knobs, a *arch.Arch, v string) error {
		for i, n := range spfNames {
			if n == v {
				k.SPF = SPFMode(i)
				return nil
			}
		}
		return fmt.Errorf("spf=%s: want off, seq or vma", v)
	},
	"thp": func(k *Knobs, a *arch.Arch, v string) error {
		switch v {
		case "never":
			k.THP = false
		case "always":
			if a.Caps.THPLevels == [len(a.Caps.THPLevels)]bool{} {
				return fmt.Errorf("thp=always: %s has no transparent huge pages", a.Name)
			}
			k.THP = true
		default:
			return fmt.Errorf("thp=%s: want never or always", v)
		}
		return nil
	},
	"virt": func(k *Knobs, a *arch.Arch, v string) error { return setBool(&k.Virt, v) },
	"range_tlbi": func(k *Knobs, a *arch.Arch, v string) error {
		return setCap(&k.RangeTLBI, v, a.Caps.ContPTEs > 0, "range TLBI is an arm64 feature")
	},
	"fault_around_bytes": func(k *Knobs, a *arch.Arch, v string) error {
		n, err := strconv.ParseUint(v, 0, 40)
		if err != nil {
			return fmt.Errorf("fault_around_bytes=%s: want a number", v)
		}
		k.FaultAroundBytes = n
		return nil
	},
}

// KnobNames returns the `config` keys, sorted.
func KnobNames() []string {
	names := make([]string, 0, len(knobSetters))
	for n := range knobSetters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownKnob is wrapped by Set for a key that names no knob.
var ErrUnknownKnob = fmt.Errorf("unknown config key")

// Set sets one knob from its script spelling (key "move_pmd", value "on").
// A key that names no knob wraps ErrUnknownKnob; a value the arch cannot
// honour is an error that says why, wrapping EINVAL.
func (k *Knobs) Set(a *arch.Arch, key, value string) error {
	if a == nil {
		return fmt.Errorf("config %s=%s: no architecture: %w", key, value, EINVAL)
	}
	set, ok := knobSetters[key]
	if !ok {
		return fmt.Errorf("config %s: %w (known: %v)", key, ErrUnknownKnob, KnobNames())
	}
	if err := set(k, a, value); err != nil {
		return fmt.Errorf("config %s=%s: %v: %w", key, value, err, EINVAL)
	}
	return nil
}

func setBool(dst *bool, v string) error {
	switch v {
	case "on":
		*dst = true
	case "off":
		*dst = false
	default:
		return fmt.Errorf("want on or off, not %q", v)
	}
	return nil
}

// setCap sets a switch that the arch must support to turn on.
func setCap(dst *bool, v string, supported bool, why string) error {
	var b bool
	if err := setBool(&b, v); err != nil {
		return err
	}
	if b && !supported {
		return fmt.Errorf("%s", why)
	}
	*dst = b
	return nil
}
