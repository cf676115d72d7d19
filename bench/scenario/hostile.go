package scenario

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/parleychat/parley/bench/client"
	"github.com/parleychat/parley/bench/hostile"
	"github.com/parleychat/parley/bench/report"
	"github.com/parleychat/parley/bench/stats"
)

// Defaults of HostileConfig.
const (
	// DefaultHostileRequests is how many times each document is sent.
	DefaultHostileRequests = 50
	// DefaultHostileMaxCPU is the most server CPU a hostile document may
	// cost.
	DefaultHostileMaxCPU = 10 * time.Millisecond
)

// HostileConfig configures Hostile.
type HostileConfig struct {
	Common
	// Requests is how many times each document is sent, one at a time.
	Requests int
	// ServerPID is the server's process id, whose CPU time (Linux /proc)
	// is read before and after each document's requests; 0 measures
	// latency only.
	ServerPID int
	// MaxCPU is the most server CPU per request a hostile document may
	// cost for the run to pass.
	MaxCPU time.Duration
}

// HostileResult is the outcome of Hostile.
type HostileResult struct {
	Prefix    string         `json:"prefix"`
	Requests  int            `json:"requests"`
	ServerPID int            `json:"server_pid,omitempty"`
	MaxCPU    time.Duration  `json:"max_cpu_ns"`
	Documents []HostileCheck `json:"documents"`
}

// HostileCheck is what one document cost and how it was answered.
type HostileCheck struct {
	Name  string `json:"name"`
	Scale int    `json:"scale"`
	// Hostile is false for the reference document, a valid one that is
	// answered with data.
	Hostile bool `json:"hostile"`
	Bytes   int  `json:"bytes"`
	// Status and Code are those of the last answer; AnswerBytes its size.
	Status      int    `json:"status"`
	Code        string `json:"code,omitempty"`
	Message     string `json:"message,omitempty"`
	AnswerBytes int    `json:"answer_bytes"`
	// CPU is the server's CPU time per request, -1 when not measured.
	CPU     time.Duration `json:"cpu_per_request_ns"`
	Latency stats.Summary `json:"latency"`
	Problem string        `json:"problem,omitempty"`
}

// OK reports whether every hostile document was refused with a coded
// error, the reference answered, no answer was a server error, and no
// hostile document cost more than MaxCPU.
func (r *HostileResult) OK() bool {
	for _, d := range r.Documents {
		if d.Problem != "" {
			return false
		}
	}
	return len(r.Documents) > 0
}

// hostileReference is a valid document at the default field limit: the
// most validation work a document that passes the limits causes.
const hostileReference = 1000

// Hostile sends each document of package hostile, as the issue wrote it
// and ten times as large, Requests times, and a valid reference document
// at the field limit, and reports the server CPU each costs. Every request
// carries a distinct comment, so that no cache of the server answers it.
// The queries are not mutations: rate limits do not apply.
func Hostile(ctx context.Context, cfg HostileConfig) (*HostileResult, error) {
	if cfg.Requests <= 0 {
		cfg.Requests = DefaultHostileRequests
	}
	if cfg.MaxCPU <= 0 {
		cfg.MaxCPU = DefaultHostileMaxCPU
	}
	e, err := newEnv(cfg.Common, 1)
	if err != nil {
		return nil, err
	}
	tok, err := e.token("hostile")
	if err != nil {
		return nil, err
	}
	res := &HostileResult{Prefix: e.Prefix, Requests: cfg.Requests, ServerPID: cfg.ServerPID, MaxCPU: cfg.MaxCPU}
	docs := append(hostile.Documents(1), hostile.Documents(10)...)
	docs = append(docs, hostile.Document{Name: "same-field (valid)", Scale: 1, Query: hostile.SameField(hostileReference)})
	for i, d := range docs {
		if cfg.Progress != nil {
			cfg.Progress.Update(fmt.Sprintf("hostile: %s ×%d (%d/%d)", d.Name, d.Scale, i+1, len(docs)))
		}
		check, err := sendHostile(ctx, e, tok, d, i < len(docs)-1, cfg)
		if err != nil {
			return nil, err
		}
		res.Documents = append(res.Documents, check)
	}
	if cfg.Progress != nil {
		cfg.Progress.Done()
	}
	return res, nil
}

// sendHostile sends d cfg.Requests times and measures it.
func sendHostile(ctx context.Context, e *env, tok string, d hostile.Document, isHostile bool, cfg HostileConfig) (HostileCheck, error) {
	c := HostileCheck{Name: d.Name, Scale: d.Scale, Hostile: isHostile, Bytes: len(d.Query), CPU: -1}
	var lat stats.Recorder
	var before time.Duration
	if cfg.ServerPID != 0 {
		cpu, err := readProcCPU(cfg.ServerPID)
		if err != nil {
			return c, err
		}
		before = cpu
	}
	for n := range cfg.Requests {
		t0 := time.Now()
		r, err := e.gql.Send(ctx, tok, d.Query+"\n#"+strconv.Itoa(n), nil)
		lat.Add(time.Since(t0))
		if err != nil {
			var he *client.HTTPError
			if !errors.As(err, &he) {
				return c, fmt.Errorf("hostile: %s: %w", d.Name, err)
			}
			c.Status, c.Code, c.Problem = he.Status, "", "the answer is not a GraphQL response: "+he.Error()
			continue
		}
		c.Status, c.AnswerBytes, c.Code, c.Message = r.Status, r.Bytes, r.Errors.Code(), ""
		if len(r.Errors) > 0 {
			c.Message = r.Errors[0].Message
		}
		switch {
		case r.Status >= 500:
			c.Problem = "server error " + strconv.Itoa(r.Status)
		case isHostile && (len(r.Errors) == 0 || c.Code == ""):
			c.Problem = "not refused with a coded error"
		case !isHostile && len(r.Errors) > 0:
			c.Problem = "refused: " + r.Errors.Error()
		}
	}
	if cfg.ServerPID != 0 {
		after, err := readProcCPU(cfg.ServerPID)
		if err != nil {
			return c, err
		}
		c.CPU = (after - before) / time.Duration(cfg.Requests)
		if isHostile && c.CPU > cfg.MaxCPU && c.Problem == "" {
			c.Problem = fmt.Sprintf("%v of server CPU per request, over %v", c.CPU, cfg.MaxCPU)
		}
	}
	c.Latency = lat.Summary()
	return c, nil
}

// Tables prints one row per document.
func (r *HostileResult) Tables() []report.Table {
	t := report.Table{
		Title:   fmt.Sprintf("hostile: each document sent %d times, one at a time", r.Requests),
		Columns: []string{"document", "scale", "bytes", "status", "code", "answer bytes", "server CPU/request", "p50", "max"},
	}
	for _, d := range r.Documents {
		cpu := "not measured"
		if d.CPU >= 0 {
			cpu = report.Duration(d.CPU)
		}
		t.Rows = append(t.Rows, []string{
			d.Name, "×" + strconv.Itoa(d.Scale), report.Int(int64(d.Bytes)), strconv.Itoa(d.Status), d.Code,
			report.Int(int64(d.AnswerBytes)), cpu, report.Duration(d.Latency.P50), report.Duration(d.Latency.Max),
		})
		if d.Problem != "" {
			t.Notes = append(t.Notes, fmt.Sprintf("%s ×%d: %s", d.Name, d.Scale, d.Problem))
		}
	}
	if r.ServerPID == 0 {
		t.Notes = append(t.Notes, "server CPU not measured: pass --server-pid")
	} else {
		t.Notes = append(t.Notes, fmt.Sprintf("server CPU from /proc/%d/stat (10 ms ticks), divided by the requests; target %v per hostile document", r.ServerPID, report.Duration(r.MaxCPU)))
	}
	return []report.Table{t}
}
