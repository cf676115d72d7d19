package stats

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestEmpty(t *testing.T) {
	var r Recorder
	if s := r.Summary(); s != (Summary{}) {
		t.Fatalf("empty summary = %+v, want zero", s)
	}
	if p := Percentile(nil, 50); p != 0 {
		t.Fatalf("percentile of nothing = %v", p)
	}
}

func TestOneSample(t *testing.T) {
	var r Recorder
	r.Add(7 * time.Millisecond)
	s := r.Summary()
	want := 7 * time.Millisecond
	if s.Count != 1 || s.Min != want || s.Mean != want || s.P50 != want || s.P99 != want || s.P999 != want || s.Max != want {
		t.Fatalf("one sample summary = %+v", s)
	}
}

func TestUniform1To1000(t *testing.T) {
	// 1..1000 ms shuffled: nearest rank gives exactly p·10 ms.
	var r Recorder
	for _, i := range rand.Perm(1000) {
		r.Add(time.Duration(i+1) * time.Millisecond)
	}
	s := r.Summary()
	checks := []struct {
		name      string
		got, want time.Duration
	}{
		{"min", s.Min, time.Millisecond},
		{"p50", s.P50, 500 * time.Millisecond},
		{"p90", s.P90, 900 * time.Millisecond},
		{"p99", s.P99, 990 * time.Millisecond},
		{"p999", s.P999, 999 * time.Millisecond},
		{"max", s.Max, 1000 * time.Millisecond},
		{"mean", s.Mean, 500500 * time.Microsecond},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("count = %d", s.Count)
	}
}

func TestNearestRankSmallSets(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	cases := []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{ms(1, 2), 50, time.Millisecond},       // rank ⌈1⌉ = 1
		{ms(1, 2), 50.1, 2 * time.Millisecond}, // rank ⌈1.002⌉ = 2
		{ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{ms(1, 2, 3, 4), 25, time.Millisecond},
		{ms(1, 2, 3, 4), 0, time.Millisecond},       // clamped to the minimum
		{ms(1, 2, 3, 4), 150, 4 * time.Millisecond}, // clamped to the maximum
		{ms(10, 20, 30, 40, 50), 40, 20 * time.Millisecond},
	}
	for _, c := range cases {
		if got := Percentile(c.sorted, c.p); got != c.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", c.sorted, c.p, got, c.want)
		}
	}
}

func TestSkewedDistribution(t *testing.T) {
	// 990 fast samples and 10 slow ones: p99 is still fast, p99.9 is slow.
	var r Recorder
	for range 990 {
		r.Add(time.Millisecond)
	}
	for range 10 {
		r.Add(time.Second)
	}
	s := r.Summary()
	if s.P50 != time.Millisecond || s.P99 != time.Millisecond || s.P999 != time.Second || s.Max != time.Second {
		t.Fatalf("skewed summary = %+v", s)
	}
	if !(s.P50 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
		t.Fatalf("percentiles out of order: %+v", s)
	}
}

func TestNegativeClampedAndMerge(t *testing.T) {
	var a, b Recorder
	a.Add(-5 * time.Millisecond)
	b.Add(3 * time.Millisecond)
	b.Add(1 * time.Millisecond)
	a.Merge(&b)
	got := a.Samples()
	if len(got) != 3 || got[0] != 0 || got[1] != time.Millisecond || got[2] != 3*time.Millisecond {
		t.Fatalf("merged samples = %v", got)
	}
	if b.Count() != 2 {
		t.Fatalf("merge changed its source: %d samples", b.Count())
	}
}

func TestConcurrentAdd(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				r.Add(time.Duration(g*1000 + i))
			}
		})
	}
	wg.Wait()
	if r.Count() != 8000 {
		t.Fatalf("count = %d, want 8000", r.Count())
	}
	if s := r.Summary(); s.Min != 0 || s.Max != 7999 {
		t.Fatalf("summary = %+v", s)
	}
}
