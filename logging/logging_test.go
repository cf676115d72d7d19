package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/parleychat/parley/logging"
)

type key struct{}

// fromContext is a ContextAttrs as requestid's or a tracer's would be.
func fromContext(ctx context.Context) []slog.Attr {
	if v, ok := ctx.Value(key{}).(string); ok {
		return []slog.Attr{slog.String("request_id", v)}
	}
	return nil
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]logging.Format{"text": logging.Text, "JSON": logging.JSON, "Json": logging.JSON} {
		if got, err := logging.ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := logging.ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) succeeded")
	}
}

// TestJSON: one object per line, with the context's attributes, also on
// loggers made by With; none without a context.
func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logging.NewHandler(&buf, logging.JSON, slog.LevelInfo, fromContext))
	ctx := context.WithValue(context.Background(), key{}, "r1")
	log.InfoContext(ctx, "hello", "n", 1)
	log.With("component", "x").WarnContext(ctx, "again")
	log.Info("no context")
	log.DebugContext(ctx, "below the level")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	var records []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		records = append(records, m)
	}
	if records[0]["msg"] != "hello" || records[0]["request_id"] != "r1" || records[0]["n"] != float64(1) {
		t.Errorf("first record: %v", records[0])
	}
	if records[1]["component"] != "x" || records[1]["request_id"] != "r1" {
		t.Errorf("second record: %v", records[1])
	}
	if _, ok := records[2]["request_id"]; ok {
		t.Errorf("a record without context has a request_id: %v", records[2])
	}
}

func TestText(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logging.NewHandler(&buf, logging.Text, slog.LevelDebug, fromContext))
	log.DebugContext(context.WithValue(context.Background(), key{}, "r2"), "hello")
	if !strings.Contains(buf.String(), "level=DEBUG msg=hello request_id=r2") {
		t.Errorf("text line: %s", buf.String())
	}
}
