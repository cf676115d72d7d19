package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/bench/client"
	"github.com/parleychat/parley/bench/rawserver"
	"github.com/parleychat/parley/bench/report"
	"github.com/parleychat/parley/bench/stats"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/ratelimit"
)

// newServer starts an in-process Parley on SQLite and returns the Common
// settings that target it.
func newServer(t *testing.T) (Common, *parleytest.Server) {
	t.Helper()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	gql, err := client.GraphQLURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := client.WebSocketURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the server's cleanup, so it runs first: the server
	// records disconnects after the sockets close, and must not find its
	// database closed.
	t.Cleanup(func() { waitOffline(t, srv) })
	return Common{Target: Target{HTTP: []string{gql}, WS: []string{ws}, Secret: srv.Secret}}, srv
}

// waitOffline waits until the server has recorded every disconnect.
func waitOffline(t *testing.T, srv *parleytest.Server) {
	t.Helper()
	ctx := context.Background()
	var ids []string
	if err := srv.Store.DB(ctx).Model(&models.User{}).Pluck("id", &ids).Error; err != nil {
		t.Errorf("list users: %v", err)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		online, err := srv.Presence.Online(ctx, ids)
		if err != nil {
			t.Errorf("presence: %v", err)
			return
		}
		n := 0
		for _, on := range online {
			if on {
				n++
			}
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d users still online 5 s after the run", n)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// checkSummary asserts that a summary is sane: non-negative and ordered.
func checkSummary(t *testing.T, name string, s stats.Summary, wantCount bool) {
	t.Helper()
	if wantCount && s.Count == 0 {
		t.Errorf("%s: no samples", name)
	}
	if s.Min < 0 || s.P50 < s.Min || s.P99 < s.P50 || s.P999 < s.P99 || s.Max < s.P999 {
		t.Errorf("%s: summary out of order: %+v", name, s)
	}
}

func printTables(t *testing.T, tables []report.Table) {
	t.Helper()
	var b bytes.Buffer
	if err := report.WriteTables(&b, tables); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
}

func fanoutConfig(c Common) FanoutConfig {
	return FanoutConfig{
		Common: c, Rooms: 2, Subscribers: 3, Rates: []float64{20}, StepDuration: time.Second,
		Drain: 2 * time.Second, WarmupTimeout: 10 * time.Second,
	}
}

func checkFanout(t *testing.T, res *FanoutResult) {
	t.Helper()
	if !res.OK() {
		t.Fatalf("fanout problems: %v", res.Problems())
	}
	if len(res.Steps) != 1 {
		t.Fatalf("%d steps", len(res.Steps))
	}
	s := res.Steps[0]
	if s.Sent == 0 || s.DeliveryRatio != 1 || s.Delivery.Expected != s.Sent*3 || s.Delivery.Duplicates != 0 {
		t.Fatalf("step = %+v", s)
	}
	if s.AchievedRate <= 0 || s.DeliveriesPerSecond <= 0 {
		t.Fatalf("rates: achieved %v, deliveries/s %v", s.AchievedRate, s.DeliveriesPerSecond)
	}
	checkSummary(t, "e2e", s.EndToEnd, true)
	checkSummary(t, "mutation", s.Mutation, true)
	if int64(s.EndToEnd.Count) != s.Delivery.Delivered {
		t.Fatalf("%d latency samples for %d deliveries", s.EndToEnd.Count, s.Delivery.Delivered)
	}
}

func TestFanout(t *testing.T) {
	t.Parallel()
	c, _ := newServer(t)
	res, err := Fanout(testCtx(t), fanoutConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, res)
	if res.Kind != "graphql" || res.Connections != 6 {
		t.Fatalf("result = %+v", res)
	}
	printTables(t, res.Tables())
	var b bytes.Buffer
	if err := res.Plot().SVG(&b); err != nil {
		t.Fatal(err)
	}
}

func TestRawFanout(t *testing.T) {
	t.Parallel()
	res, err := RawFanout(testCtx(t), fanoutConfig(Common{}))
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, res)
	if res.Kind != "raw" {
		t.Fatalf("kind = %q", res.Kind)
	}
	printTables(t, res.Tables())
}

func TestIdle(t *testing.T) {
	// Not parallel: it measures this process (the server) while idle.
	c, _ := newServer(t)
	res, err := Idle(testCtx(t), IdleConfig{Common: c, Connections: 6, Rooms: 2, Duration: time.Second, ServerPID: os.Getpid(), WarmupTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Alive != 6 {
		t.Fatalf("alive %d of %d", res.Alive, res.Connections)
	}
	if res.Before == nil || res.AfterOpen == nil || res.AfterHold == nil {
		t.Fatalf("no process samples: %+v", res)
	}
	for _, s := range []*ProcSample{res.Before, res.AfterOpen, res.AfterHold} {
		if s.RSSBytes <= 0 || s.Threads <= 0 || s.Goroutines != -1 {
			t.Fatalf("sample = %+v", s)
		}
	}
	if res.GoroutinesPerConnection != -1 {
		t.Fatalf("goroutines per connection = %v without a pprof URL", res.GoroutinesPerConnection)
	}
	printTables(t, res.Tables())
}

func TestWrite(t *testing.T) {
	t.Parallel()
	c, _ := newServer(t)
	res, err := Write(testCtx(t), WriteConfig{Common: c, Writers: 4, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || len(res.Channels) != 1 {
		t.Fatalf("write problems: %+v", res.Channels)
	}
	ch := res.Channels[0]
	if res.Sent == 0 || res.Errors != 0 || ch.Stored != int(res.Sent) || ch.Acknowledged != int(res.Sent) {
		t.Fatalf("sent %d errors %d, channel %+v", res.Sent, res.Errors, ch)
	}
	if res.Rate <= 0 {
		t.Fatalf("rate = %v", res.Rate)
	}
	checkSummary(t, "latency", res.Latency, true)
	printTables(t, res.Tables())
}

// TestWriteWithClientIDsAndMentions: the write scenario's message
// fields reach the server, and its checks still pass.
func TestWriteWithClientIDsAndMentions(t *testing.T) {
	t.Parallel()
	c, _ := newServer(t)
	res, err := Write(testCtx(t), WriteConfig{Common: c, Writers: 3, Duration: 500 * time.Millisecond, ClientIDs: true, Mentions: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Sent == 0 || res.Errors != 0 || !res.ClientIDs || res.Mentions != 2 {
		t.Fatalf("write with client ids and mentions: %+v", res)
	}
	printTables(t, res.Tables())
}

func TestUnread(t *testing.T) {
	t.Parallel()
	c, _ := newServer(t)
	res, err := Unread(testCtx(t), UnreadConfig{Common: c, Channels: 5, UnreadPerChannel: 2, Queries: 20, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Queries != 20 {
		t.Fatalf("unread: %+v", res)
	}
	checkSummary(t, "latency", res.Latency, true)
	printTables(t, res.Tables())
}

func TestHistory(t *testing.T) {
	t.Parallel()
	c, srv := newServer(t)
	res, err := History(testCtx(t), HistoryConfig{Common: c, DatabaseURL: srv.DatabaseURL, Sizes: []int{200, 120}, Queries: 5, BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sizes) != 2 || res.Sizes[0].Size != 120 || res.Sizes[1].Size != 200 || res.Sizes[1].Added != 80 {
		t.Fatalf("sizes = %+v", res.Sizes)
	}
	for _, s := range res.Sizes {
		checkSummary(t, "latest", s.Latest, true)
		checkSummary(t, "deep", s.Deep, true)
		if s.Latest.Count != 5 || s.Deep.Count != 5 {
			t.Fatalf("counts %d %d", s.Latest.Count, s.Deep.Count)
		}
	}
	if res.LatestP99Ratio <= 0 || res.DeepP99Ratio <= 0 {
		t.Fatalf("ratios %v %v", res.LatestP99Ratio, res.DeepP99Ratio)
	}
	// The API sees the bulk-inserted channel as if the messages had been
	// sent: counters and last message match.
	var out struct {
		Channel struct {
			MessagesCount    int
			LastMessageIndex int
			LastMessage      struct{ Index int }
		}
	}
	cl := srv.Client(res.Prefix + "history-owner")
	cl.Do(`query($c: ID!) { channel(id: $c) { messagesCount lastMessageIndex lastMessage { index } } }`, map[string]any{"c": res.ChannelID}, &out)
	if out.Channel.MessagesCount != 200 || out.Channel.LastMessageIndex != 199 || out.Channel.LastMessage.Index != 199 {
		t.Fatalf("channel after fill = %+v", out.Channel)
	}
	// A message sent through the API continues the sequence.
	var sent struct{ SendMessage struct{ Index int } }
	cl.Do(`mutation($in: SendMessageInput!) { sendMessage(input: $in) { index } }`, map[string]any{"in": map[string]any{"channelId": res.ChannelID, "body": "after"}}, &sent)
	if sent.SendMessage.Index != 200 {
		t.Fatalf("next index = %d, want 200", sent.SendMessage.Index)
	}
	printTables(t, res.Tables())
}

// TestHistoryFilter: with a filter, the fill varies authors, types and
// mentions, and both timed pages (checked by History against the
// filter's own reading of the fill) hold what the filter keeps.
func TestHistoryFilter(t *testing.T) {
	t.Parallel()
	c, srv := newServer(t)
	for _, spec := range []string{"types=MEDIA", "types=text+LOCATION,authors=1+2", "authors=3", "hasMedia=true", "hasMedia=false,mentionsMe=false", "mentionsMe=true"} {
		f, err := ParseHistoryFilter(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		res, err := History(testCtx(t), HistoryConfig{Common: c, DatabaseURL: srv.DatabaseURL, Sizes: []int{150, 400}, Queries: 2, BatchSize: 64, PageSize: 10, Filter: f})
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if res.Filter != spec || len(res.Sizes) != 2 {
			t.Fatalf("%s: %+v", spec, res)
		}
	}
	for _, bad := range []string{"types", "types=NOPE", "authors=4", "authors=x", "hasMedia=maybe", "colour=red", "authors=1,authors=2"} {
		if _, err := ParseHistoryFilter(bad); err == nil {
			t.Errorf("ParseHistoryFilter(%q) accepted", bad)
		}
	}
}

func TestMessageCursor(t *testing.T) {
	t.Parallel()
	// chat/page.go: base64url(JSON{"k":"msg","n":index}), n omitted at 0.
	cases := map[int]string{0: "eyJrIjoibXNnIn0", 5: "eyJrIjoibXNnIiwibiI6NX0"}
	for idx, want := range cases {
		if got := MessageCursor(idx); got != want {
			t.Errorf("MessageCursor(%d) = %q, want %q", idx, got, want)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	t.Parallel()
	rss, threads, err := parseProcStatus(strings.NewReader("Name:\tx\nVmRSS:\t   2048 kB\nThreads:\t7\n"))
	if err != nil || rss != 2048*1024 || threads != 7 {
		t.Fatalf("rss %d threads %d err %v", rss, threads, err)
	}
	if _, _, err := parseProcStatus(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatal("no error for a status without VmRSS")
	}
}

func TestBodyRoundTrip(t *testing.T) {
	t.Parallel()
	step, ns, ok := parseBody(messageBody(3, 17, 123456789))
	if !ok || step != 3 || ns != 123456789 {
		t.Fatalf("parsed %d %d %v", step, ns, ok)
	}
	for _, bad := range []string{"", "hello", "pb 1 2", "pb x 2 3", "probe 1"} {
		if _, _, ok := parseBody(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestHostile(t *testing.T) {
	t.Parallel()
	c, _ := newServer(t)
	// The server runs in this process: its CPU includes the client's,
	// so the CPU budget is not what is tested here.
	res, err := Hostile(testCtx(t), HostileConfig{Common: c, Requests: 2, ServerPID: os.Getpid(), MaxCPU: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || len(res.Documents) != 7 {
		t.Fatalf("hostile problems: %+v", res.Documents)
	}
	for _, d := range res.Documents {
		if d.CPU < 0 || d.Status >= 500 || (d.Hostile && d.Code == "") || (!d.Hostile && d.Code != "") {
			t.Errorf("%s ×%d: %+v", d.Name, d.Scale, d)
		}
	}
	printTables(t, res.Tables())
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	cpu, err := parseProcStat("4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3")
	if err != nil || cpu != 3*time.Second {
		t.Fatalf("cpu %v err %v", cpu, err)
	}
	if _, err := parseProcStat("4242 (x) S 1"); err == nil {
		t.Fatal("no error for a short line")
	}
}

// TestRateLimitHint: against a server with rate limits, a write run's
// errors come with a hint to turn them off.
func TestRateLimitHint(t *testing.T) {
	t.Parallel()
	// Two mutations per writer: writer 0 creates the channel and sends
	// once, writer 1 sends twice; the next send of either is refused
	// however slowly the machine runs the one-second window.
	limits := ratelimit.Config{Mutations: ratelimit.Rate{Events: 1, Per: time.Hour, Burst: 2}}
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{RateLimits: &limits})
	gql, err := client.GraphQLURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := Common{Target: Target{HTTP: []string{gql}, Secret: srv.Secret}}
	res, err := Write(testCtx(t), WriteConfig{Common: c, Writers: 2, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range res.ErrorSamples {
		found = found || strings.Contains(s, "RATE_LIMITED") && strings.Contains(s, "PARLEY_RATE_LIMITS=off")
	}
	if res.Errors == 0 || !found {
		t.Fatalf("sent %d, %d errors, samples %q: want RATE_LIMITED with the hint", res.Sent, res.Errors, res.ErrorSamples)
	}
	if err := WithRateLimitHint(client.Errors{{Message: "x", Extensions: map[string]any{"code": "RATE_LIMITED"}}}); !strings.Contains(err.Error(), "PARLEY_RATE_LIMITS=off") {
		t.Fatalf("hint: %v", err)
	}
}

// TestCutMessageAdded: the fan-out reader's fast path reads Parley's
// messageAdded results and refuses everything it cannot read exactly.
func TestCutMessageAdded(t *testing.T) {
	for _, tc := range []struct {
		in, id, body string
		ok           bool
	}{
		{`{"data":{"messageAdded":{"id":"m1","index":3,"body":"pb 0 1 2","createdAt":"2026-12-01T00:00:00Z"}}}`, "m1", "pb 0 1 2", true},
		{`{"data":{"messageAdded":{"body":"b","id":"m1"}}}`, "m1", "b", true},
		{`{"data":{"messageAdded":{"id":"m1","body":"a\"b"}}}`, "", "", false},
		{`{"data":{"messageAdded":{"id":"m1","x":{"y":1},"body":"b"}}}`, "", "", false},
		{`{"data":{"messageAdded":{"id":"m1","body":"b"}},"errors":[{"message":"x"}]}`, "", "", false},
		{`{"data":{"messageAdded":{"body":"b"}}}`, "", "", false},
		{`{"data": {"messageAdded":{"id":"m1"}}}`, "", "", false},
		{`{"data":{"messageAdded":{"id":"m1"`, "", "", false},
		{`{"data":{"messageAdded":{"id":"m1"}}}x`, "", "", false},
	} {
		id, body, ok := cutMessageAdded([]byte(tc.in))
		if ok != tc.ok || (ok && (id != tc.id || body != tc.body)) {
			t.Errorf("cutMessageAdded(%s) = %q, %q, %v; want %q, %q, %v", tc.in, id, body, ok, tc.id, tc.body, tc.ok)
		}
	}
}

// TestCutIDBody: the raw fan-out reader's fast path reads the raw server's
// messages as it encodes them.
func TestCutIDBody(t *testing.T) {
	m := rawserver.Message{ID: "r-1", Index: 7, Body: "pb 0 1 2", CreatedAt: "2026-12-01T00:00:00Z"}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if id, body, ok := cutIDBody(data); !ok || id != m.ID || body != m.Body {
		t.Fatalf("cutIDBody(%s) = %q, %q, %v", data, id, body, ok)
	}
	for _, bad := range []string{`{"id":"a"} `, `{"id":"a",}`, `{"index":1}`, `["id","a"]`, `{"id":"a","body":"b"`} {
		if _, _, ok := cutIDBody([]byte(bad)); ok {
			t.Errorf("cutIDBody(%s) is ok", bad)
		}
	}
}
