package bench

import (
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff < -0.07 || diff > 0.07 {
			t.Errorf("Quantile(%v) = %v, want %v within 7%%", tc.q, got, tc.want)
		}
	}
	if got, want := h.Count(), uint64(1000); got != want {
		t.Errorf("Count() = %d, want %d", got, want)
	}
}

func TestBucketsAreOrdered(t *testing.T) {
	last := -1
	for us := uint64(0); us < 1<<30; us = us*9/8 + 1 {
		b := bucketOf(us)
		if b < last {
			t.Fatalf("bucketOf(%d) = %d, below bucketOf of a smaller value (%d)", us, b, last)
		}
		if lo := lowerBound(b); lo > us {
			t.Fatalf("lowerBound(bucketOf(%d)) = %d, above the value", us, lo)
		}
		last = b
	}
}

func TestHistoryIsDeterministic(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	h := History{People: 1000, Now: now}
	a, b := h.Event(42), h.Event(42)
	if a != b {
		t.Fatalf("Event(42) differs between calls: %+v and %+v", a, b)
	}
	for i := range 1000 {
		e := h.Event(i)
		if !e.At.Before(now) || e.At.Before(now.Add(-historySpan-time.Hour)) {
			t.Fatalf("Event(%d).At = %v, outside the history's span", i, e.At)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("BENCH_SHORT", "1")
	t.Setenv("BENCH_EVENTS", "1234")
	t.Setenv("BENCH_DURATION", "90s")
	c, err := ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.Events != 1234 || c.Ingest != 90*time.Second || c.Rows != 300_000 || !c.Short {
		t.Errorf("config = %+v, want events 1234, 90s of ingest and the short rows", c)
	}
	t.Setenv("BENCH_CLIENTS", "many")
	if _, err := ConfigFromEnv(); err == nil {
		t.Error("BENCH_CLIENTS=many: no error")
	}
}

// TestHistoryInOrder checks the layout of a history of known length: in
// time order but for one event in fifty, each late by at most a week;
// half of the events in the last 60 days; all within the span.
func TestHistoryInOrder(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	const n = 20_000
	h := History{People: 1000, Now: now, Events: n}
	var late, recent int
	var latest time.Time
	for i := range n {
		e := h.Event(i)
		if e.At.After(now) || e.At.Before(now.Add(-historySpan-lateBy-time.Hour)) {
			t.Fatalf("Event(%d).At = %v, outside the history's span", i, e.At)
		}
		if e.At.Before(latest) {
			late++
			if latest.Sub(e.At) > lateBy+time.Hour {
				t.Fatalf("Event(%d) is %v behind the latest before it, more than a week", i, latest.Sub(e.At))
			}
		} else {
			latest = e.At
		}
		if now.Sub(e.At) <= busySpan {
			recent++
		}
	}
	if late < n/100 || late > n/25 {
		t.Errorf("%d of %d events late, want about one in fifty", late, n)
	}
	// Half fall in the last 60 days, and a 60/395 share of the other half.
	want := n/2 + n/2*60/395
	if recent < want*95/100 || recent > want*105/100 {
		t.Errorf("%d of %d events in the last 60 days, want about %d", recent, n, want)
	}
}
