package bench

import (
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram counts latencies in microseconds in buckets about 6% wide. It
// is safe for concurrent use, so that thousands of clients record into one
// without a lock.
type Histogram struct {
	buckets [1024]atomic.Uint64
	count   atomic.Uint64
}

func bucketOf(us uint64) int {
	if us < 16 {
		return int(us)
	}
	e := max(bits.Len64(us)-5, 0)
	return min(16*e+int(us>>e), 1023)
}

// lowerBound is the smallest value of bucket i, in microseconds.
func lowerBound(i int) uint64 {
	if i < 32 {
		return uint64(i)
	}
	e := i/16 - 1
	return uint64(i%16+16) << e
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	us := max(d.Microseconds(), 0)
	h.buckets[bucketOf(uint64(us))].Add(1)
	h.count.Add(1)
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.count.Load() }

// Quantile returns the latency at q (0.5, 0.99), or 0 when empty. It is the
// middle of the bucket that holds it.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	want := uint64(q*float64(n-1)) + 1
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= want {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return time.Duration((lo+hi)/2) * time.Microsecond
		}
	}
	return 0
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
