package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/parleychat/parley/delivery"
)

// DefaultPreSendTimeout is PreSendConfig.Timeout's default.
const DefaultPreSendTimeout = 2 * time.Second

// PreSendConfig configures a PreSend hook.
type PreSendConfig struct {
	URL    string
	Signer *Signer
	// Timeout bounds one call; zero means DefaultPreSendTimeout.
	Timeout time.Duration
	// FailClosed makes a hook that fails (no answer in time, an answer
	// other than 2xx, or one that is not a verdict) refuse the message;
	// otherwise such a message is allowed.
	FailClosed bool
	// Logger receives one line per failure; nil discards them.
	Logger *slog.Logger
}

// PreSend asks the application's backend about each message before it is
// written. It is safe for concurrent use.
type PreSend struct {
	cfg    PreSendConfig
	client *http.Client
	log    *slog.Logger
}

// ErrHookFailed is the error of Check when the hook failed and it fails
// closed.
var ErrHookFailed = errors.New("the pre-send hook failed")

// NewPreSend returns a PreSend hook; connections trust the system roots.
func NewPreSend(cfg PreSendConfig) *PreSend {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPreSendTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PreSend{cfg: cfg, client: &http.Client{}, log: log}
}

// answer is the hook's JSON answer.
type answer struct {
	Action     string          `json:"action"`
	Reason     string          `json:"reason"`
	Body       json.RawMessage `json:"body"`
	Attributes json.RawMessage `json:"attributes"`
}

// Check posts body, signed as id, and returns the hook's verdict. When the
// hook fails it returns an Allow verdict, or, failing closed, an error
// wrapping ErrHookFailed.
func (h *PreSend) Check(ctx context.Context, id string, body []byte) (delivery.Verdict, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	v, err := h.call(ctx, id, body)
	if err == nil {
		return v, nil
	}
	h.log.WarnContext(ctx, "pre-send hook failed", "id", id, "fail_closed", h.cfg.FailClosed, "err", err)
	if h.cfg.FailClosed {
		return delivery.Verdict{}, fmt.Errorf("%w: %w", ErrHookFailed, err)
	}
	return delivery.Verdict{Action: delivery.Allow}, nil
}

// call makes one call and reads its verdict.
func (h *PreSend) call(ctx context.Context, id string, body []byte) (delivery.Verdict, error) {
	status, _, data, err := post(ctx, h.client, h.cfg.URL, h.cfg.Signer, id, body)
	if err != nil {
		return delivery.Verdict{}, err
	}
	if status < 200 || status > 299 {
		return delivery.Verdict{}, fmt.Errorf("HTTP %d", status)
	}
	var a answer
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil {
		return delivery.Verdict{}, fmt.Errorf("answer is not a JSON object: %w", err)
	}
	v := delivery.Verdict{Action: a.Action, Reason: a.Reason}
	switch a.Action {
	case delivery.Allow, delivery.Reject:
		return v, nil
	case delivery.Modify:
		if len(a.Body) > 0 && string(a.Body) != "null" {
			var s string
			if err := json.Unmarshal(a.Body, &s); err != nil {
				return delivery.Verdict{}, errors.New("modify's body is not a string")
			}
			v.Body = &s
		}
		if len(a.Attributes) > 0 {
			v.SetAttributes = true
			if string(a.Attributes) != "null" {
				v.Attributes = a.Attributes
			}
		}
		return v, nil
	default:
		return delivery.Verdict{}, fmt.Errorf("unknown action %q; want allow, reject or modify", a.Action)
	}
}
