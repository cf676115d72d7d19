package deliverytest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FCMProject is the project of the fake's service account.
const FCMProject = "parley-test"

// fcmScope is the OAuth2 scope an FCM access token must have.
const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// FCMMessage is one messages:send request the fake received.
type FCMMessage struct {
	Token        string
	Title, Body  string
	Data         map[string]string
	CollapseKey  string
	Tag          string
	APNSCollapse string
	ThreadID     string
	Badge        int
	// Status is what the fake answered.
	Status int
}

// FCM is a fake FCM HTTP v1 API with its OAuth2 token endpoint. It checks
// that every send carries an access token it issued, for a JWT assertion
// signed with the service account's key and asking for FCM's scope.
type FCM struct {
	// URL is the endpoint (PARLEY_FCM_ENDPOINT).
	URL string
	// CredentialsFile is the service account's JSON key
	// (PARLEY_FCM_CREDENTIALS); its token_uri is the fake's.
	CredentialsFile string

	t       testing.TB
	key     *rsa.PrivateKey
	email   string
	mu      sync.Mutex
	tokens  map[string]bool
	granted int
	script  script
	rec     recorder[FCMMessage]
}

// NewFCM starts a fake FCM for the test, with a service account of its
// own written to a temporary credentials file.
func NewFCM(t testing.TB, ca *CA) *FCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &FCM{t: t, key: key, email: "parley@" + FCMProject + ".iam.gserviceaccount.com", tokens: map[string]bool{}, rec: newRecorder[FCMMessage]()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = ca.serverTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": FCMProject, "private_key_id": "key-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": f.email, "client_id": "1", "token_uri": srv.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.CredentialsFile = filepath.Join(t.TempDir(), "fcm.json")
	if err := os.WriteFile(f.CredentialsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Reply scripts the answers to the next sends to a device token, in order;
// later sends succeed.
func (f *FCM) Reply(token string, r ...Reply) { f.script.add(token, r...) }

// Next waits for the next send the fake receives.
func (f *FCM) Next(t testing.TB) FCMMessage {
	t.Helper()
	return f.rec.next(t, 30*time.Second, "FCM send")
}

// Messages returns every send received so far.
func (f *FCM) Messages() []FCMMessage { return f.rec.list() }

// TokensGranted counts the access tokens issued.
func (f *FCM) TokensGranted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.granted
}

// token is the OAuth2 token endpoint: a JWT bearer grant (RFC 7523)
// signed with the service account's key.
func (f *FCM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.t.Errorf("fake FCM: token request without a JWT bearer grant: %v", r.Form)
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.Form.Get("assertion"), claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience("https://"+r.Host+"/token"), jwt.WithIssuer(f.email), jwt.WithExpirationRequired())
	if err != nil || claims["scope"] != fcmScope {
		f.t.Errorf("fake FCM: bad assertion (scope %v): %v", claims["scope"], err)
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "ya29." + hex.EncodeToString(b[:])
	f.mu.Lock()
	f.tokens[tok] = true
	f.granted++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
}

// sendBody is the part of messages:send the fake reads.
type sendBody struct {
	Message struct {
		Token        string `json:"token"`
		Notification struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Data    map[string]string `json:"data"`
		Android struct {
			CollapseKey  string `json:"collapse_key"`
			Notification struct {
				Tag string `json:"tag"`
			} `json:"notification"`
		} `json:"android"`
		APNS struct {
			Headers map[string]string `json:"headers"`
			Payload struct {
				APS struct {
					ThreadID string `json:"thread-id"`
					Badge    int    `json:"badge"`
				} `json:"aps"`
			} `json:"payload"`
		} `json:"apns"`
	} `json:"message"`
}

// send is messages:send.
func (f *FCM) send(w http.ResponseWriter, r *http.Request) {
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	known := f.tokens[bearer]
	f.mu.Unlock()
	if !known {
		f.t.Errorf("fake FCM: send without a token it issued: %q", r.Header.Get("Authorization"))
		fcmError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.")
		return
	}
	if p := r.PathValue("project"); p != FCMProject {
		f.t.Errorf("fake FCM: send to project %q", p)
	}
	var b sendBody
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&b); err != nil || b.Message.Token == "" {
		f.t.Errorf("fake FCM: bad message (%v): %+v", err, b)
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "", "Invalid JSON payload received.")
		return
	}
	for k, v := range b.Message.Data {
		if v == "" {
			f.t.Errorf("fake FCM: data key %q is empty", k)
		}
	}
	m := b.Message
	got := FCMMessage{
		Token: m.Token, Title: m.Notification.Title, Body: m.Notification.Body, Data: m.Data,
		CollapseKey: m.Android.CollapseKey, Tag: m.Android.Notification.Tag, APNSCollapse: m.APNS.Headers["apns-collapse-id"],
		ThreadID: m.APNS.Payload.APS.ThreadID, Badge: m.APNS.Payload.APS.Badge, Status: http.StatusOK,
	}
	reply := f.script.next(m.Token)
	if reply.Status != 0 {
		got.Status = reply.Status
	}
	f.rec.add(got)
	if !reply.wait(r) {
		return
	}
	if reply.Status == 0 {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`, FCMProject, time.Now().UnixNano())
		return
	}
	reply.header(w)
	field := ""
	if reply.Reason == "INVALID_ARGUMENT" {
		field = "message.token"
	}
	fcmError(w, reply.Status, reply.Reason, field, "scripted failure")
}

// fcmError writes FCM's error body with errorCode and, when field is set,
// a bad-request detail about it.
func fcmError(w http.ResponseWriter, status int, code, field, message string) {
	details := []map[string]any{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}}
	if field != "" {
		details = append(details, map[string]any{
			"@type":           "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []map[string]string{{"field": field, "description": "Invalid registration token"}},
		})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": message, "status": code, "details": details,
	}})
}
