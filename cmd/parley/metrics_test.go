package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads url's metrics, failing the test unless it answers 200 in
// the text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return families
}

// metricValue returns the value of the series of family name whose labels
// include labels (a histogram's count, a counter's or gauge's value), and
// whether there is one.
func metricValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := families[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			if have[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// postBody sends a GraphQL request body and returns the response body.
func postBody(t *testing.T, base, token, body string) string {
	t.Helper()
	_, out := postGraphQL(t, base, token, body)
	return string(out)
}

// postGraphQL sends a GraphQL request body as token and returns the HTTP
// status and the response body.
func postGraphQL(t *testing.T, base, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// TestMetrics: after real traffic (queries, mutations, a refused
// document, WebSocket and SSE subscriptions, one event delivered to both),
// /metrics on the main listener shows it under parley_… names, next to the
// Go runtime and process collectors.
func TestMetrics(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":      "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET": strings.Repeat("s", 32),
	}
	token := mintToken(t, env, "--identity", "alice")
	base, _, _ := startServe(t, env)

	if got := postBody(t, base, token, `{"query":"query Me { me { identity } }"}`); !strings.Contains(got, `"alice"`) {
		t.Fatalf("Me: %s", got)
	}
	created := postBody(t, base, token, `{"query":"mutation Create { createChannel(input: {friendlyName: \"General\", type: PUBLIC}) { id } }"}`)
	var ch struct {
		Data struct{ CreateChannel struct{ ID string } }
	}
	if err := json.Unmarshal([]byte(created), &ch); err != nil || ch.Data.CreateChannel.ID == "" {
		t.Fatalf("Create: %s %v", created, err)
	}
	channel := ch.Data.CreateChannel.ID
	if got := postBody(t, base, token, `{"query":"query Secret { nope }"}`); !strings.Contains(got, "GRAPHQL_VALIDATION_FAILED") {
		t.Fatalf("invalid document: %s", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subscribe := `{"query":"subscription Added($c: ID!) { messageAdded(channelId: $c) { index body } }","variables":{"c":"` + channel + `"}}`
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for _, m := range []string{
		`{"type":"connection_init","payload":{"authorization":"Bearer ` + token + `"}}`,
		`{"id":"1","type":"subscribe","payload":` + subscribe + `}`,
		`{"id":"2","type":"subscribe","payload":{"query":"subscription Missing { messageAdded(channelId: \"nope\") { index } }"}}`,
	} {
		if err := ws.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"connection_ack", `"id":"2","type":"next","payload":{"errors"`, `"id":"2","type":"complete"`} {
		if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), want) {
			t.Fatalf("want %s, got %s %v", want, data, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql", strings.NewReader(subscribe))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	sse, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()

	// Both subscriptions are live once the gauge says so.
	for {
		if n, _ := metricValue(scrape(t, base+"/metrics"), "parley_subscriptions", nil); n == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the subscriptions did not go live")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := postBody(t, base, token, `{"query":"mutation Send($c: ID!) { sendMessage(input: {channelId: $c, body: \"hi\"}) { index } }","variables":{"c":"`+channel+`"}}`); !strings.Contains(got, `"index":0`) {
		t.Fatalf("Send: %s", got)
	}
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"body":"hi"`) {
		t.Fatalf("websocket event: %s %v", data, err)
	}
	lines := bufio.NewScanner(sse.Body)
	for lines.Scan() && !strings.Contains(lines.Text(), `"body":"hi"`) {
	}
	if err := lines.Err(); err != nil {
		t.Fatalf("event stream: %v", err)
	}

	got := scrape(t, base+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
		max    float64 // 0: no upper bound
	}{
		{"parley_graphql_operation_duration_seconds", map[string]string{"operation": "Me", "type": "query", "code": "OK"}, 1, 1},
		{"parley_graphql_operation_duration_seconds", map[string]string{"operation": "Create", "type": "mutation", "code": "OK"}, 1, 1},
		{"parley_graphql_operation_duration_seconds", map[string]string{"operation": "Send", "type": "mutation", "code": "OK"}, 1, 1},
		// A document that did not validate keeps its names out.
		{"parley_graphql_operation_duration_seconds", map[string]string{"operation": "(invalid)", "type": "unknown", "code": "GRAPHQL_VALIDATION_FAILED"}, 1, 1},
		{"parley_graphql_operation_duration_seconds", map[string]string{"operation": "Added", "type": "subscription", "code": "OK"}, 2, 2},
		{"parley_graphql_operation_duration_seconds", map[string]string{"operation": "Missing", "type": "subscription", "code": "NOT_FOUND"}, 1, 1},
		{"parley_http_request_duration_seconds", map[string]string{"handler": "/graphql", "method": "POST", "code": "200"}, 3, 0},
		{"parley_http_request_duration_seconds", map[string]string{"handler": "/graphql", "method": "POST", "code": "422"}, 1, 1},
		{"parley_http_request_duration_seconds", map[string]string{"handler": "GET /metrics", "method": "GET", "code": "200"}, 1, 0},
		{"parley_realtime_connections", map[string]string{"transport": "websocket"}, 1, 1},
		{"parley_realtime_connections", map[string]string{"transport": "sse"}, 1, 1},
		{"parley_realtime_connections_closed_slow_total", nil, 0, 0},
		{"parley_subscriptions", nil, 2, 2},
		{"parley_events_published_total", map[string]string{"result": "ok"}, 1, 0},
		{"parley_events_received_total", nil, 1, 0},
		// One execution for both subscriptions: same document, variables
		// and viewer.
		{"parley_subscription_executions_total", nil, 1, 1},
		{"parley_events_delivered_total", nil, 2, 2},
		{"parley_realtime_write_batch_messages", map[string]string{"transport": "websocket"}, 1, 0},
		{"parley_realtime_write_batch_bytes", map[string]string{"transport": "sse"}, 1, 0},
		{"parley_db_query_duration_seconds", map[string]string{"statement": "insert", "result": "ok"}, 1, 0},
		{"parley_db_query_duration_seconds", map[string]string{"statement": "select", "result": "ok"}, 1, 0},
		{"parley_presence_users", nil, 1, 1},
		{"parley_presence_connections", nil, 1, 1},
		{"parley_presence_changes_total", map[string]string{"to": "online"}, 1, 1},
		{"go_goroutines", nil, 1, 0},
		{"process_cpu_seconds_total", nil, 0, 0},
	} {
		v, ok := metricValue(got, c.name, c.labels)
		if !ok {
			t.Errorf("no %s%v", c.name, c.labels)
			continue
		}
		if v < c.min || (c.max > 0 && v > c.max) {
			t.Errorf("%s%v = %v, want %v to %v", c.name, c.labels, v, c.min, c.max)
		}
	}
	// The delivery queue's metrics exist only with a queue.
	if _, ok := got["parley_delivery_jobs"]; ok {
		t.Error("parley_delivery_jobs without a delivery queue")
	}
}

// TestMetricsAddr: with PARLEY_METRICS_ADDR, /metrics is served on that
// listener, not on the public one.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"DATABASE_URL":        "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET":   strings.Repeat("s", 32),
		"PARLEY_METRICS_ADDR": "127.0.0.1:0",
	}
	base, logs, _ := startServe(t, env)
	m := regexp.MustCompile(`msg="metrics serving" addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address in the logs:\n%s", logs)
	}
	if _, ok := scrape(t, "http://"+m[1]+"/metrics")["parley_http_request_duration_seconds"]; ok {
		t.Error("a request counted before any was made")
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "parley_") {
		t.Errorf("the public listener serves metrics: %d %.200s", resp.StatusCode, body)
	}
}
