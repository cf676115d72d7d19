// Package webhook calls the application's backend over HTTP: webhooks after
// events, and the pre-send hook before a message is written. Both are
// signed per the Standard Webhooks specification (webhook-id,
// webhook-timestamp, and webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" with the key of a whsec_<base64> secret), so the
// specification's verifier libraries accept them.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/delivery"
)

// secretPrefix starts a Standard Webhooks secret.
const secretPrefix = "whsec_"

// maxResponseBody bounds how much of a response is read.
const maxResponseBody = 64 << 10

// Signer signs requests with one secret. It is immutable and safe for
// concurrent use.
type Signer struct {
	key []byte
}

// NewSigner parses a secret of the form whsec_<base64>; the key must be
// 24 to 64 bytes, as the specification recommends.
func NewSigner(secret string) (*Signer, error) {
	encoded, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return nil, errors.New("want whsec_ followed by the base64 key")
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, errors.New("the part after whsec_ is not base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("the key is %d bytes; want 24 to 64", len(key))
	}
	return &Signer{key: key}, nil
}

// CheckSecret reports what is wrong with a whsec_ secret, or nil.
func CheckSecret(secret string) error {
	_, err := NewSigner(secret)
	return err
}

// Signature is the webhook-signature value for body sent as id at ts.
func (s *Signer) Signature(id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// post sends body to url as id, signed, and returns the response's status,
// headers and body (up to maxResponseBody).
func post(ctx context.Context, client *http.Client, url string, s *Signer, id string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Parley")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", s.Signature(id, now, body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, resp.Header, data, nil
}

// Sender delivers webhooks to one URL. It is safe for concurrent use.
type Sender struct {
	url    string
	signer *Signer
	client *http.Client
}

// NewSender returns a Sender posting to url, trusting the system roots.
func NewSender(url string, s *Signer) *Sender {
	return &Sender{url: url, signer: s, client: &http.Client{}}
}

// Send posts w. Any 2xx answer ends the delivery; every failure (an answer
// of another status, no answer) is a *delivery.TransientError, with the
// receiver's Retry-After.
func (s *Sender) Send(ctx context.Context, w *delivery.Webhook) error {
	status, header, _, err := post(ctx, s.client, s.url, s.signer, w.ID, w.Body)
	if err != nil {
		return &delivery.TransientError{Err: fmt.Errorf("webhook %s: %w", w.Type, err)}
	}
	if status < 200 || status > 299 {
		return &delivery.TransientError{
			Err:        fmt.Errorf("webhook %s: HTTP %d", w.Type, status),
			RetryAfter: delivery.RetryAfter(header.Get("Retry-After"), time.Now()),
		}
	}
	return nil
}
