package scenario

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/parleychat/parley/bench/clock"
	"github.com/parleychat/parley/bench/report"
	"github.com/parleychat/parley/bench/stats"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
)

// History defaults.
const (
	// DefaultHistoryQueries is how many times each query is timed.
	DefaultHistoryQueries = 200
	// DefaultBatchSize is the rows per INSERT of the bulk fill.
	DefaultBatchSize = 1000
	// DefaultPageSize is the `last` of the timed queries.
	DefaultPageSize = 50
	// rowsPerTransaction bounds one bulk-insert transaction.
	rowsPerTransaction = 50_000
)

// HistoryConfig configures History.
type HistoryConfig struct {
	Common
	// DatabaseURL is the server's database, in DATABASE_URL's forms: the
	// messages are inserted there directly, in bulk.
	DatabaseURL string
	// Sizes are the channel sizes measured, in ascending order: one
	// channel grows to each in turn.
	Sizes []int
	// Queries is how many times each query is timed per size.
	Queries int
	// BatchSize is the rows per INSERT statement.
	BatchSize int
	// PageSize is the `last` of the timed queries.
	PageSize int
	// Filter, when not nil, is the filter of both timed queries, and the
	// fill writes the varied messages it describes.
	Filter *HistoryFilter
}

// HistorySize is the measurement at one channel size.
type HistorySize struct {
	Size int `json:"size"`
	// Added is the number of messages inserted to reach Size.
	Added int `json:"added"`
	// Fill is the time the bulk insert up to this size took.
	Fill time.Duration `json:"fill_ns"`
	// Latest times messages(channelId, last: PageSize); Deep times
	// messages(channelId, last: PageSize, before: <cursor of index
	// Size/2>).
	Latest stats.Summary `json:"latest"`
	Deep   stats.Summary `json:"deep"`
}

// HistoryResult is the outcome of History.
type HistoryResult struct {
	Prefix    string        `json:"prefix"`
	ChannelID string        `json:"channel_id"`
	Dialect   string        `json:"dialect"`
	Filter    string        `json:"filter,omitempty"`
	PageSize  int           `json:"page_size"`
	Queries   int           `json:"queries"`
	Sizes     []HistorySize `json:"sizes"`
	// LatestP99Ratio and DeepP99Ratio are p99 at the largest size ÷ p99
	// at the smallest: how the queries grow with the channel.
	LatestP99Ratio float64 `json:"latest_p99_ratio"`
	DeepP99Ratio   float64 `json:"deep_p99_ratio"`
}

// MessageCursor returns the opaque cursor Parley gives the message at
// index: base64url (unpadded) of the JSON {"k":"msg","n":index}, with n
// left out when 0, as chat/page.go encodes it. History relies on this to
// ask for a deep page without paging to it, and checks it against a
// cursor the server returned before using it.
func MessageCursor(index int) string {
	c := struct {
		K string `json:"k"`
		N int64  `json:"n,omitempty"`
	}{K: "msg", N: int64(index)}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a string and an int always encode
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// History fills one channel, through the database, to each of Sizes and
// times the latest page and a deep page over the API at each size, both
// with cfg.Filter when there is one.
//
// The channel is created through the API (so its owner and membership
// exist); the messages are inserted with GORM through the db and models
// packages, in transactions of up to 50,000 rows that also set the
// channel's next_message_index, messages_count, last_message_id and
// last_activity_us to match, so the server sees a consistent channel after
// every commit. With a filter, the fill's messages come from
// HistoryAuthors users and carry the types and mentions HistoryFilter
// describes.
func History(ctx context.Context, cfg HistoryConfig) (*HistoryResult, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("history: no database URL: pass --database-url (or set DATABASE_URL) for the bulk fill")
	}
	if len(cfg.Sizes) == 0 {
		return nil, errors.New("history: no sizes")
	}
	sizes := slices.Clone(cfg.Sizes)
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	if sizes[0] <= 0 {
		return nil, fmt.Errorf("history: size %d is not positive", sizes[0])
	}
	if cfg.Queries <= 0 {
		cfg.Queries = DefaultHistoryQueries
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	e, err := newEnv(cfg.Common, 8)
	if err != nil {
		return nil, err
	}
	store, err := db.Open(ctx, cfg.DatabaseURL, nil)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	res, err := history(ctx, e, store, cfg, sizes)
	if cerr := store.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("history: %w", cerr)
	}
	return res, err
}

func history(ctx context.Context, e *env, store *db.Store, cfg HistoryConfig, sizes []int) (*HistoryResult, error) {
	const owner = "history-owner"
	tok, err := e.token(owner)
	if err != nil {
		return nil, err
	}
	var me struct {
		Me struct{ ID string } `json:"me"`
	}
	if err := e.gql.Do(ctx, tok, queryMe, nil, &me); err != nil {
		return nil, fmt.Errorf("history: me: %w", err)
	}
	channelID, err := e.createRoom(ctx, owner, "history", nil)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	res := &HistoryResult{Prefix: e.Prefix, ChannelID: channelID, Dialect: store.Dialect(), PageSize: cfg.PageSize, Queries: cfg.Queries}
	w := historyWriters{ids: []string{me.Me.ID}, identities: []string{e.Prefix + owner}}
	if cfg.Filter != nil {
		res.Filter = cfg.Filter.String()
		for a := 1; a < HistoryAuthors; a++ {
			name := "history-author-" + strconv.Itoa(a)
			tok, err := e.token(name)
			if err != nil {
				return nil, err
			}
			if err := e.gql.Do(ctx, tok, queryMe, nil, &me); err != nil {
				return nil, fmt.Errorf("history: me: %w", err)
			}
			w.ids, w.identities = append(w.ids, me.Me.ID), append(w.identities, e.Prefix+name)
		}
	}
	have := 0
	for _, size := range sizes {
		hs := HistorySize{Size: size, Added: size - have}
		start := time.Now()
		stop := cfg.every(func() string {
			return fmt.Sprintf("history: filling to %s messages, %s", report.Int(int64(size)), seconds(time.Since(start)))
		})
		err := fill(ctx, store, channelID, w, cfg.Filter != nil, have, size, cfg.BatchSize)
		stop()
		if err != nil {
			return nil, fmt.Errorf("history: fill to %d: %w", size, err)
		}
		hs.Fill = time.Since(start)
		have = size
		if hs.Latest, hs.Deep, err = timeQueries(ctx, e, tok, channelID, w.identities, size, cfg); err != nil {
			return nil, fmt.Errorf("history at %d: %w", size, err)
		}
		res.Sizes = append(res.Sizes, hs)
	}
	first, last := res.Sizes[0], res.Sizes[len(res.Sizes)-1]
	res.LatestP99Ratio = ratio(last.Latest.P99, first.Latest.P99)
	res.DeepP99Ratio = ratio(last.Deep.P99, first.Deep.P99)
	return res, nil
}

// OK reports whether every size was measured; History checks the pages'
// contents as it goes and fails on a wrong one.
func (r *HistoryResult) OK() bool { return len(r.Sizes) > 0 }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// historyWriters are the fill's authors: user ids and identities, the
// channel's owner first.
type historyWriters struct {
	ids, identities []string
}

// fill inserts messages from index `from` up to (not including) `to`: all
// TEXT by the owner, or varied as HistoryFilter describes.
func fill(ctx context.Context, store *db.Store, channelID string, w historyWriters, varied bool, from, to, batch int) error {
	base := time.Now().UTC().Truncate(time.Microsecond)
	for lo := from; lo < to; lo += rowsPerTransaction {
		hi := min(lo+rowsPerTransaction, to)
		rows := make([]*models.Message, 0, hi-lo)
		var mentions []*models.MessageMention
		for i := lo; i < hi; i++ {
			id, err := uuid.NewV7()
			if err != nil {
				return err
			}
			m := &models.Message{
				ID: id.String(), ChannelID: channelID, Index: i, Ordinal: i, AuthorID: &w.ids[0],
				Body: "history " + strconv.Itoa(i), CreatedAt: base.Add(time.Duration(i-from) * time.Microsecond),
			}
			if varied {
				author, typ, mentioned := historyMessage(i)
				m.AuthorID, m.StoredType = &w.ids[author], typ
				if typ == models.MessageLocation {
					lat, lon := 52.52, 13.405
					m.Latitude, m.Longitude = &lat, &lon
				}
				if mentioned {
					mentions = append(mentions, &models.MessageMention{MessageID: m.ID, UserID: w.ids[0], ChannelID: channelID, Index: i})
				}
			}
			rows = append(rows, m)
		}
		if err := store.ImportMessagesWithMentions(ctx, channelID, rows, mentions, batch); err != nil {
			return fmt.Errorf("insert messages %d..%d: %w", lo, hi-1, err)
		}
	}
	return nil
}

type messagePage struct {
	Messages struct {
		Edges []struct {
			Cursor string `json:"cursor"`
			Node   struct {
				ID    string `json:"id"`
				Index int    `json:"index"`
			} `json:"node"`
		} `json:"edges"`
	} `json:"messages"`
}

// check verifies that a page holds the indexes want, in order.
func (p *messagePage) check(want []int) error {
	edges := p.Messages.Edges
	if len(edges) != len(want) {
		return fmt.Errorf("page holds %d messages, want %d (indexes %v)", len(edges), len(want), want)
	}
	for i, e := range edges {
		if e.Node.Index != want[i] {
			return fmt.Errorf("page position %d holds index %d, want %d", i, e.Node.Index, want[i])
		}
	}
	return nil
}

// timeQueries times the latest page and the deep page cfg.Queries times
// each, checking the first answer of each.
func timeQueries(ctx context.Context, e *env, tok, channelID string, authors []string, size int, cfg HistoryConfig) (latest, deep stats.Summary, err error) {
	const qLatest = `query($c: ID!, $n: Int!, $f: MessageFilter) { messages(channelId: $c, last: $n, filter: $f) { edges { cursor node { id index body createdAt } } } }`
	const qDeep = `query($c: ID!, $n: Int!, $b: String!, $f: MessageFilter) { messages(channelId: $c, last: $n, before: $b, filter: $f) { edges { cursor node { id index body createdAt } } } }`
	mid := size / 2
	vLatest := map[string]any{"c": channelID, "n": cfg.PageSize}
	vDeep := map[string]any{"c": channelID, "n": cfg.PageSize, "b": MessageCursor(mid)}
	if cfg.Filter != nil {
		vLatest["f"] = cfg.Filter.variables(authors)
		vDeep["f"] = vLatest["f"]
	}
	var rl, rd stats.Recorder
	start := time.Now()
	stop := cfg.every(func() string {
		return fmt.Sprintf("history at %s: %d+%d of %d+%d queries, %s", report.Int(int64(size)), rl.Count(), rd.Count(), cfg.Queries, cfg.Queries, seconds(time.Since(start)))
	})
	defer stop()
	for i := range cfg.Queries {
		var p messagePage
		t0 := clock.UnixNano()
		if err := e.gql.Do(ctx, tok, qLatest, vLatest, &p); err != nil {
			return latest, deep, fmt.Errorf("latest page: %w", err)
		}
		rl.Add(time.Duration(clock.UnixNano() - t0))
		if i == 0 {
			want := cfg.Filter.last(size, cfg.PageSize)
			if err := p.check(want); err != nil {
				return latest, deep, fmt.Errorf("latest page: %w", err)
			}
			// The cursor the server gave must be the one MessageCursor
			// computes, or the deep page would ask for the wrong thing.
			if len(want) > 0 {
				if got, computed := p.Messages.Edges[0].Cursor, MessageCursor(want[0]); got != computed {
					return latest, deep, fmt.Errorf("the server's cursor for index %d is %q, MessageCursor gives %q: the cursor format changed", want[0], got, computed)
				}
			}
		}
		p = messagePage{}
		t0 = clock.UnixNano()
		if err := e.gql.Do(ctx, tok, qDeep, vDeep, &p); err != nil {
			return latest, deep, fmt.Errorf("deep page: %w", err)
		}
		rd.Add(time.Duration(clock.UnixNano() - t0))
		if i == 0 {
			if err := p.check(cfg.Filter.last(mid, cfg.PageSize)); err != nil {
				return latest, deep, fmt.Errorf("deep page before index %d: %w", mid, err)
			}
		}
	}
	return rl.Summary(), rd.Summary(), nil
}

// Tables presents the result.
func (r *HistoryResult) Tables() []report.Table {
	filter := ""
	if r.Filter != "" {
		filter = ", filter: " + r.Filter
	}
	t := report.Table{
		Title: fmt.Sprintf("history: messages(channelId, last: %d%s) and a deep page (before the cursor of index N/2), %d queries each, %s",
			r.PageSize, filter, r.Queries, r.Dialect),
		Columns: []string{"messages", "fill", "fill rows/s", "latest p50", "latest p99", "latest max", "deep p50", "deep p99", "deep max"},
	}
	for _, s := range r.Sizes {
		t.Rows = append(t.Rows, []string{
			report.Int(int64(s.Size)), report.Duration(s.Fill.Round(time.Millisecond)),
			report.Rate(float64(s.Added) / max(s.Fill.Seconds(), 1e-9)),
			report.Duration(s.Latest.P50), report.Duration(s.Latest.P99), report.Duration(s.Latest.Max),
			report.Duration(s.Deep.P50), report.Duration(s.Deep.P99), report.Duration(s.Deep.Max),
		})
	}
	if len(r.Sizes) > 1 {
		first, last := r.Sizes[0].Size, r.Sizes[len(r.Sizes)-1].Size
		t.Notes = append(t.Notes, fmt.Sprintf("p99(%s)/p99(%s): latest %.2f×, deep %.2f×",
			report.Int(int64(last)), report.Int(int64(first)), r.LatestP99Ratio, r.DeepP99Ratio))
	}
	t.Notes = append(t.Notes, "fill: bulk insert through the database of the rows added for each size (one channel grows from size to size)",
		"channel "+r.ChannelID+", prefix "+r.Prefix+"; deep-page cursor computed as chat/page.go encodes it, checked against the server's")
	return []report.Table{t}
}
