package scenario

import (
	"fmt"
	"time"

	"github.com/parleychat/parley/bench/report"
)

// Tables presents the result: one row per step, and a comparison with the
// baseline when there is one.
func (r *FanoutResult) Tables() []report.Table {
	t := report.Table{
		Title: fmt.Sprintf("fanout (%s): %d room(s) × %d subscribers = %s connections over %d ws node(s); publishing to %s",
			r.Kind, r.Rooms, r.Subscribers, report.Int(int64(r.Connections)), len(r.WSNodes), r.Publisher),
		Columns: []string{"rate/s", "achieved/s", "sent", "pub err", "delivered", "expected", "ratio", "lost", "dup", "deliv/s",
			"e2e p50", "p99", "p99.9", "max", "mut p50", "mut p99"},
	}
	for _, s := range r.Steps {
		d := s.Delivery
		t.Rows = append(t.Rows, []string{
			report.Rate(s.OfferedRate), report.Rate(s.AchievedRate), report.Int(s.Sent), report.Int(s.PublishErrors),
			report.Int(d.Delivered), report.Int(d.Expected), report.Percent(s.DeliveryRatio),
			report.Int(d.Lost), report.Int(d.Duplicates), report.Rate(s.DeliveriesPerSecond),
			report.Duration(s.EndToEnd.P50), report.Duration(s.EndToEnd.P99), report.Duration(s.EndToEnd.P999), report.Duration(s.EndToEnd.Max),
			report.Duration(s.Mutation.P50), report.Duration(s.Mutation.P99),
		})
	}
	t.Notes = append(t.Notes, fmt.Sprintf("setup %s, connect %s, warm-up %s; prefix %s; e2e = sendMessage call start → frame parsed by the subscriber",
		report.Duration(r.Setup.Round(time.Millisecond)), report.Duration(r.Connect.Round(time.Millisecond)), report.Duration(r.Warmup.Round(time.Millisecond)), r.Prefix))
	for _, s := range r.Steps {
		if s.SkippedTicks > 0 || s.Delivery.Unexpected > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("rate %s: %d sends skipped by the pacer (publishers saturated), %d unexpected deliveries",
				report.Rate(s.OfferedRate), s.SkippedTicks, s.Delivery.Unexpected))
		}
	}
	if r.Foreign > 0 {
		t.Notes = append(t.Notes, fmt.Sprintf("%d deliveries of messages this run did not send were ignored", r.Foreign))
	}
	if r.OK() {
		t.Notes = append(t.Notes, "delivery: every message reached every subscriber exactly once")
	} else {
		for _, p := range r.Problems() {
			t.Notes = append(t.Notes, "PROBLEM: "+p)
		}
	}
	tables := []report.Table{t}
	if r.Baseline != nil {
		tables = append(tables, r.Baseline.Tables()[0], r.comparison())
	}
	return tables
}

// comparison sets the GraphQL run beside the raw baseline, step by step.
func (r *FanoutResult) comparison() report.Table {
	t := report.Table{
		Title:   "GraphQL vs raw WebSocket baseline (same rooms, subscribers and rates)",
		Columns: []string{"rate/s", "gql p50", "raw p50", "gql p99", "raw p99", "gql deliv/s", "raw deliv/s"},
	}
	for i, s := range r.Steps {
		if i >= len(r.Baseline.Steps) {
			break
		}
		b := r.Baseline.Steps[i]
		t.Rows = append(t.Rows, []string{
			report.Rate(s.OfferedRate),
			report.Duration(s.EndToEnd.P50), report.Duration(b.EndToEnd.P50),
			report.Duration(s.EndToEnd.P99), report.Duration(b.EndToEnd.P99),
			report.Rate(s.DeliveriesPerSecond), report.Rate(b.DeliveriesPerSecond),
		})
	}
	return t
}

// Plot draws end-to-end p50 and p99 (left axis, ms) and deliveries per
// second (right axis) against the offered rate; the baseline, if any, is
// dashed.
func (r *FanoutResult) Plot() report.Plot {
	p := report.Plot{
		Title:   fmt.Sprintf("Parley fan-out: %d room(s) x %d subscribers", r.Rooms, r.Subscribers),
		XLabel:  "offered rate (messages/s)",
		YLabel:  "end-to-end latency (ms)",
		Y2Label: "deliveries/s",
	}
	add := func(res *FanoutResult, dashed bool) {
		name := func(s string) string { return res.Kind + " " + s }
		var p50, p99, dps []report.Point
		for _, s := range res.Steps {
			p50 = append(p50, report.Point{X: s.OfferedRate, Y: ms(s.EndToEnd.P50)})
			p99 = append(p99, report.Point{X: s.OfferedRate, Y: ms(s.EndToEnd.P99)})
			dps = append(dps, report.Point{X: s.OfferedRate, Y: s.DeliveriesPerSecond})
		}
		p.Series = append(p.Series,
			report.Series{Name: name("p50"), Points: p50, Dashed: dashed, Color: "#1f77b4"},
			report.Series{Name: name("p99"), Points: p99, Dashed: dashed, Color: "#d62728"},
			report.Series{Name: name("deliveries/s"), Points: dps, Dashed: dashed, Right: true, Color: "#2ca02c"},
		)
	}
	add(r, false)
	if r.Baseline != nil {
		add(r.Baseline, true)
	}
	return p
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
