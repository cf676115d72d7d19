package fcm_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/delivery/push/fcm"
	"github.com/parleychat/parley/models"
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

func notification(token string) *delivery.Push {
	return &delivery.Push{
		Device: delivery.Device{RegistrationID: "r1", Provider: models.PushFCM, Token: token},
		Title:  "General", Body: "Hello", CollapseID: "m1", ThreadID: "c1", Badge: 3,
		Data: map[string]string{"channelId": "c1", "messageId": "m1", "index": "0", "author": "alice", "type": "TEXT"},
	}
}

// TestSend: sends carry an access token from the credentials' token_uri,
// fetched once, and the message in FCM's shape.
func TestSend(t *testing.T) {
	f := deliverytest.NewFCM(t, ca)
	p, err := fcm.New(fcm.Config{CredentialsFile: f.CredentialsFile, Endpoint: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := p.Send(t.Context(), notification("tok")); err != nil {
			t.Fatal(err)
		}
	}
	got := f.Next(t)
	if got.Token != "tok" || got.Title != "General" || got.Body != "Hello" || got.CollapseKey != "m1" || got.Tag != "m1" ||
		got.APNSCollapse != "m1" || got.ThreadID != "c1" || got.Badge != 3 || got.Data["author"] != "alice" || got.Data["type"] != "TEXT" {
		t.Errorf("FCM got %+v", got)
	}
	if n := f.TokensGranted(); n != 1 {
		t.Errorf("%d access tokens fetched for 3 sends, want 1", n)
	}
}

// TestSendErrors: FCM's answers become push's error kinds.
func TestSendErrors(t *testing.T) {
	f := deliverytest.NewFCM(t, ca)
	p, err := fcm.New(fcm.Config{CredentialsFile: f.CredentialsFile, Endpoint: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reply      deliverytest.Reply
		invalid    bool
		transient  bool
		retryAfter time.Duration
	}{
		{reply: deliverytest.Reply{Status: http.StatusNotFound, Reason: "UNREGISTERED"}, invalid: true},
		{reply: deliverytest.Reply{Status: http.StatusBadRequest, Reason: "INVALID_ARGUMENT"}, invalid: true},
		{reply: deliverytest.Reply{Status: http.StatusServiceUnavailable, Reason: "UNAVAILABLE", RetryAfter: 7 * time.Second}, transient: true, retryAfter: 7 * time.Second},
		{reply: deliverytest.Reply{Status: http.StatusTooManyRequests, Reason: "QUOTA_EXCEEDED"}, transient: true},
		{reply: deliverytest.Reply{Status: http.StatusInternalServerError, Reason: "INTERNAL"}, transient: true},
		{reply: deliverytest.Reply{Status: http.StatusForbidden, Reason: "SENDER_ID_MISMATCH"}},
	} {
		t.Run(tc.reply.Reason, func(t *testing.T) {
			f.Reply("tok-"+tc.reply.Reason, tc.reply)
			err := p.Send(t.Context(), notification("tok-"+tc.reply.Reason))
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, push.ErrInvalidToken); got != tc.invalid {
				t.Errorf("invalid token = %v, want %v: %v", got, tc.invalid, err)
			}
			transient, ok := errors.AsType[*delivery.TransientError](err)
			if ok != tc.transient {
				t.Errorf("transient = %v, want %v: %v", ok, tc.transient, err)
			}
			if ok && transient.RetryAfter != tc.retryAfter {
				t.Errorf("retry after %s, want %s", transient.RetryAfter, tc.retryAfter)
			}
		})
	}
}

// TestNewErrors: a missing or foreign credentials file is refused at once.
func TestNewErrors(t *testing.T) {
	if _, err := fcm.New(fcm.Config{CredentialsFile: "/nonexistent.json"}); err == nil {
		t.Error("a missing file was accepted")
	}
	path := t.TempDir() + "/user.json"
	if err := os.WriteFile(path, []byte(`{"type":"authorized_user"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fcm.New(fcm.Config{CredentialsFile: path}); err == nil {
		t.Error("credentials of another type were accepted")
	}
}
