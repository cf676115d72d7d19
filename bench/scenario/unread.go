package scenario

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/bench/clock"
	"github.com/parleychat/parley/bench/report"
	"github.com/parleychat/parley/bench/stats"
)

// Defaults and bounds of UnreadConfig.
const (
	DefaultUnreadChannels    = 1000
	DefaultUnreadPerChannel  = 3
	DefaultUnreadQueries     = 500
	DefaultUnreadConcurrency = 4
	MaxUnreadChannels        = 10_000
	MaxUnreadPerChannel      = 1000
)

// queryUnreadSummary is the query Unread times.
const queryUnreadSummary = `query { unreadSummary { channels messages mentions } }`

// UnreadConfig configures Unread.
type UnreadConfig struct {
	Common
	// Channels is how many channels the reader is a member of.
	Channels int
	// UnreadPerChannel is how many messages of another user each channel
	// holds, all unread by the reader.
	UnreadPerChannel int
	// Queries is how many unreadSummary queries are timed.
	Queries int
	// Concurrency is how many queries run at once.
	Concurrency int
}

// UnreadResult is the outcome of Unread.
type UnreadResult struct {
	Prefix           string        `json:"prefix"`
	Channels         int           `json:"channels"`
	UnreadPerChannel int           `json:"unread_per_channel"`
	Seed             time.Duration `json:"seed_ns"`
	Queries          int64         `json:"queries"`
	Errors           int64         `json:"errors"`
	Latency          stats.Summary `json:"latency"`
	// Wrong counts answers whose totals differ from what was seeded.
	Wrong        int64    `json:"wrong"`
	ErrorSamples []string `json:"error_samples,omitempty"`
}

// OK reports whether every query succeeded with the seeded totals.
func (r *UnreadResult) OK() bool { return r.Queries > 0 && r.Errors == 0 && r.Wrong == 0 }

// Unread seeds one reader in Channels channels, each with
// UnreadPerChannel messages of a writer, and times Queries unreadSummary
// queries of the reader, Concurrency at a time, checking every answer's
// totals.
func Unread(ctx context.Context, cfg UnreadConfig) (*UnreadResult, error) {
	if cfg.Channels <= 0 || cfg.UnreadPerChannel < 0 || cfg.Queries <= 0 || cfg.Concurrency <= 0 {
		return nil, errors.New("unread: channels, queries and concurrency must be positive")
	}
	e, err := newEnv(cfg.Common, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	res := &UnreadResult{Prefix: e.Prefix, Channels: cfg.Channels, UnreadPerChannel: cfg.UnreadPerChannel}
	writer, err := e.token("writer")
	if err != nil {
		return nil, err
	}
	reader, err := e.token("reader")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var seeded atomic.Int64
	stop := cfg.every(func() string {
		return fmt.Sprintf("unread: seeded %s of %s channels", report.Int(seeded.Load()), report.Int(int64(cfg.Channels)))
	})
	err = parallel(ctx, cfg.Channels, setupConcurrency, func(ctx context.Context, c int) error {
		id, err := e.createRoom(ctx, "writer", "unread-"+strconv.Itoa(c), []string{"reader"})
		if err != nil {
			return err
		}
		for i := range cfg.UnreadPerChannel {
			if _, _, err := e.send(ctx, writer, id, "unread "+strconv.Itoa(i)); err != nil {
				return err
			}
		}
		seeded.Add(1)
		return nil
	})
	stop()
	if err != nil {
		return nil, fmt.Errorf("unread: seed: %w", err)
	}
	res.Seed = time.Since(start)

	wantChannels, wantMessages := cfg.Channels, cfg.Channels*cfg.UnreadPerChannel
	if cfg.UnreadPerChannel == 0 {
		wantChannels = 0
	}
	var next, failed, wrong atomic.Int64
	var lat stats.Recorder
	var errs errorSamples
	err = parallel(ctx, cfg.Concurrency, cfg.Concurrency, func(ctx context.Context, _ int) error {
		for next.Add(1) <= int64(cfg.Queries) {
			var out struct {
				UnreadSummary struct {
					Channels int `json:"channels"`
					Messages int `json:"messages"`
				} `json:"unreadSummary"`
			}
			t0 := clock.UnixNano()
			if err := e.gql.Do(ctx, reader, queryUnreadSummary, nil, &out); err != nil {
				failed.Add(1)
				errs.add(err)
				continue
			}
			lat.Add(time.Duration(clock.UnixNano() - t0))
			if s := out.UnreadSummary; s.Channels != wantChannels || s.Messages != wantMessages {
				wrong.Add(1)
				errs.add(fmt.Errorf("unreadSummary %d channels, %d messages; want %d, %d", s.Channels, s.Messages, wantChannels, wantMessages))
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("unread: %w", err)
	}
	res.Queries, res.Errors, res.Wrong = int64(lat.Count()), failed.Load(), wrong.Load()
	res.Latency = lat.Summary()
	res.ErrorSamples = errs.list()
	return res, nil
}

// Tables presents the result.
func (r *UnreadResult) Tables() []report.Table {
	t := report.Table{
		Title: fmt.Sprintf("unread: unreadSummary of a member of %s channels with %d unread messages each (seeded in %s)",
			report.Int(int64(r.Channels)), r.UnreadPerChannel, report.Duration(r.Seed.Round(time.Millisecond))),
		Columns: []string{"queries", "errors", "wrong", "p50", "p90", "p99", "max"},
		Rows: [][]string{{
			report.Int(r.Queries), report.Int(r.Errors), report.Int(r.Wrong),
			report.Duration(r.Latency.P50), report.Duration(r.Latency.P90), report.Duration(r.Latency.P99), report.Duration(r.Latency.Max),
		}},
		Notes: []string{"prefix " + r.Prefix},
	}
	for _, e := range r.ErrorSamples {
		t.Notes = append(t.Notes, "error: "+e)
	}
	return []report.Table{t}
}
