package scenario

import (
	"slices"
	"sort"
)

// run maps the keys [start, end) to the values base, base+stride,
// base+2*stride...: a run of pages written with one value (stride 0) or
// with each page's default value (stride = the page size).
type run struct {
	start, end   uint64
	base, stride uint64
}

// at returns the value of key k. Precondition: start <= k (k may equal
// end, to continue the run).
func (r run) at(k uint64) uint64 { return r.base + (k-r.start)*r.stride }

// continues reports whether b carries on where a stops, value for value.
func (a run) continues(b run) bool {
	return a.end == b.start && a.stride == b.stride && a.at(b.start) == b.base
}

// pageMap maps page keys (page numbers, or file page indices) to content
// values, stored as sorted non-overlapping runs, so a 64 GiB write is one
// run, not 16 million map entries.
type pageMap struct {
	runs []run
}

// search returns the index of the first run ending above k.
func (p *pageMap) search(k uint64) int {
	return sort.Search(len(p.runs), func(i int) bool { return p.runs[i].end > k })
}

// get returns the value of key k.
func (p *pageMap) get(k uint64) (uint64, bool) {
	i := p.search(k)
	if i < len(p.runs) && p.runs[i].start <= k {
		return p.runs[i].at(k), true
	}
	return 0, false
}

// clear removes the keys [start, end).
func (p *pageMap) clear(start, end uint64) {
	if start >= end {
		return
	}
	i := p.search(start)
	j := i
	var keep []run
	for ; j < len(p.runs) && p.runs[j].start < end; j++ {
		r := p.runs[j]
		if r.start < start {
			keep = append(keep, run{start: r.start, end: start, base: r.base, stride: r.stride})
		}
		if r.end > end {
			keep = append(keep, run{start: end, end: r.end, base: r.at(end), stride: r.stride})
		}
	}
	p.runs = slices.Replace(p.runs, i, j, keep...)
}

// set maps [start, end) to base, base+stride...
func (p *pageMap) set(start, end, base, stride uint64) {
	if start >= end {
		return
	}
	p.clear(start, end)
	i := p.search(start)
	r := run{start: start, end: end, base: base, stride: stride}
	p.runs = slices.Insert(p.runs, i, r)
	// Merge with the neighbours where the values carry on.
	if i+1 < len(p.runs) && p.runs[i].continues(p.runs[i+1]) {
		p.runs[i].end = p.runs[i+1].end
		p.runs = slices.Delete(p.runs, i+1, i+2)
	}
	if i > 0 && p.runs[i-1].continues(p.runs[i]) {
		p.runs[i-1].end = p.runs[i].end
		p.runs = slices.Delete(p.runs, i, i+1)
	}
}

// extract returns copies of the runs inside [start, end), clipped.
func (p *pageMap) extract(start, end uint64) []run {
	var out []run
	for i := p.search(start); i < len(p.runs) && p.runs[i].start < end; i++ {
		r := p.runs[i]
		if r.start < start {
			r.base, r.start = r.at(start), start
		}
		if r.end > end {
			r.end = end
		}
		out = append(out, r)
	}
	return out
}

// place sets each run moved by delta keys (modulo 2^64).
func (p *pageMap) place(rs []run, delta uint64) {
	for _, r := range rs {
		p.set(r.start+delta, r.end+delta, r.base, r.stride)
	}
}

// clone returns an independent copy.
func (p *pageMap) clone() *pageMap { return &pageMap{runs: slices.Clone(p.runs)} }
