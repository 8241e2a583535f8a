package scenario

import (
	"errors"
	"strings"
	"testing"

	"github.com/ptsim/ptsim/mmu"
)

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "010", want: 10}, // decimal, not octal
		{in: "0x1000", want: 0x1000},
		{in: "0X1f", want: 0x1f},
		{in: "4K", want: 4 << 10},
		{in: "4k", want: 4 << 10},
		{in: "2M", want: 2 << 20},
		{in: "1G", want: 1 << 30},
		{in: "3T", want: 3 << 40},
		{in: "0x10G", want: 0x10 << 30},
		{in: "18446744073709551615", want: ^uint64(0)},
		{in: "0xffffffffffffffff", want: ^uint64(0)},
		{in: "16777215T", want: 16777215 << 40},
		{in: "16777216T", bad: true}, // 2^64
		{in: "18446744073709551616", bad: true},
		{in: "", bad: true},
		{in: "K", bad: true},
		{in: "0x", bad: true},
		{in: "0xK", bad: true},
		{in: "-1", bad: true},
		{in: "+1", bad: true},
		{in: "1_000", bad: true},
		{in: "0b101", bad: true},
		{in: "1.5G", bad: true},
		{in: "4KB", bad: true},
		{in: "0x1g2", bad: true},
		{in: " 1", bad: true},
	}
	for _, tc := range tests {
		got, err := ParseNumber(tc.in)
		switch {
		case tc.bad && err == nil:
			t.Errorf("ParseNumber(%q) = %d, want an error", tc.in, got)
		case tc.bad && !errors.Is(err, ErrBadNumber):
			t.Errorf("ParseNumber(%q) error %v does not wrap ErrBadNumber", tc.in, err)
		case !tc.bad && err != nil:
			t.Errorf("ParseNumber(%q): %v", tc.in, err)
		case !tc.bad && got != tc.want:
			t.Errorf("ParseNumber(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestParseProt(t *testing.T) {
	want := map[string]mmu.Prot{
		"none": mmu.ProtNone, "r": mmu.ProtRead, "rw": mmu.ProtRead | mmu.ProtWrite,
		"rx": mmu.ProtRead | mmu.ProtExec, "rwx": mmu.ProtRead | mmu.ProtWrite | mmu.ProtExec,
	}
	for w, p := range want {
		if got, err := ParseProt(w); err != nil || got != p {
			t.Errorf("ParseProt(%q) = %v, %v; want %v", w, got, err, p)
		}
		// The spelling round-trips through mmu.Prot.String.
		if p.String() != w {
			t.Errorf("%v spells %q, want %q", p, p.String(), w)
		}
	}
	for _, w := range []string{"", "w", "x", "wx", "rwz", "RW", "rwxx", "read"} {
		if _, err := ParseProt(w); err == nil {
			t.Errorf("ParseProt(%q) accepted", w)
		}
	}
}

// TestParseLines checks the lexical rules and the typed calls a line
// gives.
func TestParseLines(t *testing.T) {
	src := "# a comment\n" +
		"\n" +
		"   \t  \n" +
		"mmap 0x1000 4K rx file=f shared populate folio=16K offset=8K  # trailing comment\n" +
		"!munmap 0x1000 4K\n" +
		"  !   mprotect 0x1000 4K none\n" +
		"expect-error EINVAL\n" +
		"stats faults vmas\n" +
		"expect faults >= 0x10\n" +
		"write 0x2000 val=7 cpu=0\r\n" +
		"config move_pmd=off spf=seq\n"
	s, err := Parse("t.pts", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Calls) != 8 {
		t.Fatalf("%d calls, want 8", len(s.Calls))
	}
	mm := s.Calls[0]
	if mm.Line != 4 || mm.Cmd.Name != "mmap" || mm.Num("ADDR") != 0x1000 || mm.Num("LEN") != 4096 ||
		mm.Prot("PROT", 0) != mmu.ProtRead|mmu.ProtExec || mm.Word("file") != "f" || !mm.Has("shared") ||
		!mm.Has("populate") || mm.Has("private") || mm.Num("folio") != 16<<10 || mm.Num("offset") != 8<<10 {
		t.Errorf("mmap call parsed wrong: %+v", mm)
	}
	if mm.Text != "mmap 0x1000 4K rx file=f shared populate folio=16K offset=8K" {
		t.Errorf("text %q", mm.Text)
	}
	if c := s.Calls[1]; !c.Bang || c.ExpectErr || c.String() != "! munmap 0x1000 4K" {
		t.Errorf("bang line: %+v", c)
	}
	if c := s.Calls[2]; !c.Bang || !c.ExpectErr || c.Prot("PROT", mmu.ProtRead) != mmu.ProtNone || !c.Has("PROT") {
		t.Errorf("mprotect before expect-error: %+v", c)
	}
	if got := s.Calls[4].Words("NAME"); strings.Join(got, ",") != "faults,vmas" {
		t.Errorf("stats names %v", got)
	}
	if c := s.Calls[5]; c.Word("OP") != ">=" || c.Num("VALUE") != 16 {
		t.Errorf("expect: %+v", c)
	}
	if c := s.Calls[6]; c.Num("val") != 7 || !c.Has("cpu") || c.Num("cpu") != 0 || c.Has("LEN") || c.NumOr("LEN", 9) != 9 {
		t.Errorf("write: %+v", c)
	}
	cfg := s.Calls[len(s.Calls)-1]
	if got := cfg.Options(); len(got) != 2 || got[0] != (KeyValue{"move_pmd", "off"}) || got[1] != (KeyValue{"spf", "seq"}) {
		t.Errorf("config options %v", got)
	}
}

// TestParseErrors checks that every malformed line is reported with its
// line number, and that a script with one is not returned.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		msg       string
	}{
		{"unknown command", "mmapp 1 2", 1, `unknown command "mmapp"`},
		{"bad number", "mmap 0x10 4Q", 1, `LEN: bad number "4Q"`},
		{"missing argument", "mmap 0x1000", 1, "missing LEN"},
		{"extra argument", "munmap 1 2 3", 1, `unexpected "3"`},
		{"unknown option", "mmap 0x1000 4K size=3", 1, `unknown option "size"`},
		{"option on command without options", "munmap 1 2 x=1", 1, "munmap takes no options"},
		{"bad protection", "mprotect 0x1000 4K wx", 1, `bad protection "wx"`},
		{"flag with value", "mmap 1 2 shared=yes", 1, "shared is a flag"},
		{"duplicate option", "write 1 val=1 val=2", 1, "val given twice"},
		{"duplicate flag", "mmap 1 2 shared shared", 1, "shared given twice"},
		{"empty value", "write 1 val=", 1, "needs a key and a value"},
		{"bad choice", "trace loud", 1, `"loud" is not one of on, off`},
		{"bad errno", "mmap 1 2\nexpect-error ENOTHING", 2, `unknown error name "ENOTHING"`},
		{"bad counter", "expect flops == 1", 1, `unknown counter "flops"`},
		{"bad arch", "arch vax", 1, `"vax" is not one of`},
		{"arch not first", "mm a\narch arm64", 2, "arch must be the first command"},
		{"arch twice", "arch arm64\narch s390x", 2, "arch must be the first command"},
		{"memory after mmap", "mmap 1 2\nmemory 1G", 2, "memory must come before the first mmap"},
		{"expect-error first", "# hi\nexpect-error EINVAL", 2, "expect-error must follow"},
		{"expect-error after expect", "expect vmas == 0\nexpect-error EINVAL", 2, "expect fails only as a failed expectation"},
		{"expect-error after bang expect", "! expect vmas == 0\nexpect-error EINVAL", 2, "expect fails only as a failed expectation"},
		{"expect-error twice", "mmap 1 2\nexpect-error EINVAL\nexpect-error EINVAL", 3, "can fail, not expect-error"},
		{"bang expect-error", "mmap 1 2\n! expect-error EINVAL", 2, "expect-error cannot take `!`"},
		{"bang alone", "!  # nothing", 1, "`!` needs a command"},
		{"config nothing", "config", 1, "missing key=value"},
		{"config unknown key", "config warp=9", 1, `unknown option "warp"`},
		{"config bad value", "config move_pud=perhaps", 1, "bad value move_pud=perhaps"},
		{"config bad number", "config mremap_latency_limit=lots", 1, "bad value mremap_latency_limit=lots"},
		{"arch bad knob", "arch arm64 thp=sometimes", 1, "bad value thp=sometimes"},
		{"dump half range", "dump 0x1000", 1, "give both ADDR and LEN"},
		{"mmap anon file", "mmap 1 2 anon file=x", 1, "anon and file= exclude each other"},
		{"nul byte", "mmap 1 2\x00", 0, "binary file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("t.pts", []byte(tc.src))
			if err == nil {
				t.Fatalf("parsed: %+v", s)
			}
			if s != nil {
				t.Errorf("a script came back with the error")
			}
			var se SyntaxErrors
			if !errors.As(err, &se) || len(se) == 0 {
				t.Fatalf("error %T %v is not SyntaxErrors", err, err)
			}
			if se[0].Line != tc.line || !strings.Contains(se[0].Msg, tc.msg) {
				t.Errorf("got %v, want line %d with %q", se[0], tc.line, tc.msg)
			}
			if ExitStatus(err) != 2 {
				t.Errorf("exit status %d, want 2", ExitStatus(err))
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), "t.pts:") {
				t.Errorf("diagnostic %q does not start with file:line", err)
			}
		})
	}
}

// TestParseReportsEveryLine checks that all malformed lines are listed, up
// to the cap.
func TestParseReportsEveryLine(t *testing.T) {
	src := strings.Repeat("bogus\nmmap 1 2\n", 30)
	_, err := Parse("t.pts", []byte(src))
	var se SyntaxErrors
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	if len(se) != maxSyntaxErrors {
		t.Fatalf("%d errors, want the cap %d", len(se), maxSyntaxErrors)
	}
	for i, e := range se {
		if e.Line != 2*i+1 {
			t.Fatalf("error %d on line %d, want %d", i, e.Line, 2*i+1)
		}
	}
}
