// Package apns sends push notifications through Apple's Push Notification
// service over HTTP/2 with token authentication: a JWT signed with the
// team's .p8 key (ES256), made and renewed by github.com/sideshow/apns2.
package apns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/token"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/push"
)

// Apple's endpoints.
const (
	ProductionEndpoint = apns2.HostProduction
	SandboxEndpoint    = apns2.HostDevelopment
)

// Config configures a Provider.
type Config struct {
	// KeyFile is the path of the .p8 key; KeyID its key ID and TeamID the
	// team it belongs to.
	KeyFile, KeyID, TeamID string
	// Topic is the app's bundle ID.
	Topic string
	// Sandbox picks Apple's development endpoint.
	Sandbox bool
	// Endpoint, when set, replaces Apple's endpoint.
	Endpoint string
}

// Provider sends to APNs. It is safe for concurrent use.
type Provider struct {
	client *apns2.Client
	topic  string
}

var _ push.Provider = (*Provider)(nil)

// New reads the key and returns a Provider. Connections trust the system
// roots.
func New(cfg Config) (*Provider, error) {
	key, err := token.AuthKeyFromFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("apns: key %s: %w", cfg.KeyFile, err)
	}
	if cfg.KeyID == "" || cfg.TeamID == "" || cfg.Topic == "" {
		return nil, errors.New("apns: the key ID, team ID and topic are all required")
	}
	client := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID})
	switch {
	case cfg.Endpoint != "":
		client.Host = strings.TrimSuffix(cfg.Endpoint, "/")
	case cfg.Sandbox:
		client.Host = SandboxEndpoint
	default:
		client.Host = ProductionEndpoint
	}
	return &Provider{client: client, topic: cfg.Topic}, nil
}

// alert is the visible part of a notification.
type alert struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type aps struct {
	Alert    alert  `json:"alert"`
	Badge    int    `json:"badge"`
	Sound    string `json:"sound"`
	ThreadID string `json:"thread-id,omitempty"`
}

// Send implements push.Provider.
func (p *Provider) Send(ctx context.Context, n *delivery.Push) error {
	payload := make(map[string]any, len(n.Data)+1)
	for k, v := range n.Data {
		payload[k] = v
	}
	payload["aps"] = aps{Alert: alert{Title: n.Title, Body: n.Body}, Badge: n.Badge, Sound: "default", ThreadID: n.ThreadID}
	res, err := p.client.PushWithContext(ctx, &apns2.Notification{
		DeviceToken: n.Device.Token,
		Topic:       p.topic,
		CollapseID:  n.CollapseID,
		PushType:    apns2.PushTypeAlert,
		Priority:    apns2.PriorityHigh,
		Payload:     payload,
	})
	if err != nil {
		return &delivery.TransientError{Err: fmt.Errorf("apns: %w", err)}
	}
	if res.Sent() {
		return nil
	}
	err = fmt.Errorf("apns: HTTP %d %s", res.StatusCode, res.Reason)
	switch {
	case res.StatusCode == http.StatusGone && res.Reason == apns2.ReasonUnregistered,
		res.StatusCode == http.StatusBadRequest && res.Reason == apns2.ReasonBadDeviceToken:
		return errors.Join(push.ErrInvalidToken, err)
	case res.StatusCode == http.StatusTooManyRequests, res.StatusCode >= 500,
		res.StatusCode == http.StatusForbidden && res.Reason == apns2.ReasonExpiredProviderToken:
		// APNs sends no Retry-After: back off.
		return &delivery.TransientError{Err: err}
	default:
		return err
	}
}
