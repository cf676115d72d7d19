package webhook_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/delivery/webhook"
)

var ca *deliverytest.CA

func TestMain(m *testing.M) {
	var cleanup func()
	var err error
	ca, cleanup, err = deliverytest.InstallCA()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func signer(t *testing.T, secret string) *webhook.Signer {
	t.Helper()
	s, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSignatureVector: the signature of the Standard Webhooks
// specification's example.
func TestSignatureVector(t *testing.T) {
	s := signer(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	got := s.Signature("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
}

func TestSecrets(t *testing.T) {
	for _, bad := range []string{"", "secret", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="} {
		if err := webhook.CheckSecret(bad); err == nil {
			t.Errorf("secret %q accepted", bad)
		}
	}
	if err := webhook.CheckSecret(deliverytest.NewSecret(t)); err != nil {
		t.Error(err)
	}
}

// TestSend: the receiver verifies the signature with the reference
// library; any 2xx ends a delivery, anything else is transient with the
// receiver's Retry-After.
func TestSend(t *testing.T) {
	secret := deliverytest.NewSecret(t)
	r := deliverytest.NewWebhooks(t, ca, secret)
	s := webhook.NewSender(r.URL, signer(t, secret))
	w := &delivery.Webhook{ID: "evt_1", Type: delivery.MessageCreated, Body: []byte(`{"type":"message.created","timestamp":"2026-01-01T00:00:00Z","data":{"message":{}}}`)}
	if err := s.Send(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	if ev := r.Next(t); ev.ID != "evt_1" || ev.Type != delivery.MessageCreated {
		t.Errorf("received %+v", ev)
	}
	r.Reply(delivery.MessageCreated, deliverytest.Reply{Status: http.StatusAccepted}, deliverytest.Reply{Status: http.StatusServiceUnavailable, RetryAfter: 3 * time.Second},
		deliverytest.Reply{Status: http.StatusBadRequest})
	if err := s.Send(t.Context(), w); err != nil {
		t.Errorf("202: %v", err)
	}
	err := s.Send(t.Context(), w)
	if tr, ok := errors.AsType[*delivery.TransientError](err); !ok || tr.RetryAfter != 3*time.Second {
		t.Errorf("503: %v", err)
	}
	if _, ok := errors.AsType[*delivery.TransientError](s.Send(t.Context(), w)); !ok {
		t.Error("400 is not retried")
	}
}

// TestPreSend: the hook's three answers, a malformed one, a slow hook and a
// failing one, open and closed.
func TestPreSend(t *testing.T) {
	secret := deliverytest.NewSecret(t)
	h := deliverytest.NewPreSend(t, ca, secret)
	// A hook that answers at once gets a timeout no loaded machine
	// reaches (each Check is a new client and TLS handshake); the slow
	// one never answers, so a short timeout always cuts it off.
	const prompt, short = 10 * time.Second, 200 * time.Millisecond
	hookWithin := func(closed bool, timeout time.Duration) *webhook.PreSend {
		return webhook.NewPreSend(webhook.PreSendConfig{URL: h.URL, Signer: signer(t, secret), Timeout: timeout, FailClosed: closed})
	}
	hook := func(closed bool) *webhook.PreSend { return hookWithin(closed, prompt) }
	answer := func(delay time.Duration, status int, body string) {
		h.Answer(delay, func(deliverytest.PreSendRequest) (int, string) { return status, body })
	}
	body := []byte(`{"type":"message.sending"}`)

	answer(0, 200, `{"action":"allow"}`)
	if v, err := hook(true).Check(t.Context(), "m1", body); err != nil || v.Action != delivery.Allow {
		t.Errorf("allow: %+v, %v", v, err)
	}
	answer(0, 200, `{"action":"reject","reason":"no swearing"}`)
	if v, err := hook(true).Check(t.Context(), "m1", body); err != nil || v.Action != delivery.Reject || v.Reason != "no swearing" {
		t.Errorf("reject: %+v, %v", v, err)
	}
	answer(0, 200, `{"action":"modify","body":"***","attributes":{"clean":true}}`)
	v, err := hook(true).Check(t.Context(), "m1", body)
	if err != nil || v.Action != delivery.Modify || v.Body == nil || *v.Body != "***" || !v.SetAttributes || string(v.Attributes) != `{"clean":true}` {
		t.Errorf("modify: %+v, %v", v, err)
	}
	answer(0, 200, `{"action":"modify","attributes":null}`)
	if v, err := hook(true).Check(t.Context(), "m1", body); err != nil || v.Body != nil || !v.SetAttributes || v.Attributes != nil {
		t.Errorf("modify clearing attributes: %+v, %v", v, err)
	}
	if calls := h.Calls(); len(calls) != 4 || calls[0].ID != "m1" || string(calls[0].Body) != string(body) {
		t.Errorf("calls %+v", calls)
	}

	for name, fail := range map[string]func(){
		"slow":      func() { answer(time.Hour, 200, `{"action":"allow"}`) }, // ends when the client gives up
		"HTTP 500":  func() { answer(0, 500, `{}`) },
		"malformed": func() { answer(0, 200, `{"action":"maybe"}`) },
		"not JSON":  func() { answer(0, 200, `ok`) },
	} {
		fail()
		timeout := prompt
		if name == "slow" {
			timeout = short
		}
		if v, err := hookWithin(false, timeout).Check(t.Context(), "m1", body); err != nil || v.Action != delivery.Allow {
			t.Errorf("%s, failing open: %+v, %v", name, v, err)
		}
		if _, err := hookWithin(true, timeout).Check(t.Context(), "m1", body); !errors.Is(err, webhook.ErrHookFailed) {
			t.Errorf("%s, failing closed: %v", name, err)
		}
	}
}
