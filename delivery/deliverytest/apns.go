package deliverytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The fake APNs' account.
const (
	APNsKeyID  = "ABC123DEFG"
	APNsTeamID = "TEAM123456"
	APNsTopic  = "chat.parley.app"
)

// APNsNotification is one notification the fake received.
type APNsNotification struct {
	Token       string
	Title, Body string
	Badge       int
	ThreadID    string
	CollapseID  string
	PushType    string
	Priority    string
	// Data are the payload's keys besides aps.
	Data map[string]string
	// Status is what the fake answered.
	Status int
}

// APNs is a fake APNs provider API: HTTP/2 over TLS, token authentication.
// It checks that every request is HTTP/2, carries a JWT signed with the
// team's key (ES256, kid and iss set) and the app's topic.
type APNs struct {
	// URL is the endpoint (PARLEY_APNS_ENDPOINT).
	URL string
	// KeyFile is the team's .p8 key (PARLEY_APNS_KEY).
	KeyFile string

	t      testing.TB
	key    *ecdsa.PrivateKey
	script script
	rec    recorder[APNsNotification]
}

// NewAPNs starts a fake APNs for the test, with a key of its own written to
// a temporary .p8 file.
func NewAPNs(t testing.TB, ca *CA) *APNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a := &APNs{t: t, key: key, rec: newRecorder[APNsNotification]()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3/device/{token}", a.push)
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.TLS = ca.serverTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	a.KeyFile = filepath.Join(t.TempDir(), "AuthKey_"+APNsKeyID+".p8")
	if err := os.WriteFile(a.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// Reply scripts the answers to the next notifications to a device token,
// in order; later ones succeed.
func (a *APNs) Reply(token string, r ...Reply) { a.script.add(token, r...) }

// Next waits for the next notification the fake receives.
func (a *APNs) Next(t testing.TB) APNsNotification {
	t.Helper()
	return a.rec.next(t, 30*time.Second, "APNs notification")
}

// Notifications returns every notification received so far.
func (a *APNs) Notifications() []APNsNotification { return a.rec.list() }

// payload is the notification body the fake reads.
type payload struct {
	APS struct {
		Alert struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"alert"`
		Badge    int    `json:"badge"`
		ThreadID string `json:"thread-id"`
	} `json:"aps"`
}

func (a *APNs) push(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		a.t.Errorf("fake APNs: request over %s, not HTTP/2", r.Proto)
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "bearer ")
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(bearer, claims, func(*jwt.Token) (any, error) { return &a.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(APNsTeamID), jwt.WithIssuedAt())
	if !ok || err != nil || tok.Header["kid"] != APNsKeyID {
		a.t.Errorf("fake APNs: bad provider token (%v): %q", err, r.Header.Get("Authorization"))
		apnsError(w, http.StatusForbidden, "InvalidProviderToken")
		return
	}
	if topic := r.Header.Get("apns-topic"); topic != APNsTopic {
		a.t.Errorf("fake APNs: topic %q", topic)
		apnsError(w, http.StatusBadRequest, "BadTopic")
		return
	}
	var p payload
	raw := map[string]any{}
	body := json.NewDecoder(r.Body)
	if err := body.Decode(&raw); err != nil {
		a.t.Errorf("fake APNs: payload is not JSON: %v", err)
		apnsError(w, http.StatusBadRequest, "PayloadEmpty")
		return
	}
	enc, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(enc, &p)
	}
	if err != nil {
		a.t.Errorf("fake APNs: payload: %v", err)
	}
	data := map[string]string{}
	for k, v := range raw {
		if s, ok := v.(string); ok && k != "aps" {
			data[k] = s
		}
	}
	got := APNsNotification{
		Token: r.PathValue("token"), Title: p.APS.Alert.Title, Body: p.APS.Alert.Body, Badge: p.APS.Badge,
		ThreadID: p.APS.ThreadID, CollapseID: r.Header.Get("apns-collapse-id"), PushType: r.Header.Get("apns-push-type"),
		Priority: r.Header.Get("apns-priority"), Data: data, Status: http.StatusOK,
	}
	reply := a.script.next(got.Token)
	if reply.Status != 0 {
		got.Status = reply.Status
	}
	a.rec.add(got)
	if !reply.wait(r) {
		return
	}
	if reply.Status == 0 {
		w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000001")
		w.WriteHeader(http.StatusOK)
		return
	}
	reply.header(w)
	apnsError(w, reply.Status, reply.Reason)
}

// apnsError writes APNs' error body.
func apnsError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"reason": reason}
	if status == http.StatusGone {
		body["timestamp"] = time.Now().UnixMilli()
	}
	_ = json.NewEncoder(w).Encode(body)
}
