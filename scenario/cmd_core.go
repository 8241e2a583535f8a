package scenario

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ptsim/ptsim/arch"
	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/internal/errno"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/phys"
)

// coreCommands are the commands for what the machine itself offers; the
// features add theirs in cmd_<feature>.go.
func coreCommands() []Command {
	return []Command{
		{
			Name: "arch", Usage: "arch NAME [key=value...]",
			Summary:    "choose the architecture (first line, or x86_64); options are config switches applied at boot",
			Args:       []Arg{{Name: "NAME", Kind: KindChoice, Choices: archs.Names()}},
			AnyOptions: true, Check: checkKnobOptions(false), Run: runArch,
		},
		{
			Name: "config", Usage: "config key=value...",
			Summary:    "set kernel switches (" + strings.Join(mmu.KnobNames(), ", ") + ")",
			AnyOptions: true, Check: checkKnobOptions(true), Run: runConfig,
		},
		{
			Name: "cpus", Usage: "cpus N", Summary: "number of simulated CPUs, each with its own TLB (default 1)",
			Args: []Arg{{Name: "N", Kind: KindNum}}, Run: runCPUs,
		},
		{
			Name: "seed", Usage: "seed N", Summary: "seed of every random choice (default 1)",
			Args: []Arg{{Name: "N", Kind: KindValue}}, Run: runSeed,
		},
		{
			Name: "memory", Usage: "memory SIZE", Summary: "simulated physical memory (default 64G), before the first mmap",
			Args: []Arg{{Name: "SIZE", Kind: KindSize}}, Run: runMemory,
		},
		{
			Name: "mm", Usage: "mm NAME", Summary: "create an empty address space and make it current",
			Args: []Arg{{Name: "NAME", Kind: KindWord}}, Run: runMM,
		},
		{
			Name: "use", Usage: "use NAME", Summary: "make an existing address space current",
			Args: []Arg{{Name: "NAME", Kind: KindWord}}, Run: runUse,
		},
		{
			Name: "mmap", Usage: "mmap ADDR LEN [PROT] [anon|file=NAME] [private|shared] [populate] [folio=SIZE] [offset=N]",
			Summary: "map a region exactly at ADDR (MAP_FIXED_NOREPLACE); PROT none|r|rw|rx|rwx, default rw",
			Args: []Arg{{Name: "ADDR", Kind: KindAddr}, {Name: "LEN", Kind: KindSize},
				{Name: "PROT", Kind: KindProt, Optional: true}},
			Opts: []Opt{{Name: "anon", Kind: KindFlag}, {Name: "file", Kind: KindWord},
				{Name: "private", Kind: KindFlag}, {Name: "shared", Kind: KindFlag},
				{Name: "populate", Kind: KindFlag}, {Name: "folio", Kind: KindSize},
				{Name: "offset", Kind: KindAddr}},
			Check: checkMmap, Run: runMmap,
		},
		{
			Name: "munmap", Usage: "munmap ADDR LEN", Summary: "unmap a range",
			Args: rangeArgs(), Run: runMunmap,
		},
		{
			Name: "mprotect", Usage: "mprotect ADDR LEN PROT", Summary: "change the protection of a range",
			Args: append(rangeArgs(), Arg{Name: "PROT", Kind: KindProt}), Run: runMprotect,
		},
		{
			Name: "read", Usage: "read ADDR [LEN] [cpu=N]",
			Summary: "read every page of the range through the MMU (TLB, walk, faults), ascending",
			Args:    []Arg{{Name: "ADDR", Kind: KindAddr}, {Name: "LEN", Kind: KindSize, Optional: true}},
			Opts:    []Opt{{Name: "cpu", Kind: KindNum}}, Run: runRead,
		},
		{
			Name: "write", Usage: "write ADDR [LEN] [cpu=N] [val=V]",
			Summary: "write every page of the range, ascending; default value: the page's virtual address",
			Args:    []Arg{{Name: "ADDR", Kind: KindAddr}, {Name: "LEN", Kind: KindSize, Optional: true}},
			Opts:    []Opt{{Name: "cpu", Kind: KindNum}, {Name: "val", Kind: KindValue}}, Run: runWrite,
		},
		{
			Name: "check", Usage: "check ADDR LEN [val=V]",
			Summary: "verify every page's content: V, or what was last written there (following mremap and fork)",
			Args:    rangeArgs(), Opts: []Opt{{Name: "val", Kind: KindValue}}, Run: runCheck,
		},
		{
			Name: "pin", Usage: "pin ADDR LEN", Summary: "take a long-term pin (FOLL_PIN) on every page, all or nothing",
			Args: rangeArgs(), Run: runPin,
		},
		{
			Name: "unpin", Usage: "unpin ADDR LEN", Summary: "drop one pin from every page",
			Args: rangeArgs(), Run: runUnpin,
		},
		{
			Name: "expect", Usage: "expect NAME OP VALUE",
			Summary: "compare a counter with a value; OP is == != < <= > >=",
			Args: []Arg{{Name: "NAME", Kind: KindCounter}, {Name: "OP", Kind: KindChoice, Choices: ops},
				{Name: "VALUE", Kind: KindValue}},
			NoErrno: true, Run: runExpect,
		},
		{
			Name: "expect-error", Usage: "expect-error NAME",
			Summary: "the previous command must have failed with this error (EINVAL, ENOMEM, EFAULT...)",
			Args:    []Arg{{Name: "NAME", Kind: KindErrno}}, NoBang: true, Run: runExpectError,
		},
		{
			Name: "stats", Usage: "stats [NAME...]",
			Summary: "print counters as `name value` lines, sorted by name (all of them without names)",
			Args:    []Arg{{Name: "NAME", Kind: KindCounter, Optional: true, Many: true}}, Run: runStats,
		},
		{
			Name: "reset", Usage: "reset", Summary: "zero every event counter (state and rss_*, vmas stay)",
			Run: runReset,
		},
		{
			Name: "dump", Usage: "dump [ADDR LEN] [format=tree|dot|mermaid]",
			Summary: "print the current address space's page tables",
			Args:    []Arg{{Name: "ADDR", Kind: KindAddr, Optional: true}, {Name: "LEN", Kind: KindSize, Optional: true}},
			Opts:    []Opt{{Name: "format", Kind: KindChoice, Choices: []string{"tree", "dot", "mermaid"}}},
			Check: func(c *Call) error {
				if c.Has("ADDR") != c.Has("LEN") {
					return errors.New("give both ADDR and LEN, or neither")
				}
				return nil
			},
			Run: runDump,
		},
		{
			Name: "walk", Usage: "walk ADDR",
			Summary: "print the page walk of one address, level by level, and the physical address",
			Args:    []Arg{{Name: "ADDR", Kind: KindAddr}}, Run: runWalk,
		},
		{
			Name: "trace", Usage: "trace on|off", Summary: "print each primitive step as it happens",
			Args: []Arg{{Name: "MODE", Kind: KindChoice, Choices: []string{"on", "off"}}}, Run: runTrace,
		},
		{
			Name: "vmas", Usage: "vmas", Summary: "print the current address space's VMAs",
			Run: runVMAs,
		},
		{
			Name: "audit", Usage: "audit",
			Summary: "check the machine's invariants (tables, TLBs, refcounts, mapcounts, RSS, leaks)",
			Run:     runAudit,
		},
	}
}

// ops are expect's comparisons.
var ops = []string{"==", "!=", "<", "<=", ">", ">="}

func rangeArgs() []Arg {
	return []Arg{{Name: "ADDR", Kind: KindAddr}, {Name: "LEN", Kind: KindSize}}
}

// allArchs holds one descriptor of every architecture, for checking
// config values when the script is parsed (read-only after building).
var allArchs = sync.OnceValue(func() []*arch.Arch {
	var as []*arch.Arch
	for _, n := range archs.Names() {
		if a, err := archs.ByName(n); err == nil {
			as = append(as, a)
		}
	}
	return as
})

// checkKnobOptions validates config switches when the script is parsed:
// an unknown key, or a value no architecture accepts (move_pmd=maybe,
// spf=fast), makes the script malformed. A value that is valid but that
// the chosen architecture cannot honour (move_pmd=on on s390x) is a
// run-time error (EINVAL), which a `!` line may expect.
func checkKnobOptions(need bool) func(c *Call) error {
	return func(c *Call) error {
		kvs := c.Options()
		if need && len(kvs) == 0 {
			return fmt.Errorf("missing key=value (ptsim help lists the keys)")
		}
		for _, kv := range kvs {
			if err := checkKnob(kv.Key, kv.Value); err != nil {
				return err
			}
		}
		return nil
	}
}

// knobValue returns a config value as the knobs read it: a value that
// starts with a digit is a number as scripts write them (decimal or
// 0x-hex, with an optional K, M, G or T suffix; a leading zero is not
// octal), handed on in decimal; any other value is a word (on, seq...).
func knobValue(val string) (string, error) {
	if val == "" || val[0] < '0' || val[0] > '9' {
		return val, nil
	}
	n, err := ParseNumber(val)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(n, 10), nil
}

func checkKnob(key, raw string) error {
	known := mmu.KnobNames()
	if i := sort.SearchStrings(known, key); i == len(known) || known[i] != key {
		return fmt.Errorf("unknown option %q (ptsim help lists the keys)", clip(key))
	}
	val, err := knobValue(raw)
	if err != nil {
		return fmt.Errorf("bad value %s=%s: %v", clip(key), clip(raw), err)
	}
	var first error
	for _, a := range allArchs() {
		k := mmu.DefaultKnobs(a)
		err := k.Set(a, key, val)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	msg := strings.TrimPrefix(first.Error(), "config "+key+"="+val+": ")
	msg = strings.TrimPrefix(msg, key+"="+val+": ")
	msg = strings.TrimSuffix(msg, ": "+mmu.EINVAL.Error())
	return fmt.Errorf("bad value %s=%s: %s", clip(key), clip(raw), msg)
}

// applyKnobs applies key=value switches all or nothing: on the machine if
// it exists, else on the switches it will boot with.
func (e *Env) applyKnobs(kvs []KeyValue) error {
	a, err := e.Arch()
	if err != nil {
		return err
	}
	var k mmu.Knobs
	switch {
	case e.m != nil:
		k = e.m.Knobs()
	case e.knobs != nil:
		k = *e.knobs
	default:
		k = mmu.DefaultKnobs(a)
	}
	vals := make([]string, len(kvs))
	for i, kv := range kvs {
		v, err := knobValue(kv.Value)
		if err != nil {
			return fmt.Errorf("config %s=%s: %v: %w", kv.Key, kv.Value, err, mmu.EINVAL)
		}
		if err := k.Set(a, kv.Key, v); err != nil {
			return err
		}
		vals[i] = v
	}
	if e.m == nil {
		e.knobs = &k
		return nil
	}
	for i, kv := range kvs {
		if err := e.m.SetKnob(kv.Key, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func runArch(e *Env, c *Call) error {
	if e.m != nil {
		return fmt.Errorf("arch after the machine was built: %w", mmu.EINVAL)
	}
	// All or nothing: a switch the arch cannot honour leaves the
	// architecture as it was.
	oldName, oldArch, oldKnobs := e.archName, e.a, e.knobs
	e.archName, e.a, e.knobs = c.Word("NAME"), nil, nil
	if err := e.applyKnobs(c.Options()); err != nil {
		e.archName, e.a, e.knobs = oldName, oldArch, oldKnobs
		return err
	}
	return nil
}

func runConfig(e *Env, c *Call) error { return e.applyKnobs(c.Options()) }

func runCPUs(e *Env, c *Call) error {
	n := c.Num("N")
	if n < 1 || n > mmu.MaxCPUs {
		return fmt.Errorf("cpus %d: want 1..%d: %w", n, mmu.MaxCPUs, mmu.EINVAL)
	}
	if e.m == nil {
		e.cpus = int(n)
		return nil
	}
	return e.m.SetCPUs(int(n), 0, 0)
}

func runSeed(e *Env, c *Call) error {
	n := c.Num("N")
	if n == 0 {
		n = 1 // as mmu.New takes a zero seed
	}
	e.seed = n
	if e.m != nil {
		e.m.SetSeed(n)
	}
	return nil
}

func runMemory(e *Env, c *Call) error {
	size := c.Num("SIZE")
	if l := e.opt.limits.memory; l != 0 && size > l {
		return fmt.Errorf("memory %#x above the run's cap %#x: %w", size, l, mmu.EINVAL)
	}
	if size == 0 {
		return fmt.Errorf("memory 0: %w", mmu.EINVAL)
	}
	if e.m == nil {
		// Build the machine now, so that a size it cannot have fails
		// here rather than at the next command.
		old := e.memory
		e.memory = size
		if _, err := e.Machine(); err != nil {
			e.memory = old
			return err
		}
		return nil
	}
	// The machine exists (mm, stats or config made it): rebuild it with
	// the new size if nothing has been allocated yet.
	m := e.m
	for _, mm := range m.MMs() {
		if len(mm.VMAs()) > 0 {
			return fmt.Errorf("memory after address space %s has mappings: %w", mm.Name(), mmu.EBUSY)
		}
	}
	// Only the root tables of empty address spaces may have been
	// allocated since the machine was built.
	empty := e.baseline
	for _, mm := range m.MMs() {
		empty += uint64(mm.PageTable().Tables())
	}
	if used := m.Memory().Frames() - m.Memory().FreeFrames(); used != empty {
		return fmt.Errorf("memory after memory was allocated (%d frames in use): %w", used, mmu.EBUSY)
	}
	knobs := m.Knobs()
	old, names, cur := e.memory, e.mmNames, ""
	if e.cur != nil {
		cur = e.cur.Name()
	}
	e.memory, e.knobs, e.m, e.cur, e.mmNames = size, &knobs, nil, nil, nil
	e.cpus, e.seed = m.CPUs(), m.Seed()
	if _, err := e.Machine(); err != nil {
		e.memory, e.m, e.mmNames = old, m, names
		return err
	}
	for _, n := range names {
		mm, err := e.NewMM(n)
		if err != nil {
			return err
		}
		if n == cur {
			e.cur = mm
		}
	}
	return nil
}

func runMM(e *Env, c *Call) error {
	mm, err := e.NewMM(c.Word("NAME"))
	if err != nil {
		return err
	}
	e.SetCurrent(mm)
	return nil
}

func runUse(e *Env, c *Call) error {
	mm, err := e.LookupMM(c.Word("NAME"))
	if err != nil {
		return err
	}
	e.SetCurrent(mm)
	return nil
}

func checkMmap(c *Call) error {
	switch {
	case c.Has("anon") && c.Has("file"):
		return errors.New("anon and file= exclude each other")
	case c.Has("private") && c.Has("shared"):
		return errors.New("private and shared exclude each other")
	case c.Has("offset") && !c.Has("file"):
		return errors.New("offset= needs file=")
	}
	return nil
}

func runMmap(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	addr, length := c.Num("ADDR"), c.Num("LEN")
	prot := c.Prot("PROT", mmu.ProtRead|mmu.ProtWrite)
	fl := mmu.MapFlags{File: c.Word("file"), Offset: c.Num("offset"), Shared: c.Has("shared"),
		Populate: c.Has("populate"), FolioSize: c.Num("folio")}
	if err := mm.Mmap(addr, length, prot, fl); err != nil {
		return err
	}
	e.oracle.Unmap(mm, addr, length)
	if fl.Populate && !fl.Shared && prot&mmu.ProtWrite != 0 && fl.File != "" {
		privateCopies(e.oracle, mm, addr, length)
	}
	return nil
}

// privateCopies tells the oracle which pages of a private writable file
// mapping MAP_POPULATE copied (it write-faults every page): the pages now
// mapped by anonymous folios. Populate is best effort, as in Linux: out
// of memory, it stops and mmap still succeeds, and the pages it did not
// reach keep following the file.
func privateCopies(o *Oracle, mm *mmu.MM, addr, length uint64) {
	ps := mm.Machine().Arch().PageSize()
	mem := mm.Machine().Memory()
	start, end := addr, addr+alignUp(length, ps)
	for va := addr; va <= end; va += ps {
		copied := false
		if va < end {
			if tr, ok := mm.Translate(va); ok {
				copied = mem.Test(mm.Folio(tr.PFN), phys.FlagAnon)
			}
		}
		if !copied {
			if va > start {
				o.CopyOnWrite(mm, start, va-start)
			}
			start = va + ps
		}
		if va == end {
			break
		}
	}
}

func runMunmap(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	addr, length := c.Num("ADDR"), c.Num("LEN")
	if err := mm.Munmap(addr, length); err != nil {
		return err
	}
	e.oracle.Unmap(mm, addr, length)
	return nil
}

func runMprotect(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	return mm.Mprotect(c.Num("ADDR"), c.Num("LEN"), c.Prot("PROT", 0))
}

// pageRange returns the first page address and the number of pages of
// [addr, addr+length) (length 0 means one page when optional is set).
func pageRange(mm *mmu.MM, op string, addr, length uint64) (uint64, uint64, error) {
	ps := mm.Machine().Arch().PageSize()
	if length == 0 {
		return 0, 0, fmt.Errorf("%s %#x: length 0: %w", op, addr, mmu.EINVAL)
	}
	end := addr + length
	if end < addr || end+ps-1 < end {
		return 0, 0, fmt.Errorf("%s %#x+%#x: wraps around: %w", op, addr, length, mmu.EINVAL)
	}
	first := addr &^ (ps - 1)
	last := (end + ps - 1) &^ (ps - 1)
	return first, (last - first) / ps, nil
}

func runRead(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	ps := mm.Machine().Arch().PageSize()
	addr := c.Num("ADDR")
	first, n, err := pageRange(mm, "read", addr, c.NumOr("LEN", ps))
	if err != nil {
		return err
	}
	cpu := int(min(c.Num("cpu"), mmu.MaxCPUs+1))
	for i := uint64(0); i < n; i++ {
		if _, err := mm.Read(cpu, first+i*ps); err != nil {
			return err
		}
	}
	return nil
}

func runWrite(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	ps := mm.Machine().Arch().PageSize()
	addr := c.Num("ADDR")
	first, n, err := pageRange(mm, "write", addr, c.NumOr("LEN", ps))
	if err != nil {
		return err
	}
	cpu := int(min(c.Num("cpu"), mmu.MaxCPUs+1))
	explicit, val := c.Has("val"), c.Num("val")
	done := uint64(0)
	for ; done < n; done++ {
		va := first + done*ps
		v := val
		if !explicit {
			v = DefaultValue(mm, va)
		}
		if err = mm.Write(cpu, va, v); err != nil {
			break
		}
	}
	// Record what was written, the pages before a failure included.
	if done > 0 {
		if explicit {
			e.oracle.Write(mm, first, done*ps, val)
		} else {
			e.oracle.WriteDefault(mm, first, done*ps)
		}
	}
	return err
}

func runCheck(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	ps := mm.Machine().Arch().PageSize()
	first, n, err := pageRange(mm, "check", c.Num("ADDR"), c.Num("LEN"))
	if err != nil {
		return err
	}
	explicit, val := c.Has("val"), c.Num("val")
	var bad uint64
	var mism *Mismatch
	for i := uint64(0); i < n; i++ {
		va := first + i*ps
		got, mapped := mm.Content(va)
		want := val
		if !explicit {
			want, _ = e.oracle.Expected(mm, va)
		}
		switch {
		case !mapped:
			// No VMA: a check of an unmapped page fails (there is
			// nothing to read), even where the oracle agrees nothing is
			// there. The pages up to the next VMA are missing too: count
			// them at once, so a check across a huge hole ends soon.
			skip := n - i
			if _, next := mm.Neighbours(va, va+ps); next != nil && next.Start > va {
				skip = min(skip, (next.Start-va)/ps)
			}
			bad += skip
			i += skip - 1
			if mism == nil {
				mism = &Mismatch{Expected: fmt.Sprintf("page %#x = %#x", va, want), Found: fmt.Sprintf("page %#x not mapped", va)}
			}
		case got != want:
			bad++
			if mism == nil {
				mism = &Mismatch{Expected: fmt.Sprintf("page %#x = %#x", va, want), Found: fmt.Sprintf("%#x", got)}
			}
		}
	}
	if mism != nil {
		if bad > 1 {
			mism.Found += fmt.Sprintf(" (%d of %d pages differ)", bad, n)
		}
		return mism
	}
	return nil
}

// runPin pins the range all or nothing, as the callers of
// pin_user_pages that a script stands for do (io_uring's buffer
// registration, VFIO): a short pin releases the pins it took, so a
// failed `pin` leaves no pin behind (the pages it faulted in stay, as in
// Linux). A range that is malformed as a whole fails before any page.
func runPin(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	addr, length := c.Num("ADDR"), c.Num("LEN")
	a := mm.Machine().Arch()
	ps := a.PageSize()
	size := alignUp(length, ps)
	if addr&(ps-1) != 0 || length == 0 || size < length || !a.User.Contains(addr, size) {
		return mm.Pin(addr, length) // fails, changing nothing
	}
	for off := uint64(0); off < size; off += ps {
		if err := mm.Pin(addr+off, ps); err != nil {
			if off > 0 {
				if uerr := mm.Unpin(addr, off); uerr != nil {
					return fmt.Errorf("%w (releasing the pins taken: %v)", err, uerr)
				}
			}
			return err
		}
	}
	return nil
}

func runUnpin(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	return mm.Unpin(c.Num("ADDR"), c.Num("LEN"))
}

func runExpect(e *Env, c *Call) error {
	name, op, want := c.Word("NAME"), c.Word("OP"), c.Num("VALUE")
	got, err := e.Counter(name)
	if err != nil {
		return err
	}
	var ok bool
	switch op {
	case "==":
		ok = got == want
	case "!=":
		ok = got != want
	case "<":
		ok = got < want
	case "<=":
		ok = got <= want
	case ">":
		ok = got > want
	case ">=":
		ok = got >= want
	}
	if !ok {
		return &Mismatch{Expected: fmt.Sprintf("%s %s %d", name, op, want), Found: fmt.Sprintf("%s = %d", name, got)}
	}
	return nil
}

func runExpectError(e *Env, c *Call) error {
	name := c.Word("NAME")
	want, _ := errno.ByName(name)
	prev := "the previous command"
	if e.last != nil {
		prev = fmt.Sprintf("line %d (%s)", e.last.Line, e.last.String())
	}
	switch {
	case e.lastErr == nil:
		return &Mismatch{Expected: name + " from " + prev, Found: "success"}
	case !errors.Is(e.lastErr, want):
		got := ErrnoName(e.lastErr)
		if got == "" {
			got = "an error with no error number"
		}
		return &Mismatch{Expected: name + " from " + prev, Found: got + ": " + e.lastErr.Error()}
	}
	return nil
}

func runStats(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	names := c.Words("NAME")
	if len(names) == 0 {
		names = counterNames
	} else {
		sort.Strings(names)
		names = compact(names)
	}
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %d\n", n, counterValue(mm, n))
	}
	e.Printf("%s", b.String())
	return nil
}

// compact drops adjacent duplicates of a sorted slice.
func compact(s []string) []string {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func runReset(e *Env, c *Call) error {
	m, err := e.Machine()
	if err != nil {
		return err
	}
	m.Reset()
	return nil
}

func runTrace(e *Env, c *Call) error {
	e.tracing = c.Word("MODE") == "on"
	if e.m != nil {
		if e.tracing {
			e.m.SetTracer(cost.TextTracer{W: e.out})
		} else {
			e.m.SetTracer(nil)
		}
	}
	return nil
}

func runVMAs(e *Env, c *Call) error {
	mm, err := e.MM()
	if err != nil {
		return err
	}
	e.Printf("vmas of %s:\n", mm.Name())
	for _, v := range mm.VMAs() {
		e.Printf("  %s\n", v)
	}
	return nil
}

func runAudit(e *Env, c *Call) error {
	m, err := e.Machine()
	if err != nil {
		return err
	}
	if err := m.Check(); err != nil {
		return &Mismatch{Expected: "the machine's invariants to hold", Found: err.Error()}
	}
	return nil
}
