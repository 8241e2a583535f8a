package mmu

import (
	"fmt"
	"sort"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/phys"
)

// File is a file with a page cache (struct address_space). Files are
// sparse and unbounded: every page reads as zero until written. Shared
// anonymous mappings are backed by an unnamed shmem file, as Linux's
// shmem_zero_setup does.
type File struct {
	// Name identifies the file.
	Name string
	// Shmem marks tmpfs/shmem files (RSS counts them as MM_SHMEMPAGES).
	Shmem bool
	// cache maps a page index to the frame caching it.
	cache map[uint64]phys.PFN
}

// File returns the named file, creating it on first use.
func (m *Machine) File(name string) *File {
	if f, ok := m.fileByName[name]; ok {
		return f
	}
	f := &File{Name: name, cache: map[uint64]phys.PFN{}}
	m.files = append(m.files, f)
	m.fileByName[name] = f
	return f
}

// newShmem creates the unnamed shmem file behind a shared anonymous
// mapping.
func (m *Machine) newShmem() *File {
	f := m.File(fmt.Sprintf("shmem#%d", len(m.files)))
	f.Shmem = true
	return f
}

// Files returns the files in creation order.
func (m *Machine) Files() []*File { return append([]*File(nil), m.files...) }

// Cached returns the frame caching page index idx, if any.
func (f *File) Cached(idx uint64) (phys.PFN, bool) {
	pfn, ok := f.cache[idx]
	return pfn, ok
}

// Indices returns the cached page indices in ascending order.
func (f *File) Indices() []uint64 {
	idx := make([]uint64, 0, len(f.cache))
	for i := range f.cache {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return idx
}

// rssKind returns the RSS counter pages of this file count in.
func (f *File) rssKind() RSSKind {
	if f.Shmem {
		return MMShmemPages
	}
	return MMFilePages
}

// getFolio returns the page-cache page for idx, allocating a folio on a
// miss (filemap_fault with readahead). With file_large_folios the folio
// has the VMA's folio order when the naturally aligned range around idx is
// not cached yet; otherwise one page. The page cache holds one reference
// per folio. It fails with ENOMEM.
func (mm *MM) getFolio(f *File, idx uint64, order uint8) (phys.PFN, error) {
	mm.meter.Add(cost.PageCacheLookups, 1)
	if pfn, ok := f.cache[idx]; ok {
		return pfn, nil
	}
	m := mm.m
	if !m.knobs.FileLargeFolios {
		order = 0
	}
	for ; ; order = 0 {
		n := uint64(1) << order
		start := idx &^ (n - 1)
		if order > 0 && !f.rangeUncached(start, n) {
			continue
		}
		pfn, err := m.mem.Alloc(uint(order), phys.KindFolio)
		if err != nil {
			if order > 0 {
				continue
			}
			return 0, err
		}
		mm.meter.Add(cost.FolioAllocs, 1)
		mm.meter.Add(cost.PageZeroes, n)
		m.mem.SetFlags(phys.Folio{PFN: pfn, Order: order}, phys.FlagPageCache)
		for i := uint64(0); i < n; i++ {
			f.cache[start+i] = pfn + phys.PFN(i)
		}
		return pfn + phys.PFN(idx-start), nil
	}
}

func (f *File) rangeUncached(start, n uint64) bool {
	for i := start; i < start+n; i++ {
		if _, ok := f.cache[i]; ok {
			return false
		}
	}
	return true
}

// pageMkwrite counts the filesystem's page_mkwrite for a write fault on
// the page-cache folio of a shared file mapping: block_page_mkwrite
// prepares and commits every block of the folio (one per page, for 4 KiB
// blocks). shmem has no page_mkwrite.
func (mm *MM) pageMkwrite(v *VMA, folio phys.Folio) {
	if v.File != nil && !v.File.Shmem {
		mm.meter.Add(cost.PageMkwriteBlocks, folio.NrPages())
	}
}
