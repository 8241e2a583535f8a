package proptest

import (
	"reflect"
	"testing"

	"github.com/ptsim/ptsim/fork"
	"github.com/ptsim/ptsim/mmu"
	"github.com/ptsim/ptsim/vmemmap"
)

// richMachine builds a machine whose snapshot fills every field: address
// spaces with anonymous, shared and file pages, a THP, a pin, a fork, and
// a hugetlb pool.
func richMachine(t *testing.T) *mmu.Machine {
	t.Helper()
	w, err := newWorld("x86_64", twins(mustArch(t, "x86_64"))[0], true)
	if err != nil {
		t.Fatal(err)
	}
	m := w.ms[0].m
	p, _ := m.MM("p")
	rw := mmu.ProtRead | mmu.ProtWrite
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.Mmap(0x10_0000_0000, 0x400000, rw, mmu.MapFlags{FolioSize: 0x200000}))
	must(p.Mmap(0x10_0040_0000, 0x4000, rw, mmu.MapFlags{Shared: true}))
	must(p.Mmap(0x10_0080_0000, 0x4000, rw, mmu.MapFlags{File: "f"}))
	for _, a := range []uint64{0x10_0000_0000, 0x10_0040_0000, 0x10_0080_0000} {
		must(p.Write(0, a, a))
	}
	_, err = p.Read(0, 0x10_0080_1000)
	must(err)
	must(p.Pin(0x10_0040_0000, 0x1000))
	_, err = fork.Fork(p, "c")
	must(err)
	pool, err := vmemmap.Of(m).Pool(2 << 20)
	must(err)
	_, err = pool.Alloc(2)
	must(err)
	return m
}

// TestSnapshotEqual checks Equal against every field: equal snapshots of
// one state compare equal, and changing any one value of a snapshot makes
// it differ (as reflect.DeepEqual says).
func TestSnapshotEqual(t *testing.T) {
	m := richMachine(t)
	a := Take(m)
	if b := Take(m); !a.Equal(&b) || !reflect.DeepEqual(a, b) {
		t.Fatal("two snapshots of one state differ")
	}
	mutations := 0
	// visit mutates, one at a time, the first element of every slice and
	// every scalar field of b, calling check after each change.
	var visit func(v reflect.Value, path string, check func(string))
	visit = func(v reflect.Value, path string, check func(string)) {
		switch v.Kind() {
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				visit(v.Field(i), path+"."+v.Type().Field(i).Name, check)
			}
		case reflect.Slice, reflect.Array:
			if v.Len() == 0 {
				t.Errorf("%s is empty: the rich machine does not exercise it", path)
				return
			}
			visit(v.Index(0), path+"[0]", check)
		case reflect.Bool:
			v.SetBool(!v.Bool())
			check(path)
			v.SetBool(!v.Bool())
		case reflect.Int, reflect.Int64, reflect.Int8:
			v.SetInt(v.Int() + 1)
			check(path)
			v.SetInt(v.Int() - 1)
		case reflect.Uint, reflect.Uint8, reflect.Uint64:
			v.SetUint(v.Uint() + 1)
			check(path)
			v.SetUint(v.Uint() - 1)
		case reflect.String:
			s := v.String()
			v.SetString(s + "x")
			check(path)
			v.SetString(s)
		default:
			t.Errorf("%s: kind %v not covered", path, v.Kind())
		}
	}
	b := Take(m)
	visit(reflect.ValueOf(&b).Elem(), "Snapshot", func(path string) {
		mutations++
		if a.Equal(&b) || reflect.DeepEqual(a, b) {
			t.Errorf("changing %s went unnoticed", path)
		}
	})
	if !a.Equal(&b) {
		t.Fatal("the mutations were not undone")
	}
	t.Logf("%d fields checked", mutations)
}
