package phys

import "math/bits"

// bitset is a bitmap with a summary of its non-zero words, so that the
// lowest set bit is found without scanning empty words one by one.
type bitset struct {
	// words holds one bit per block.
	words []uint64
	// summary has bit w set when words[w] is non-zero.
	summary []uint64
	// lo is a lower bound on the index of the first non-zero summary word.
	lo int
	// count is the number of set bits.
	count uint64
}

func newBitset(n uint64) bitset {
	nw := (n + 63) / 64
	return bitset{
		words:   make([]uint64, nw),
		summary: make([]uint64, (nw+63)/64),
	}
}

func (b *bitset) test(i uint64) bool { return b.words[i/64]&(1<<(i%64)) != 0 }

func (b *bitset) set(i uint64) {
	w := i / 64
	if b.words[w] == 0 {
		b.summary[w/64] |= 1 << (w % 64)
		if int(w/64) < b.lo {
			b.lo = int(w / 64)
		}
	}
	b.words[w] |= 1 << (i % 64)
	b.count++
}

func (b *bitset) clear(i uint64) {
	w := i / 64
	b.words[w] &^= 1 << (i % 64)
	if b.words[w] == 0 {
		b.summary[w/64] &^= 1 << (w % 64)
	}
	b.count--
}

// first returns the lowest set bit.
func (b *bitset) first() (uint64, bool) {
	if b.count == 0 {
		return 0, false
	}
	for s := b.lo; s < len(b.summary); s++ {
		if b.summary[s] == 0 {
			b.lo = s + 1
			continue
		}
		b.lo = s
		w := uint64(s)*64 + uint64(bits.TrailingZeros64(b.summary[s]))
		return w*64 + uint64(bits.TrailingZeros64(b.words[w])), true
	}
	return 0, false
}

// buddy is a binary buddy allocator over frame numbers [0, n). It always
// hands out the lowest free block that fits, so the same sequence of
// requests gives the same frames on every run.
type buddy struct {
	// free[k] has bit b set when block [b<<k, (b+1)<<k) is free as a whole
	// block of order k.
	free []bitset
	// n is the number of frames managed.
	n uint64
	// nfree is the number of free frames.
	nfree uint64
}

func newBuddy(n uint64, maxOrder uint) *buddy {
	bd := &buddy{free: make([]bitset, maxOrder+1), n: n}
	for k := range bd.free {
		bd.free[k] = newBitset(n>>uint(k) + 1)
	}
	// Carve [0, n) into the largest naturally aligned blocks.
	for pfn := uint64(0); pfn < n; {
		k := maxOrder
		for k > 0 && (pfn&(1<<k-1) != 0 || pfn+1<<k > n) {
			k--
		}
		bd.free[k].set(pfn >> k)
		bd.nfree += 1 << k
		pfn += 1 << k
	}
	return bd
}

// alloc removes and returns the lowest free block of the given order.
func (bd *buddy) alloc(order uint) (uint64, bool) {
	k := order
	for ; int(k) < len(bd.free); k++ {
		if bd.free[k].count > 0 {
			break
		}
	}
	if int(k) == len(bd.free) {
		return 0, false
	}
	b, _ := bd.free[k].first()
	bd.free[k].clear(b)
	pfn := b << k
	// Split: the upper halves go back to the lower orders.
	for k > order {
		k--
		bd.free[k].set(pfn>>k + 1)
	}
	bd.nfree -= 1 << order
	return pfn, true
}

// isFree reports whether the frame lies in a free block.
func (bd *buddy) isFree(pfn uint64) bool {
	for k := range bd.free {
		if pfn>>uint(k) < uint64(len(bd.free[k].words))*64 && bd.free[k].test(pfn>>uint(k)) {
			return true
		}
	}
	return false
}

// release returns the block at pfn of the given order, merging buddies.
func (bd *buddy) release(pfn uint64, order uint) {
	bd.nfree += 1 << order
	k := order
	b := pfn >> k
	for int(k)+1 < len(bd.free) {
		buddyBlock := b ^ 1
		if (buddyBlock+1)<<k > bd.n || !bd.free[k].test(buddyBlock) {
			break
		}
		bd.free[k].clear(buddyBlock)
		b >>= 1
		k++
	}
	bd.free[k].set(b)
}
