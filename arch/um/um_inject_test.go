package um_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ptsim/ptsim/arch/archs"
	"github.com/ptsim/ptsim/mmu"
)

// TestRepopulatedTableDropsHostMapping: a page read on one CPU, unmapped
// (its tables freed, the upper entry left needing a sync) and a new
// mapping made in the same upper entry before any access: the old page
// must not stay in the host mapping. In Linux the munmap's sync runs when
// the syscall returns to user space; the model syncs at the next access,
// which walked the new table and missed the munmap. Found by the property
// tests (a stale TLB entry on the other CPU).
func TestRepopulatedTableDropsHostMapping(t *testing.T) {
	a, err := archs.ByName("um")
	require.NoError(t, err)
	m, err := mmu.New(mmu.Config{Arch: a, MemorySize: 256 << 20, CPUs: 2})
	require.NoError(t, err)
	mm, err := m.NewMM("p")
	require.NoError(t, err)
	rw := mmu.ProtRead | mmu.ProtWrite
	old, fresh := uint64(0x10_0060_0000), uint64(0x10_0000_0000)
	require.NoError(t, mm.Mmap(old, 4096, rw, mmu.MapFlags{Populate: true}))
	_, err = mm.Read(0, old)
	require.NoError(t, err)
	require.NoError(t, mm.Munmap(old, 4096))
	require.NoError(t, mm.Mmap(fresh, 4096, rw, mmu.MapFlags{Populate: true}))
	require.NoError(t, mm.Write(1, fresh, 1))
	require.NoError(t, m.Check())
	_, err = mm.Read(0, old)
	require.ErrorIs(t, err, mmu.EFAULT)
}
