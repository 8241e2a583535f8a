package spf

import (
	"math/bits"

	"github.com/ptsim/ptsim/cost"
	"github.com/ptsim/ptsim/spf/sched"
)

// The shared resources of an anonymous write fault besides the mm's
// locks, as Linux 5.12-5.17 (the kernels of the published pft runs)
// batches them. Each is per-CPU work most of the time and, once per
// batch, a shared cache line (a lock word, a list head, an atomic
// counter) that the other faulting CPUs bounce:
//
//   - the page allocator's per-CPU list: rmqueue_pcplist takes a page
//     from this CPU's pcp list; when it is empty rmqueue_bulk takes
//     zone->lock and moves pcp->batch pages from the buddy lists
//     (zone_batchsize(): 63 for a zone of 1 GiB or more);
//   - the memory cgroup charge: consume_stock takes a page from this
//     CPU's stock; when it is empty try_charge charges
//     MEMCG_CHARGE_BATCH (32) pages with an atomic on the page_counter of
//     the cgroup and of every ancestor up to the root, and keeps the rest
//     in the stock;
//   - the LRU: lru_cache_add puts the page in this CPU's pagevec; when it
//     holds PAGEVEC_SIZE (15) pages, __pagevec_lru_add takes the
//     lruvec's lru_lock and puts them on the list;
//   - statistics: vmstat node and zone items (NR_ANON_MAPPED,
//     NR_INACTIVE_ANON, NR_ZONE_INACTIVE_ANON, NR_FREE_PAGES) are
//     per-CPU deltas folded into the node's or zone's atomic and the
//     global one when they pass stat_threshold
//     (calculate_normal_threshold: 2 fls(cpus) (1 + fls(zone MiB / 128)),
//     at most 125); memory-cgroup statistics and the PGFAULT event are
//     per-CPU deltas folded into every ancestor's atomic when they pass
//     MEMCG_CHARGE_BATCH (Linux 5.12, before rstat); a task's RSS counts
//     are synced into the mm's atomic every TASK_RSS_EVENTS_THRESH (64)
//     faults (SPLIT_RSS_COUNTING).
//
// Every fault path (mmap_lock, speculative, per-VMA lock) does the same
// work here, so these resources bound both paths' throughput at high
// thread counts.
const (
	// pagevecSize is PAGEVEC_SIZE (include/linux/pagevec.h).
	pagevecSize = 15
	// memcgChargeBatch is MEMCG_CHARGE_BATCH (include/linux/memcontrol.h,
	// 32 until Linux 6.1).
	memcgChargeBatch = 32
	// rssEventsThresh is TASK_RSS_EVENTS_THRESH (mm/memory.c).
	rssEventsThresh = 64
	// memcgDepth is how many page counters a charge walks: a process of
	// a systemd login session sits in session-N.scope, under
	// user-UID.slice, user.slice and the root cgroup, whose counter is
	// every top-level cgroup's parent.
	memcgDepth = 4
	// statThresholdMax caps calculate_normal_threshold.
	statThresholdMax = 125
)

// zoneBatchSize is zone_batchsize() of mm/page_alloc.c (Linux 5.12) for
// a zone of pages pages of pageSize bytes, as pageset_set_batch uses it
// (at least 1).
func zoneBatchSize(pages, pageSize uint64) int {
	batch := pages / 1024
	if batch*pageSize > 1<<20 {
		batch = (1 << 20) / pageSize
	}
	batch /= 4
	if batch < 1 {
		batch = 1
	}
	b := batch + batch/2
	b = uint64(1)<<(bits.Len64(b)-1) - 1 // rounddown_pow_of_two - 1
	return max(int(b), 1)
}

// statThreshold is calculate_normal_threshold() of mm/vmstat.c for a
// zone of pages pages on cpus CPUs.
func statThreshold(cpus int, pages uint64, pageShift uint) int64 {
	mem := pages >> (27 - pageShift)
	t := 2 * bits.Len(uint(cpus)) * (1 + bits.Len64(mem))
	return int64(min(t, statThresholdMax))
}

// percpuCounter is a per-CPU counter whose delta is folded into shared
// atomics when it passes a threshold (vmstat items, memcg statistics).
type percpuCounter struct {
	// threshold is the fold threshold; diff the per-CPU deltas.
	threshold int64
	diff      []int64
	// lines are the shared atomics a fold adds to.
	lines []*line
}

// newCounter returns a counter over cpus CPUs folding into n new lines.
func newCounter(cpus int, threshold int64, n int) *percpuCounter {
	c := &percpuCounter{threshold: threshold, diff: make([]int64, cpus)}
	for range n {
		l := newLine(cpus)
		c.lines = append(c.lines, &l)
	}
	return c
}

// spinlock is a spinlock in simulated time: a lock word on its own line
// and the time it is held; a CPU that finds it held spins until the
// holder releases it, then pulls the line.
type spinlock struct {
	// line is the lock word's cache line.
	line line
	// held is set while a thread holds the lock.
	held bool
}

// faultShared is the shared state of the fault path's batches.
type faultShared struct {
	// pcpBatch is pcp->batch; pcp the pages on each CPU's pcp list.
	pcpBatch int
	pcp      []int
	// zoneLock is zone->lock; zoneFree the free-list heads and counts
	// (free_area) that rmqueue_bulk changes under it.
	zoneLock spinlock
	zoneFree line
	// stock is each CPU's memcg stock (pages charged, not yet used);
	// counters the page_counter lines from the cgroup to the root.
	stock    []int
	counters []line
	// pagevec is each CPU's LRU pagevec fill; lruLock the lruvec's
	// lru_lock; lruvec the list heads and LRU sizes it guards.
	pagevec []int
	lruLock spinlock
	lruvec  line
	// rssEvents counts each CPU's (thread's) faults since its last RSS
	// sync; rss is the mm's rss_stat line.
	rssEvents []int
	rss       line
	// The statistics: node and zone vmstat items (each folds into the
	// node's or zone's atomic and the global one), and memcg statistics
	// (each folds into one atomic per cgroup level).
	nodeAnonMapped, nodeInactiveAnon, zoneInactiveAnon, zoneFreePages *percpuCounter
	memcgAnonMapped, lruvecAnonMapped, memcgInactive, lruvecInactive  *percpuCounter
	memcgPgfault                                                      *percpuCounter
}

// newFaultShared builds the state for a machine of cpus CPUs and pages
// base pages of pageShift.
func newFaultShared(cpus int, pages uint64, pageShift uint) *faultShared {
	t := statThreshold(cpus, pages, pageShift)
	f := &faultShared{
		pcpBatch:  zoneBatchSize(pages, 1<<pageShift),
		pcp:       make([]int, cpus),
		zoneLock:  spinlock{line: newLine(cpus)},
		zoneFree:  newLine(cpus),
		stock:     make([]int, cpus),
		pagevec:   make([]int, cpus),
		lruLock:   spinlock{line: newLine(cpus)},
		lruvec:    newLine(cpus),
		rssEvents: make([]int, cpus),
		rss:       newLine(cpus),

		nodeAnonMapped:   newCounter(cpus, t, 2),
		nodeInactiveAnon: newCounter(cpus, t, 2),
		zoneInactiveAnon: newCounter(cpus, t, 2),
		zoneFreePages:    newCounter(cpus, t, 2),
		memcgAnonMapped:  newCounter(cpus, memcgChargeBatch, memcgDepth),
		lruvecAnonMapped: newCounter(cpus, memcgChargeBatch, memcgDepth),
		memcgInactive:    newCounter(cpus, memcgChargeBatch, memcgDepth),
		lruvecInactive:   newCounter(cpus, memcgChargeBatch, memcgDepth),
		memcgPgfault:     newCounter(cpus, memcgChargeBatch, memcgDepth),
	}
	for range memcgDepth {
		f.counters = append(f.counters, newLine(cpus))
	}
	return f
}

// spinLock takes k: wait (spinning, no sleep) while another thread holds
// it, then pull the lock word's line.
func (s *Sim) spinLock(t *Thread, k *spinlock) {
	s.yield(t, sched.Acquire)
	s.block(t, func() bool { return !k.held })
	t.st.WaitUntil(k.line.freeAt)
	s.atomic(t, &k.line)
	k.held = true
}

// spinUnlock releases k at t's current time.
func (s *Sim) spinUnlock(t *Thread, k *spinlock) {
	s.charge(t)
	k.held = false
	k.line.freeAt = max(k.line.freeAt, t.st.Clock)
}

// counterAdd adds delta to t's CPU's share of c, folding it into the
// shared atomics when it passes the threshold (__mod_node_page_state,
// __mod_memcg_state: fold all, start again from 0).
func (s *Sim) counterAdd(t *Thread, c *percpuCounter, delta int64) {
	cpu := t.st.CPU
	x := c.diff[cpu] + delta
	if x > c.threshold || x < -c.threshold {
		for _, l := range c.lines {
			s.mm.Meter().Add(cost.PercpuFolds, 1)
			s.atomic(t, l)
		}
		x = 0
	}
	c.diff[cpu] = x
}

// faultCounters is handle_mm_fault's bookkeeping: the memcg PGFAULT event
// and check_sync_rss_stat (the task's RSS counts go to the mm when more
// than TASK_RSS_EVENTS_THRESH faults passed since the last sync).
func (s *Sim) faultCounters(t *Thread) {
	f := s.shared
	s.counterAdd(t, f.memcgPgfault, 1)
	cpu := t.st.CPU
	f.rssEvents[cpu]++
	if f.rssEvents[cpu]-1 > rssEventsThresh {
		s.mm.Meter().Add(cost.PercpuFolds, 1)
		s.atomic(t, &f.rss)
		f.rssEvents[cpu] = 0
	}
}

// allocAnonPage is the shared part of allocating and charging one anon
// page: rmqueue_pcplist (refilling the pcp list under zone->lock when it
// is empty) and the memcg charge (try_charge when the stock is empty).
func (s *Sim) allocAnonPage(t *Thread) {
	f := s.shared
	cpu := t.st.CPU
	if f.pcp[cpu] == 0 {
		// rmqueue_bulk: pcp->batch pages from the buddy lists under
		// zone->lock, whose free lists the last holder changed.
		s.spinLock(t, &f.zoneLock)
		s.mm.Meter().Add(cost.PCPRefills, 1)
		s.mm.Meter().Add(cost.BuddyPages, uint64(f.pcpBatch))
		s.atomic(t, &f.zoneFree)
		s.counterAdd(t, f.zoneFreePages, -int64(f.pcpBatch))
		s.spinUnlock(t, &f.zoneLock)
		f.pcp[cpu] = f.pcpBatch
	}
	f.pcp[cpu]--
	if f.stock[cpu] > 0 {
		f.stock[cpu]-- // consume_stock
		return
	}
	// try_charge: MEMCG_CHARGE_BATCH pages on every page counter from
	// the cgroup to the root; refill_stock keeps the rest.
	for i := range f.counters {
		s.mm.Meter().Add(cost.PageCounterCharges, 1)
		s.atomic(t, &f.counters[i])
	}
	f.stock[cpu] = memcgChargeBatch - 1
}

// freeAnonPage undoes allocAnonPage for a page never mapped (an aborted
// speculative fault's put_page): the page goes back to this CPU's pcp
// list and is uncharged from every page counter.
func (s *Sim) freeAnonPage(t *Thread) {
	f := s.shared
	f.pcp[t.st.CPU]++
	for i := range f.counters {
		s.mm.Meter().Add(cost.PageCounterCharges, 1)
		s.atomic(t, &f.counters[i])
	}
}

// mapAnonPage is the shared part of mapping a new anon page:
// page_add_new_anon_rmap's NR_ANON_MAPPED (node and memcg) and
// lru_cache_add, which flushes a full pagevec under lru_lock.
func (s *Sim) mapAnonPage(t *Thread) {
	f := s.shared
	s.counterAdd(t, f.nodeAnonMapped, 1)
	s.counterAdd(t, f.memcgAnonMapped, 1)
	s.counterAdd(t, f.lruvecAnonMapped, 1)
	cpu := t.st.CPU
	f.pagevec[cpu]++
	if f.pagevec[cpu] < pagevecSize {
		return
	}
	n := f.pagevec[cpu]
	f.pagevec[cpu] = 0
	// __pagevec_lru_add: the lruvec's lists and sizes, which the last
	// holder changed, and per page update_lru_size's statistics.
	s.spinLock(t, &f.lruLock)
	s.mm.Meter().Add(cost.LRUAddBatches, 1)
	s.mm.Meter().Add(cost.LRUAddPages, uint64(n))
	s.atomic(t, &f.lruvec)
	for range n {
		s.counterAdd(t, f.nodeInactiveAnon, 1)
		s.counterAdd(t, f.zoneInactiveAnon, 1)
		s.counterAdd(t, f.memcgInactive, 1)
		s.counterAdd(t, f.lruvecInactive, 1)
	}
	s.spinUnlock(t, &f.lruLock)
}

// newAnonPages does allocAnonPage and mapAnonPage for n pages a fault
// handler allocated and mapped in one step.
func (s *Sim) newAnonPages(t *Thread, n uint64) {
	for range n {
		s.allocAnonPage(t)
		s.mapAnonPage(t)
	}
}
