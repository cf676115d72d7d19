// Package fcm sends push notifications through Firebase Cloud Messaging's
// HTTP v1 API, authenticated with a service account's OAuth2 access token
// (golang.org/x/oauth2/google fetches and refreshes it from the token_uri of
// the credentials file).
package fcm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/push"
)

// DefaultEndpoint is FCM's base URL.
const DefaultEndpoint = "https://fcm.googleapis.com"

// scope is the OAuth2 scope of the FCM HTTP v1 API.
const scope = "https://www.googleapis.com/auth/firebase.messaging"

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// Config configures a Provider.
type Config struct {
	// CredentialsFile is the path of the service account's JSON key.
	CredentialsFile string
	// Endpoint is FCM's base URL; empty means DefaultEndpoint.
	Endpoint string
}

// Provider sends to FCM. It is safe for concurrent use.
type Provider struct {
	url    string
	client *http.Client
}

var _ push.Provider = (*Provider)(nil)

// New reads the credentials file and returns a Provider for its project.
// The access token is fetched on first use, over HTTPS trusting the system
// roots, and refreshed before it expires.
func New(cfg Config) (*Provider, error) {
	data, err := os.ReadFile(cfg.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("fcm: read credentials: %w", err)
	}
	// The token source outlives any request: it refreshes the token.
	ctx := context.Background()
	creds, err := google.CredentialsFromJSONWithType(ctx, data, google.ServiceAccount, scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials %s: %w", cfg.CredentialsFile, err)
	}
	if creds.ProjectID == "" {
		return nil, fmt.Errorf("fcm: credentials %s name no project_id", cfg.CredentialsFile)
	}
	endpoint := strings.TrimSuffix(cmp.Or(cfg.Endpoint, DefaultEndpoint), "/")
	return &Provider{
		url:    endpoint + "/v1/projects/" + creds.ProjectID + "/messages:send",
		client: oauth2.NewClient(ctx, creds.TokenSource),
	}, nil
}

// message is the body of messages:send.
type message struct {
	Message struct {
		Token        string            `json:"token"`
		Notification notification      `json:"notification"`
		Data         map[string]string `json:"data,omitempty"`
		Android      android           `json:"android"`
		APNS         apnsConfig        `json:"apns"`
	} `json:"message"`
}

type notification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

// android collapses a retried message before delivery (collapse_key) and
// after it (the notification's tag replaces one already shown).
type android struct {
	CollapseKey  string `json:"collapse_key,omitempty"`
	Priority     string `json:"priority"`
	Notification struct {
		Tag string `json:"tag,omitempty"`
	} `json:"notification"`
}

// apnsConfig is what FCM forwards to APNs for an iOS app's token.
type apnsConfig struct {
	Headers map[string]string `json:"headers,omitempty"`
	Payload struct {
		APS struct {
			ThreadID string `json:"thread-id,omitempty"`
			Badge    int    `json:"badge"`
		} `json:"aps"`
	} `json:"payload"`
}

// Send implements push.Provider.
func (p *Provider) Send(ctx context.Context, n *delivery.Push) error {
	var m message
	m.Message.Token = n.Device.Token
	m.Message.Notification = notification{Title: n.Title, Body: n.Body}
	m.Message.Data = n.Data
	m.Message.Android.CollapseKey = n.CollapseID
	m.Message.Android.Priority = "high"
	m.Message.Android.Notification.Tag = n.CollapseID
	if n.CollapseID != "" {
		m.Message.APNS.Headers = map[string]string{"apns-collapse-id": n.CollapseID}
	}
	m.Message.APNS.Payload.APS.ThreadID = n.ThreadID
	m.Message.APNS.Payload.APS.Badge = n.Badge
	body, err := json.Marshal(&m)
	if err != nil {
		return fmt.Errorf("fcm: encode message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fcm: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		// Network failures, timeouts and failures to get a token.
		return &delivery.TransientError{Err: fmt.Errorf("fcm: %w", err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			return &delivery.TransientError{Err: fmt.Errorf("fcm: read response: %w", err)}
		}
		return nil
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return classify(resp, data)
}

// errorBody is FCM's error response.
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

// classify turns FCM's error response into push's error kinds.
func classify(resp *http.Response, data []byte) error {
	var b errorBody
	_ = json.Unmarshal(data, &b) // a body that is not FCM's leaves b empty
	code := b.Error.Status
	tokenField := false
	for _, d := range b.Error.Details {
		if d.ErrorCode != "" {
			code = d.ErrorCode
		}
		for _, v := range d.FieldViolations {
			tokenField = tokenField || v.Field == "message.token"
		}
	}
	err := fmt.Errorf("fcm: HTTP %d %s: %s", resp.StatusCode, code, b.Error.Message)
	switch {
	case code == "UNREGISTERED":
		return errors.Join(push.ErrInvalidToken, err)
	case code == "INVALID_ARGUMENT" && (tokenField || strings.Contains(strings.ToLower(b.Error.Message), "registration token")):
		return errors.Join(push.ErrInvalidToken, err)
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500, resp.StatusCode == http.StatusUnauthorized:
		// 401: the access token expired or was revoked; the next
		// attempt gets a fresh one.
		return &delivery.TransientError{Err: err, RetryAfter: delivery.RetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return err
	}
}
