package deliverytest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// NewSecret returns a fresh Standard Webhooks secret, whsec_<base64>.
func NewSecret(t testing.TB) string {
	t.Helper()
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key[:])
}

// Event is one webhook the receiver got.
type Event struct {
	// ID is the webhook-id header.
	ID string
	// Type, Timestamp and Data are the body's.
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
	// Status is what the receiver answered.
	Status int
}

// Webhooks is a webhook receiver. It verifies every request's signature
// with the Standard Webhooks reference library (an implementation of the
// specification independent of Parley's) and answers as scripted per event
// type.
type Webhooks struct {
	// URL is where to send (PARLEY_WEBHOOK_URL).
	URL string
	t   testing.TB
	wh  *standardwebhooks.Webhook
	script
	rec recorder[Event]
}

// NewWebhooks starts a receiver for webhooks signed with secret.
func NewWebhooks(t testing.TB, ca *CA, secret string) *Webhooks {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &Webhooks{t: t, wh: wh, rec: newRecorder[Event]()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	srv.TLS = ca.serverTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/hooks"
	return r
}

// Reply scripts the answers to the next webhooks of an event type.
func (r *Webhooks) Reply(eventType string, replies ...Reply) { r.add(eventType, replies...) }

// Next waits for the next webhook.
func (r *Webhooks) Next(t testing.TB) Event {
	t.Helper()
	return r.rec.next(t, 30*time.Second, "webhook")
}

// Events returns every webhook received so far.
func (r *Webhooks) Events() []Event { return r.rec.list() }

func (r *Webhooks) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.t.Errorf("webhook receiver: signature does not verify: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		r.t.Errorf("webhook receiver: Content-Type %q", ct)
	}
	ev := Event{ID: req.Header.Get("webhook-id"), Status: http.StatusOK}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type == "" || ev.Timestamp.IsZero() || len(ev.Data) == 0 {
		r.t.Errorf("webhook receiver: body is not {type, timestamp, data} (%v): %s", err, body)
	}
	reply := r.next(ev.Type)
	if reply.Status != 0 {
		ev.Status = reply.Status
	}
	r.rec.add(ev)
	if !reply.wait(req) {
		return
	}
	reply.header(w)
	w.WriteHeader(ev.Status)
}

// PreSendRequest is one call the pre-send hook got.
type PreSendRequest struct {
	ID   string
	Body json.RawMessage
}

// PreSend is a pre-send hook: it verifies each call's signature as the
// webhook receiver does and answers with what Answer returns, after
// Delay.
type PreSend struct {
	URL string
	t   testing.TB
	wh  *standardwebhooks.Webhook
	mu  sync.Mutex
	// answer returns the status and body of the answer to a call.
	answer func(PreSendRequest) (int, string)
	delay  time.Duration
	rec    recorder[PreSendRequest]
}

// NewPreSend starts a pre-send hook for calls signed with secret; it
// allows every message until Answer says otherwise.
func NewPreSend(t testing.TB, ca *CA, secret string) *PreSend {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := &PreSend{t: t, wh: wh, rec: newRecorder[PreSendRequest](),
		answer: func(PreSendRequest) (int, string) { return http.StatusOK, `{"action":"allow"}` }}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	srv.TLS = ca.serverTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/presend"
	return h
}

// Answer sets how the hook answers, and how long it takes.
func (h *PreSend) Answer(delay time.Duration, answer func(PreSendRequest) (status int, body string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delay, h.answer = delay, answer
}

// Calls returns every call so far.
func (h *PreSend) Calls() []PreSendRequest { return h.rec.list() }

func (h *PreSend) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if err := h.wh.Verify(body, req.Header); err != nil {
		h.t.Errorf("pre-send hook: signature does not verify: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	call := PreSendRequest{ID: req.Header.Get("webhook-id"), Body: body}
	h.rec.add(call)
	h.mu.Lock()
	delay, answer := h.delay, h.answer
	h.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	status, out := answer(call)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, out)
}
