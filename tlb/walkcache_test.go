package tlb_test

import (
	"errors"
	"testing"

	"github.com/ptsim/ptsim/pgtable"
	"github.com/ptsim/ptsim/tlb"
)

// TestSetWalkCacheEntries: resizing the walk caches drops what they
// hold; 0 turns them off (sparc64, UML); bad sizes fail and change
// nothing.
func TestSetWalkCacheEntries(t *testing.T) {
	e := newEnv(t, tlb.Config{CPUs: 2})
	pt, ctx := e.mm("mm", false)
	mapRW(t, pt, userVA, 1, 0x10)
	c := e.sys.CPU(1)
	fill(t, c, ctx, userVA, true)
	if c.WalkCached(ctx) == 0 {
		t.Fatal("setup cached no table")
	}
	for _, n := range []int{-1, 1<<16 + 1} {
		if err := e.sys.SetWalkCacheEntries(n); !errors.Is(err, tlb.EINVAL) {
			t.Fatalf("%d entries: %v", n, err)
		}
	}
	if c.WalkCached(ctx) == 0 {
		t.Fatal("a refused resize dropped the walk cache")
	}
	if err := e.sys.SetWalkCacheEntries(0); err != nil {
		t.Fatal(err)
	}
	fill(t, c, ctx, userVA, true)
	if n := c.WalkCached(ctx); n != 0 {
		t.Fatalf("walk caches off, %d entries cached", n)
	}
	if _, ok := c.WalkCacheLookup(ctx, userVA, pgtable.PTE); ok {
		t.Fatal("lookup hit with walk caches off")
	}
	if err := e.sys.SetWalkCacheEntries(1); err != nil {
		t.Fatal(err)
	}
	fill(t, c, ctx, userVA, true)
	if n := c.WalkCached(ctx); n != 1 {
		t.Fatalf("one-entry walk cache holds %d", n)
	}
	mustClean(t, e.sys)
}
