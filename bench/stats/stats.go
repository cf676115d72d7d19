// Package stats records latencies and summarises them with exact
// percentiles computed from the sorted samples.
//
// Percentiles use the nearest-rank definition: the p-th percentile of n
// sorted samples is the sample at rank ⌈p/100 · n⌉ (1-based), so it is
// always one of the recorded values, P100 is the maximum and any percentile
// of a single sample is that sample. An empty recorder summarises to all
// zeros with Count 0.
package stats

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Recorder collects duration samples. It is safe for concurrent use; the
// zero value is ready to use.
type Recorder struct {
	mu      sync.Mutex
	samples []time.Duration
}

// Add records one sample. Negative samples (a clock anomaly) are recorded
// as zero, so that summaries stay non-negative.
func (r *Recorder) Add(d time.Duration) {
	d = max(d, 0)
	r.mu.Lock()
	r.samples = append(r.samples, d)
	r.mu.Unlock()
}

// Count returns the number of samples recorded so far.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.samples)
}

// Merge adds every sample of other to r. other is left unchanged; merging
// a recorder into itself is allowed and doubles its samples.
func (r *Recorder) Merge(other *Recorder) {
	other.mu.Lock()
	s := slices.Clone(other.samples)
	other.mu.Unlock()
	r.mu.Lock()
	r.samples = append(r.samples, s...)
	r.mu.Unlock()
}

// Samples returns a sorted copy of the samples.
func (r *Recorder) Samples() []time.Duration {
	r.mu.Lock()
	s := slices.Clone(r.samples)
	r.mu.Unlock()
	slices.Sort(s)
	return s
}

// Summary sorts a copy of the samples and summarises them.
func (r *Recorder) Summary() Summary {
	return Summarize(r.Samples())
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of the samples.
func (r *Recorder) Percentile(p float64) time.Duration {
	return Percentile(r.Samples(), p)
}

// Summary describes a set of samples. Durations are encoded in JSON as
// integer nanoseconds.
type Summary struct {
	Count int           `json:"count"`
	Min   time.Duration `json:"min_ns"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarize summarises samples, which must be sorted in ascending order.
func Summarize(sorted []time.Duration) Summary {
	n := len(sorted)
	if n == 0 {
		return Summary{}
	}
	var sum float64
	for _, d := range sorted {
		sum += float64(d)
	}
	return Summary{
		Count: n,
		Min:   sorted[0],
		Mean:  time.Duration(sum / float64(n)),
		P50:   Percentile(sorted, 50),
		P90:   Percentile(sorted, 90),
		P99:   Percentile(sorted, 99),
		P999:  Percentile(sorted, 99.9),
		Max:   sorted[n-1],
	}
}

// Percentile returns the nearest-rank p-th percentile of sorted (ascending)
// samples: the smallest sample such that at least p percent of the samples
// are less than or equal to it. It returns 0 for no samples; p is clamped
// to (0, 100], so p ≤ 0 gives the minimum.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The rank is computed in integer per-million units first, so that
	// e.g. p = 99.9 with n = 1000 gives exactly rank 999 rather than
	// suffering from 99.9/100*1000 = 999.0000000000001 in floating point.
	ppm := int64(math.Round(p * 10_000))
	ppm = min(max(ppm, 0), 1_000_000)
	rank := (ppm*int64(n) + 999_999) / 1_000_000 // ⌈p/100 · n⌉
	rank = min(max(rank, 1), int64(n))
	return sorted[rank-1]
}
