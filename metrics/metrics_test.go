package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parleychat/parley/metrics"
	presencememory "github.com/parleychat/parley/presence/memory"
)

// TestOperationNamesBounded: the first MaxOperationNames names are labels
// of their own, one more counts as (other), and documents that did not
// validate never put their names in a label.
func TestOperationNamesBounded(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	for i := range metrics.MaxOperationNames + 1 {
		m.ObserveOperation(fmt.Sprintf("Op%d", i), true, "query", "OK", 0)
	}
	m.ObserveOperation("Op0", true, "query", "OK", 0)
	m.ObserveOperation("", true, "query", "OK", 0)
	m.ObserveOperation("Secret", false, "unknown", "GRAPHQL_VALIDATION_FAILED", 0)
	// Each label set is one series of the histogram.
	if n := testutil.CollectAndCount(m.Registry(), "parley_graphql_operation_duration_seconds"); n != metrics.MaxOperationNames+3 {
		t.Fatalf("%d series, want %d", n, metrics.MaxOperationNames+3)
	}
	m.ObserveOperation(fmt.Sprintf("Op%d", metrics.MaxOperationNames+1), true, "query", "OK", 0)
	if n := testutil.CollectAndCount(m.Registry(), "parley_graphql_operation_duration_seconds"); n != metrics.MaxOperationNames+3 {
		t.Fatalf("a name past the limit made a series: %d", n)
	}
}

// TestNilMetrics: a nil *Metrics records nothing and does not panic.
func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.ObserveHTTP("/graphql", "POST", 200, 0)
	m.ObserveOperation("Op", true, "query", "OK", 0)
	m.ObserveWriteBatch("websocket", 1, 10)
	m.ObserveQuery("select", false, 0)
	m.Watch(metrics.Sources{})
	if m.Broker(nil) != nil || m.Presence(nil) != nil {
		t.Fatal("a nil Metrics wrapped a broker or tracker")
	}
}

// TestDashboard: every metric the Grafana dashboard in deploy/ queries
// exists when every source is watched.
func TestDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "parley.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/parley.json: %v", err)
	}
	m := metrics.New()
	m.Watch(metrics.Sources{
		Connections:      func() (int, int, int64) { return 0, 0, 0 },
		Subscriptions:    func() int { return 0 },
		Hub:              func() (int64, int64, int64) { return 0, 0, 0 },
		BrokerReconnects: func() int64 { return 0 },
		Queue:            func(context.Context) (metrics.QueueStats, error) { return metrics.QueueStats{}, nil },
	})
	m.Presence(presencememory.New())
	// Histograms and vectors have series once observed.
	m.ObserveHTTP("/graphql", "POST", 200, 0)
	m.ObserveOperation("Op", true, "query", "OK", 0)
	m.ObserveWriteBatch("websocket", 1, 10)
	m.ObserveQuery("select", false, 0)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
	}
	name := regexp.MustCompile(`\b(?:parley|go|process)_[a-z_]+`)
	seen := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			for _, n := range name.FindAllString(target.Expr, -1) {
				seen++
				base := n
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if trimmed, ok := strings.CutSuffix(n, suffix); ok && have[trimmed] {
						base = trimmed
					}
				}
				if !have[base] {
					t.Errorf("panel %q queries %s, which Parley does not export", p.Title, n)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("the dashboard queries no metric")
	}
}
