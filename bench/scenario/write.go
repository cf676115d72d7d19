package scenario

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/bench/clock"
	"github.com/parleychat/parley/bench/report"
	"github.com/parleychat/parley/bench/stats"
)

// verifyPageSize is the page size of the index check (Parley's default
// maximum page size).
const verifyPageSize = 100

// WriteConfig configures Write.
type WriteConfig struct {
	Common
	// Writers is the number of concurrent senders, each its own user.
	Writers int
	// Channels spreads the writers over this many channels (writer i
	// sends to channel i mod Channels); 0 is 1, all writers contending for
	// one channel's index.
	Channels int
	// Duration is how long the writers send, as fast as they can.
	Duration time.Duration
	// Push registers a device for every writer (FCM and APNs in turn)
	// before the run, so that each message is pushed to the other
	// writers of its channel (who hold no WebSocket: all offline).
	Push bool
	// ClientIDs gives every message a clientMessageId (unique: no send
	// is a retry), the idempotent send's lookup on every write.
	ClientIDs bool
	// Mentions makes every message mention this many other writers of
	// its channel (at most MaxWriteMentions and Writers-1).
	Mentions int
}

// MaxWriteMentions caps WriteConfig.Mentions: Parley's limit per message.
const MaxWriteMentions = 25

// WriteResult is the outcome of Write.
type WriteResult struct {
	Prefix   string        `json:"prefix"`
	Writers  int           `json:"writers"`
	Duration time.Duration `json:"duration_ns"`
	// Sent counts acknowledged sendMessage calls; Errors the failed ones.
	Sent   int64 `json:"sent"`
	Errors int64 `json:"errors"`
	// Rate is Sent per second of the sending window.
	Rate         float64        `json:"mutations_per_second"`
	Latency      stats.Summary  `json:"latency"`
	ErrorSamples []string       `json:"error_samples,omitempty"`
	Channels     []ChannelCheck `json:"channels"`
	Verify       time.Duration  `json:"verify_ns"`
	// ClientIDs and Mentions are WriteConfig's.
	ClientIDs bool `json:"client_ids,omitempty"`
	Mentions  int  `json:"mentions,omitempty"`
}

// extras names the message fields the run set, for the table's title.
func (r *WriteResult) extras() string {
	s := ""
	if r.ClientIDs {
		s += ", with clientMessageId"
	}
	if r.Mentions > 0 {
		s += fmt.Sprintf(", %d mention(s) each", r.Mentions)
	}
	return s
}

// ChannelCheck is the index check of one channel after the run.
type ChannelCheck struct {
	ID string `json:"id"`
	// Acknowledged counts messages whose sendMessage returned; Stored
	// counts messages listed by messages(channelId, first: 100) paging.
	Acknowledged int `json:"acknowledged"`
	Stored       int `json:"stored"`
	// Gapless is true when the stored indexes are exactly 0..Stored-1.
	Gapless bool `json:"gapless"`
	// Missing counts acknowledged messages not listed; Mismatched those
	// listed at another index than sendMessage returned.
	Missing    int    `json:"missing"`
	Mismatched int    `json:"mismatched"`
	Problem    string `json:"problem,omitempty"`
}

// OK reports whether every channel is gapless and holds every
// acknowledged message at its acknowledged index.
func (r *WriteResult) OK() bool {
	for _, c := range r.Channels {
		if !c.Gapless || c.Missing != 0 || c.Mismatched != 0 || c.Problem != "" {
			return false
		}
	}
	return len(r.Channels) > 0
}

// Write runs Writers concurrent senders as fast as they can for Duration,
// then pages through every channel to check that its indexes are gapless
// and hold every acknowledged message.
func Write(ctx context.Context, cfg WriteConfig) (*WriteResult, error) {
	if cfg.Writers <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("write: writers and duration must be positive")
	}
	if cfg.Channels <= 0 {
		cfg.Channels = 1
	}
	if cfg.Mentions < 0 || cfg.Mentions > MaxWriteMentions {
		return nil, fmt.Errorf("write: mentions must be 0 to %d", MaxWriteMentions)
	}
	cfg.Mentions = min(cfg.Mentions, cfg.Writers-1)
	cfg.Channels = min(cfg.Channels, cfg.Writers)
	e, err := newEnv(cfg.Common, cfg.Writers)
	if err != nil {
		return nil, err
	}
	res := &WriteResult{Prefix: e.Prefix, Writers: cfg.Writers, ClientIDs: cfg.ClientIDs, Mentions: cfg.Mentions}
	writers := make([]string, cfg.Writers)
	toks := make([]string, cfg.Writers)
	for i := range writers {
		writers[i] = "writer-" + strconv.Itoa(i)
		if toks[i], err = e.token(writers[i]); err != nil {
			return nil, err
		}
	}
	channels := make([]string, cfg.Channels)
	err = parallel(ctx, cfg.Channels, 4, func(ctx context.Context, c int) error {
		id, err := e.createRoom(ctx, writers[0], "write-"+strconv.Itoa(c), writers[1:])
		channels[c] = id
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("write: seed: %w", err)
	}
	if cfg.Push {
		err = parallel(ctx, cfg.Writers, setupConcurrency, func(ctx context.Context, w int) error {
			provider, token := "FCM", e.Prefix+"fcm-"+strconv.Itoa(w)
			if w%2 == 1 {
				provider, token = "APNS", fmt.Sprintf("%064x", w)
			}
			return e.gql.Do(ctx, toks[w], mutationRegisterPush, map[string]any{"p": provider, "t": token}, nil)
		})
		if err != nil {
			return nil, fmt.Errorf("write: register devices: %w", err)
		}
	}

	// acked[c] maps the id of each acknowledged message of channel c to
	// its index.
	acked := make([]map[string]int, cfg.Channels)
	for c := range acked {
		acked[c] = map[string]int{}
	}
	// mentions[w] are the identities writer w mentions: the next writers.
	mentions := make([][]string, cfg.Writers)
	for w := range mentions {
		for k := 1; k <= cfg.Mentions; k++ {
			mentions[w] = append(mentions[w], e.Prefix+writers[(w+k)%cfg.Writers])
		}
	}
	var mu sync.Mutex
	var sent, failed atomic.Int64
	var lat stats.Recorder
	var errs errorSamples
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	stop := cfg.every(func() string {
		el := time.Since(start)
		return fmt.Sprintf("write: %s/%s, %s sent (%s/s), %d errors", seconds(el), seconds(cfg.Duration),
			report.Int(sent.Load()), report.Rate(float64(sent.Load())/el.Seconds()), failed.Load())
	})
	var wg sync.WaitGroup
	for w := range cfg.Writers {
		wg.Go(func() {
			c := w % cfg.Channels
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				in := map[string]any{"channelId": channels[c], "body": "w " + strconv.Itoa(w) + " " + strconv.Itoa(seq)}
				if cfg.ClientIDs {
					in["clientMessageId"] = strconv.Itoa(w) + "-" + strconv.Itoa(seq)
				}
				if len(mentions[w]) > 0 {
					in["mentions"] = mentions[w]
				}
				t0 := clock.UnixNano()
				id, idx, err := e.sendInput(ctx, toks[w], in)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						errs.add(err)
					}
					continue
				}
				lat.Add(time.Duration(clock.UnixNano() - t0))
				sent.Add(1)
				mu.Lock()
				acked[c][id] = idx
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stop()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	res.Duration = time.Since(start)
	res.Sent, res.Errors = sent.Load(), failed.Load()
	res.Rate = float64(res.Sent) / res.Duration.Seconds()
	res.Latency = lat.Summary()
	res.ErrorSamples = errs.list()

	start = time.Now()
	for c, id := range channels {
		check, err := verifyChannel(ctx, e, toks[0], id, acked[c])
		if err != nil {
			return nil, fmt.Errorf("write: verify channel %s: %w", id, err)
		}
		res.Channels = append(res.Channels, check)
	}
	res.Verify = time.Since(start)
	return res, nil
}

// verifyChannel pages through a channel oldest first and compares its
// indexes with the acknowledged messages.
func verifyChannel(ctx context.Context, e *env, tok, channelID string, acked map[string]int) (ChannelCheck, error) {
	check := ChannelCheck{ID: channelID, Acknowledged: len(acked), Gapless: true}
	const q = `query($c: ID!, $n: Int!, $a: String) { messages(channelId: $c, first: $n, after: $a) { edges { node { id index } } pageInfo { hasNextPage endCursor } } }`
	var after *string
	stored := map[string]int{}
	for {
		var out struct {
			Messages struct {
				Edges []struct {
					Node struct {
						ID    string `json:"id"`
						Index int    `json:"index"`
					} `json:"node"`
				} `json:"edges"`
				PageInfo struct {
					HasNextPage bool    `json:"hasNextPage"`
					EndCursor   *string `json:"endCursor"`
				} `json:"pageInfo"`
			} `json:"messages"`
		}
		if err := e.gql.Do(ctx, tok, q, map[string]any{"c": channelID, "n": verifyPageSize, "a": after}, &out); err != nil {
			return check, err
		}
		for _, edge := range out.Messages.Edges {
			if edge.Node.Index != check.Stored && check.Gapless {
				check.Gapless = false
				check.Problem = fmt.Sprintf("index %d where %d was due", edge.Node.Index, check.Stored)
			}
			stored[edge.Node.ID] = edge.Node.Index
			check.Stored++
		}
		if !out.Messages.PageInfo.HasNextPage {
			break
		}
		if out.Messages.PageInfo.EndCursor == nil || len(out.Messages.Edges) == 0 {
			check.Problem = "hasNextPage without an end cursor"
			break
		}
		after = out.Messages.PageInfo.EndCursor
	}
	for id, idx := range acked {
		got, ok := stored[id]
		switch {
		case !ok:
			check.Missing++
		case got != idx:
			check.Mismatched++
		}
	}
	return check, nil
}

// Tables presents the result.
func (r *WriteResult) Tables() []report.Table {
	t := report.Table{
		Title: fmt.Sprintf("write: %d writers, %d channel(s), as fast as they can for %s%s",
			r.Writers, len(r.Channels), report.Duration(r.Duration.Round(time.Millisecond)), r.extras()),
		Columns: []string{"sent", "errors", "mutations/s", "p50", "p90", "p99", "p99.9", "max"},
		Rows: [][]string{{
			report.Int(r.Sent), report.Int(r.Errors), report.Rate(r.Rate),
			report.Duration(r.Latency.P50), report.Duration(r.Latency.P90), report.Duration(r.Latency.P99),
			report.Duration(r.Latency.P999), report.Duration(r.Latency.Max),
		}},
	}
	t.Notes = append(t.Notes, "prefix "+r.Prefix)
	for _, e := range r.ErrorSamples {
		t.Notes = append(t.Notes, "error: "+e)
	}
	v := report.Table{
		Title:   fmt.Sprintf("index check (messages(channelId, first: %d) paging, %s)", verifyPageSize, report.Duration(r.Verify.Round(time.Millisecond))),
		Columns: []string{"channel", "acknowledged", "stored", "gapless", "missing", "mismatched"},
	}
	for _, c := range r.Channels {
		gapless := "yes"
		if !c.Gapless {
			gapless = "NO: " + c.Problem
		}
		v.Rows = append(v.Rows, []string{c.ID, report.Int(int64(c.Acknowledged)), report.Int(int64(c.Stored)), gapless,
			report.Int(int64(c.Missing)), report.Int(int64(c.Mismatched))})
		if c.Stored > c.Acknowledged {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: %d stored messages were not acknowledged (their sendMessage failed after the commit)", c.ID, c.Stored-c.Acknowledged))
		}
	}
	if r.OK() {
		v.Notes = append(v.Notes, "every channel's indexes run 0..N-1 without gaps and hold every acknowledged message")
	}
	return []report.Table{t, v}
}
