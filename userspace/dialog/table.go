package dialog

import "hash/maphash"

// The slot table: records in fixed pages addressed by a uint32 index, so
// that growing never copies a record and links are 4 bytes, not pointers.
// Index 0 is never used, so that 0 means "none" in every link.
const (
	pageBits      = 12
	pageSize      = 1 << pageBits
	maxTableSlots = 1<<32 - 1
	// The bucket array is sized for the cap up front (4 bytes a record),
	// so that reaching it never rehashes under Observe's lock: rechaining
	// 524,288 records into 2^20 buckets took 16 ms on the bench VM. Between
	// the bounds; past the upper one it doubles when full.
	minBuckets     = 1 << 10
	maxBucketsInit = 1 << 24
)

type page [pageSize]record

type table struct {
	pages []*page
	top   uint32 // slots below top have been handed out at least once
	free  uint32 // head of the free-slot list, linked through record.next
	used  int    // records held
	// buckets[bucket(hash)] is the head of a chain of the records whose
	// Call-ID hash falls in that bucket; the chain has no order.
	buckets []uint32
	// seed keys the bucket index. The Call-ID hash is wordhash's, whose
	// seed is public (the XDP program computes it too): indexed by its low
	// bits, Call-IDs brute-forced offline to share them would chain in one
	// bucket, and every message of any of them would walk the chain under
	// the lock both paths feed through. Keyed with a per-process random
	// seed (the runtime's AES-based hash, as Go's maps are), they cannot
	// be aimed at a bucket.
	seed maphash.Seed
	// The setup list: INIT and PROGRESS records, oldest first.
	setupHead, setupTail uint32
}

func newTable(capacity int) table {
	t := table{top: 1, buckets: make([]uint32, minBuckets), seed: maphash.MakeSeed()}
	t.reserve(capacity)
	return t
}

// reserve grows the buckets to hold capacity records at one per bucket,
// up to maxBucketsInit.
func (t *table) reserve(capacity int) {
	n := len(t.buckets)
	for n < min(capacity, maxBucketsInit) {
		n *= 2
	}
	if n > len(t.buckets) {
		t.rehash(n)
	}
}

func (t *table) at(i uint32) *record { return &t.pages[i>>pageBits][i&(pageSize-1)] }

// bucket is the head of the chain of hash.
func (t *table) bucket(hash uint64) *uint32 {
	return &t.buckets[maphash.Comparable(t.seed, hash)&uint64(len(t.buckets)-1)]
}

// alloc takes a free slot, links it into its bucket and returns its index;
// 0 when the table has no index left.
func (t *table) alloc(hash uint64) uint32 {
	var i uint32
	switch {
	case t.free != 0:
		i = t.free
		t.free = t.at(i).next
	case t.top == maxTableSlots:
		return 0
	default:
		i = t.top
		t.top++
		if int(i>>pageBits) == len(t.pages) {
			t.pages = append(t.pages, new(page))
		}
	}
	t.used++
	if t.used > len(t.buckets) {
		t.rehash(2 * len(t.buckets))
	}
	r := t.at(i)
	r.hash = hash
	b := t.bucket(hash)
	r.next = *b
	*b = i
	return i
}

// release unlinks the record at i from its bucket, clears it and frees the
// slot. The caller has unlinked it from the setup list.
func (t *table) release(i uint32) {
	r := t.at(i)
	for p := t.bucket(r.hash); *p != 0; p = &t.at(*p).next {
		if *p == i {
			*p = r.next
			break
		}
	}
	*r = record{next: t.free}
	t.free = i
	t.used--
}

// rehash replaces the buckets with n of them (a power of two) and
// rechains every record.
func (t *table) rehash(n int) {
	t.buckets = make([]uint32, n)
	for i := uint32(1); i < t.top; i++ {
		r := t.at(i)
		if r.seq == 0 {
			continue
		}
		b := t.bucket(r.hash)
		r.next = *b
		*b = i
	}
}

// newest returns the index of the newest record with this hash, 0 if none.
func (t *table) newest(hash uint64) uint32 {
	var best uint32
	var bestSeq uint64
	for i := *t.bucket(hash); i != 0; {
		r := t.at(i)
		if r.hash == hash && r.seq > bestSeq {
			best, bestSeq = i, r.seq
		}
		i = r.next
	}
	return best
}

func (t *table) setupAppend(i uint32) {
	r := t.at(i)
	r.setupPrev, r.setupNext = t.setupTail, 0
	if t.setupTail != 0 {
		t.at(t.setupTail).setupNext = i
	} else {
		t.setupHead = i
	}
	t.setupTail = i
}

func (t *table) setupRemove(i uint32) {
	r := t.at(i)
	if r.setupPrev != 0 {
		t.at(r.setupPrev).setupNext = r.setupNext
	} else {
		t.setupHead = r.setupNext
	}
	if r.setupNext != 0 {
		t.at(r.setupNext).setupPrev = r.setupPrev
	} else {
		t.setupTail = r.setupPrev
	}
	r.setupPrev, r.setupNext = 0, 0
}
