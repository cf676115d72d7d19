// Package e2e_test tests delivery as a client meets it: real Parley servers
// (package parleytest) with push, webhooks and the pre-send hook pointed at
// local fakes that speak FCM's, APNs' and Standard Webhooks' protocols.
package e2e_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/parleychat/parley/delivery/deliverytest"
	"github.com/parleychat/parley/delivery/push/apns"
	"github.com/parleychat/parley/delivery/push/fcm"
	"github.com/parleychat/parley/delivery/queue"
	"github.com/parleychat/parley/delivery/setup"
	"github.com/parleychat/parley/parleytest"
)

// ca is the test CA that the fakes' certificates come from; SSL_CERT_FILE
// points at it, as a deployment's system roots would hold a real one.
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

// fakes are a test's push services.
type fakes struct {
	fcm  *deliverytest.FCM
	apns *deliverytest.APNs
}

// newFakes starts a fake FCM and a fake APNs.
func newFakes(t *testing.T) *fakes {
	return &fakes{fcm: deliverytest.NewFCM(t, ca), apns: deliverytest.NewAPNs(t, ca)}
}

// config is a delivery configuration pushing to f.
func (f *fakes) config() *setup.Config {
	return &setup.Config{
		FCM: fcm.Config{CredentialsFile: f.fcm.CredentialsFile, Endpoint: f.fcm.URL},
		APNs: apns.Config{
			KeyFile: f.apns.KeyFile, KeyID: deliverytest.APNsKeyID, TeamID: deliverytest.APNsTeamID,
			Topic: deliverytest.APNsTopic, Endpoint: f.apns.URL,
		},
	}
}

// waitIdle waits until s's delivery queue has no job left to run: every
// delivery of what was written before has been tried.
func waitIdle(t *testing.T, s *parleytest.Server) queue.Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := s.Queue.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Available+st.Scheduled+st.Running == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery queue did not drain: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createChannel makes a channel of owner with members and returns its id.
func createChannel(t *testing.T, s *parleytest.Server, owner, name string, members ...string) string {
	t.Helper()
	var out struct {
		CreateChannel struct{ ID string } `json:"createChannel"`
	}
	s.Client(owner).Do(`mutation($in: CreateChannelInput!) { createChannel(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"friendlyName": name, "type": "PRIVATE", "members": members}}, &out)
	return out.CreateChannel.ID
}

// register registers a device token of identity.
func register(t *testing.T, s *parleytest.Server, identity, provider, token string) {
	t.Helper()
	s.Client(identity).Do(`mutation($p: PushProvider!, $t: String!) { registerPush(provider: $p, token: $t) { id } }`,
		map[string]any{"p": provider, "t": token}, nil)
}

// send sends body to channel as identity and returns the message's id.
func send(t *testing.T, s *parleytest.Server, identity, channel, body string) string {
	t.Helper()
	var out struct {
		SendMessage struct{ ID string } `json:"sendMessage"`
	}
	s.Client(identity).Do(`mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"channelId": channel, "body": body}}, &out)
	return out.SendMessage.ID
}
