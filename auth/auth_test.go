package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// sign signs claims with method and key, failing the test on error.
func sign(t *testing.T, method jwt.SigningMethod, claims jwt.MapClaims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// signHeader signs claims with HS256 and the secret, with extra header
// fields.
func signHeader(t *testing.T, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validClaims returns claims that verify, relative to the real clock.
func validClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":  "alice",
		"name": "Alice",
		"iat":  now.Unix(),
		"exp":  now.Add(time.Hour).Unix(),
	}
}

func without(c jwt.MapClaims, key string) jwt.MapClaims {
	delete(c, key)
	return c
}

func with(c jwt.MapClaims, key string, value any) jwt.MapClaims {
	c[key] = value
	return c
}

// unsignedToken crafts an alg=none token by hand.
func unsignedToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "."
}

func TestVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	v := auth.NewVerifier(secret)
	now := time.Now()

	tests := []struct {
		name     string
		token    string
		wantMsg  string // empty means success
		wantName string
	}{
		{name: "valid", token: sign(t, jwt.SigningMethodHS256, validClaims(), secret), wantName: "Alice"},
		{name: "valid without name", token: sign(t, jwt.SigningMethodHS256, without(validClaims(), "name"), secret)},
		{name: "valid within leeway", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "exp", now.Add(-10*time.Second).Unix()), secret), wantName: "Alice"},
		{name: "expired", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "exp", now.Add(-time.Minute).Unix()), secret), wantMsg: "token expired"},
		{name: "issued in the future", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "iat", now.Add(time.Hour).Unix()), secret), wantMsg: "token used before issued"},
		{name: "no exp", token: sign(t, jwt.SigningMethodHS256, without(validClaims(), "exp"), secret), wantMsg: "token is missing exp"},
		{name: "no sub", token: sign(t, jwt.SigningMethodHS256, without(validClaims(), "sub"), secret), wantMsg: "token is missing sub"},
		{name: "empty sub", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "sub", ""), secret), wantMsg: "token is missing sub"},
		{name: "sub too long", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "sub", strings.Repeat("a", auth.MaxIdentityLen+1)), secret), wantMsg: "token sub is too long"},
		{name: "sub not a string", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "sub", 42), secret), wantMsg: "malformed token"},
		{name: "alg none by hand", token: unsignedToken(t, validClaims()), wantMsg: "unexpected signing method"},
		{name: "alg none via jwt", token: sign(t, jwt.SigningMethodNone, validClaims(), jwt.UnsafeAllowNoneSignatureType), wantMsg: "unexpected signing method"},
		{name: "HS512 same secret", token: sign(t, jwt.SigningMethodHS512, validClaims(), secret), wantMsg: "unexpected signing method"},
		{name: "HS384 same secret", token: sign(t, jwt.SigningMethodHS384, validClaims(), secret), wantMsg: "unexpected signing method"},
		{name: "RS256", token: sign(t, jwt.SigningMethodRS256, validClaims(), rsaKey), wantMsg: "unexpected signing method"},
		{name: "wrong secret", token: sign(t, jwt.SigningMethodHS256, validClaims(), []byte("another secret, not the real one")), wantMsg: "invalid token signature"},
		{name: "garbage", token: "not a token", wantMsg: "malformed token"},
		{name: "empty", token: "", wantMsg: "malformed token"},
		{name: "oversized", token: strings.Repeat("a", 9000), wantMsg: "malformed token"},
		// NumericDate claims are numbers (RFC 7519), not strings that hold one.
		{name: "exp a string", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10)), secret), wantMsg: "token exp must be a number"},
		{name: "iat a string", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "iat", strconv.FormatInt(now.Unix(), 10)), secret), wantMsg: "token iat must be a number"},
		{name: "nbf a string", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "nbf", strconv.FormatInt(now.Unix(), 10)), secret), wantMsg: "token nbf must be a number"},
		{name: "exp null", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "exp", nil), secret), wantMsg: "token exp must be a number"},
		{name: "exp an object", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "exp", map[string]any{}), secret), wantMsg: "token exp must be a number"},
		{name: "nbf a number", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "nbf", now.Unix()), secret), wantName: "Alice"},
		{name: "exp a fraction", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "exp", float64(now.Add(time.Hour).Unix())+0.5), secret), wantName: "Alice"},
		// A crit header names extensions the recipient must understand (RFC 7515).
		{name: "crit header", token: signHeader(t, validClaims(), map[string]any{"crit": []string{"exp"}}), wantMsg: "token has a crit header; no extension is supported"},
		{name: "empty crit header", token: signHeader(t, validClaims(), map[string]any{"crit": []string{}}), wantMsg: "token has a crit header; no extension is supported"},
		{name: "other header", token: signHeader(t, validClaims(), map[string]any{"kid": "k1"}), wantName: "Alice"},
		// Identities and names are stored: no NUL.
		{name: "NUL in sub", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "sub", "ali\x00ce"), secret), wantMsg: "token sub holds a NUL character"},
		{name: "NUL in name", token: sign(t, jwt.SigningMethodHS256, with(validClaims(), "name", "Ali\x00ce"), secret), wantMsg: "token name holds a NUL character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(tt.token)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Verify: unexpected error %v", err)
				}
				if p.Identity != "alice" || p.Name != tt.wantName {
					t.Fatalf("Verify = %+v, want identity alice, name %q", p, tt.wantName)
				}
				if p.ExpiresAt.IsZero() {
					t.Fatal("ExpiresAt not set")
				}
				return
			}
			if code := apperr.CodeOf(err); code != apperr.Unauthenticated {
				t.Fatalf("code = %q (err %v), want %q", code, err, apperr.Unauthenticated)
			}
			if err.Error() != tt.wantMsg {
				t.Fatalf("message = %q, want %q", err.Error(), tt.wantMsg)
			}
			if p != (auth.Principal{}) {
				t.Fatalf("principal %+v returned with error", p)
			}
		})
	}
}

func TestNewVerifierEmptySecretPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewVerifier(nil) did not panic")
		}
	}()
	auth.NewVerifier(nil)
}

func TestVerifierCopiesSecret(t *testing.T) {
	s := append([]byte(nil), secret...)
	v := auth.NewVerifier(s)
	s[0] ^= 0xff
	token, err := auth.Mint(secret, "alice", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(token); err != nil {
		t.Fatalf("Verify after caller mutated its secret: %v", err)
	}
}

func TestMintRoundTrip(t *testing.T) {
	v := auth.NewVerifier(secret)
	now := time.Now().Truncate(time.Second)

	token, err := auth.Mint(secret, "bob", "Bob B.", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Principal{Identity: "bob", Name: "Bob B.", ExpiresAt: now.Add(time.Hour)}
	if p.Identity != want.Identity || p.Name != want.Name || !p.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("round trip = %+v, want %+v", p, want)
	}

	// Name is omitted when empty.
	token, err = auth.Mint(secret, "bob", "", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil {
		t.Fatal(err)
	}
	if _, ok := claims["name"]; ok {
		t.Fatalf("empty name was not omitted: %v", claims)
	}
	if claims["iat"] != float64(now.Unix()) || claims["exp"] != float64(now.Add(time.Hour).Unix()) {
		t.Fatalf("iat/exp = %v/%v, want %d/%d", claims["iat"], claims["exp"], now.Unix(), now.Add(time.Hour).Unix())
	}

	// A token minted in the past is expired.
	token, err = auth.Mint(secret, "bob", "", time.Minute, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(token); apperr.CodeOf(err) != apperr.Unauthenticated {
		t.Fatalf("Verify(old token) err = %v, want UNAUTHENTICATED", err)
	}
}

func TestMintRejects(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		secret   []byte
		identity string
		ttl      time.Duration
	}{
		{"empty secret", nil, "bob", time.Hour},
		{"empty identity", secret, "", time.Hour},
		{"identity too long", secret, strings.Repeat("x", auth.MaxIdentityLen+1), time.Hour},
		{"zero ttl", secret, "bob", 0},
		{"negative ttl", secret, "bob", -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if token, err := auth.Mint(tt.secret, tt.identity, "", tt.ttl, now); err == nil {
				t.Fatalf("Mint = %q, want error", token)
			}
		})
	}
}

func TestGenerateSecret(t *testing.T) {
	a, err := auth.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := auth.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != auth.SecretLen || len(b) != auth.SecretLen {
		t.Fatalf("lengths %d, %d, want %d", len(a), len(b), auth.SecretLen)
	}
	if string(a) == string(b) {
		t.Fatal("two generated secrets are equal")
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER abc", "abc", true},
		{"  Bearer   abc  ", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearerabc", "", false},
		{"abc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := auth.BearerToken(tt.header)
		if got != tt.want || ok != tt.ok {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func TestContext(t *testing.T) {
	ctx := t.Context()
	if _, ok := auth.FromContext(ctx); ok {
		t.Fatal("empty context has a principal")
	}
	want := auth.Principal{Identity: "carol", Name: "Carol"}
	got, ok := auth.FromContext(auth.WithPrincipal(ctx, want))
	if !ok || got != want {
		t.Fatalf("FromContext = %+v, %v; want %+v, true", got, ok, want)
	}
	if _, ok := auth.FromContext(auth.WithPrincipal(ctx, auth.Principal{})); ok {
		t.Fatal("principal without identity reported as present")
	}
}

// probe records what the wrapped handler saw.
type probe struct {
	called    bool
	principal auth.Principal
	ok        bool
}

func (p *probe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.called = true
	p.principal, p.ok = auth.FromContext(r.Context())
	w.WriteHeader(http.StatusNoContent)
}

func TestMiddleware(t *testing.T) {
	v := auth.NewVerifier(secret)
	good, err := auth.Mint(secret, "dave", "Dave", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := auth.Mint(secret, "dave", "", time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		headers   map[string][]string
		wantCalls bool
		wantID    string // empty: anonymous
		wantMsg   string // non-empty: 401 with this message
	}{
		{name: "no header", wantCalls: true},
		{name: "good token", headers: map[string][]string{"Authorization": {"Bearer " + good}}, wantCalls: true, wantID: "dave"},
		{name: "lowercase scheme", headers: map[string][]string{"Authorization": {"bearer " + good}}, wantCalls: true, wantID: "dave"},
		{name: "bad token", headers: map[string][]string{"Authorization": {"Bearer garbage"}}, wantMsg: "malformed token"},
		{name: "expired token", headers: map[string][]string{"Authorization": {"Bearer " + expired}}, wantMsg: "token expired"},
		{name: "wrong scheme", headers: map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}, wantMsg: `authorization header must be "Bearer <token>"`},
		{name: "empty header", headers: map[string][]string{"Authorization": {""}}, wantMsg: `authorization header must be "Bearer <token>"`},
		{name: "two headers", headers: map[string][]string{"Authorization": {"Bearer " + good, "Bearer " + good}}, wantMsg: "multiple authorization headers"},
		{name: "websocket with bad token", headers: map[string][]string{"Authorization": {"Bearer garbage"}, "Upgrade": {"websocket"}, "Connection": {"Upgrade"}}, wantCalls: true},
		{name: "websocket mixed case", headers: map[string][]string{"Authorization": {"Bearer garbage"}, "Upgrade": {"WebSocket"}}, wantCalls: true},
		{name: "websocket with good token", headers: map[string][]string{"Authorization": {"Bearer " + good}, "Upgrade": {"websocket"}}, wantCalls: true, wantID: "dave"},
		{name: "other upgrade with bad token", headers: map[string][]string{"Authorization": {"Bearer garbage"}, "Upgrade": {"h2c"}}, wantMsg: "malformed token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			for k, vs := range tt.headers {
				for _, val := range vs {
					req.Header.Add(k, val)
				}
			}
			rec := httptest.NewRecorder()
			next := &probe{}
			v.Middleware(next).ServeHTTP(rec, req)

			if tt.wantMsg != "" {
				checkUnauthorized(t, rec, tt.wantMsg)
				if next.called {
					t.Fatal("next handler called on 401")
				}
				return
			}
			if !next.called {
				t.Fatalf("next handler not called; status %d body %s", rec.Code, rec.Body)
			}
			if tt.wantID == "" {
				if next.ok {
					t.Fatalf("anonymous request carries principal %+v", next.principal)
				}
				return
			}
			if !next.ok || next.principal.Identity != tt.wantID || next.principal.Name != "Dave" {
				t.Fatalf("principal = %+v, %v; want identity %q", next.principal, next.ok, tt.wantID)
			}
		})
	}
}

func checkUnauthorized(t *testing.T, rec *httptest.ResponseRecorder, wantMsg string) {
	t.Helper()
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if wa := rec.Header().Get("WWW-Authenticate"); wa != `Bearer error="invalid_token"` {
		t.Fatalf("WWW-Authenticate = %q", wa)
	}
	var body struct {
		Errors []struct {
			Message    string            `json:"message"`
			Extensions map[string]string `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if len(body.Errors) != 1 || body.Errors[0].Message != wantMsg || body.Errors[0].Extensions["code"] != string(apperr.Unauthenticated) {
		t.Fatalf("body = %s, want message %q and code UNAUTHENTICATED", rec.Body, wantMsg)
	}
}

func TestMiddlewareExactBody(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer x.y.z")
	auth.NewVerifier(secret).Middleware(&probe{}).ServeHTTP(rec, req)
	want := `{"errors":[{"message":"malformed token","extensions":{"code":"UNAUTHENTICATED"}}]}`
	if got := rec.Body.String(); got != want {
		t.Fatalf("body = %s, want %s", got, want)
	}
}

func TestFromInitPayload(t *testing.T) {
	v := auth.NewVerifier(secret)
	good, err := auth.Mint(secret, "erin", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload map[string]any
		wantMsg string // empty: success as erin
	}{
		{name: "authorization bearer", payload: map[string]any{"authorization": "Bearer " + good}},
		{name: "authorization bare", payload: map[string]any{"authorization": good}},
		{name: "Authorization bearer", payload: map[string]any{"Authorization": "bearer " + good}},
		{name: "Authorization bare", payload: map[string]any{"Authorization": good}},
		{name: "token", payload: map[string]any{"token": good}},
		{name: "null authorization falls back to token", payload: map[string]any{"authorization": nil, "token": good}},
		{name: "empty authorization falls back to token", payload: map[string]any{"authorization": "", "token": good}},
		{name: "nil payload", payload: nil, wantMsg: "missing token"},
		{name: "empty payload", payload: map[string]any{}, wantMsg: "missing token"},
		{name: "unrelated keys", payload: map[string]any{"foo": good}, wantMsg: "missing token"},
		{name: "non-string", payload: map[string]any{"token": 42}, wantMsg: "malformed token"},
		{name: "garbage", payload: map[string]any{"authorization": "Bearer garbage"}, wantMsg: "malformed token"},
		{name: "bad signature", payload: map[string]any{"token": good[:len(good)-4] + "AAAA"}, wantMsg: "invalid token signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.FromInitPayload(tt.payload)
			if tt.wantMsg == "" {
				if err != nil || p.Identity != "erin" {
					t.Fatalf("FromInitPayload = %+v, %v; want erin", p, err)
				}
				return
			}
			if apperr.CodeOf(err) != apperr.Unauthenticated || err.Error() != tt.wantMsg {
				t.Fatalf("err = %v (code %q), want UNAUTHENTICATED %q", err, apperr.CodeOf(err), tt.wantMsg)
			}
		})
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := auth.NewVerifier(secret)
	token, err := auth.Mint(secret, "frank", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	for range cap(errs) {
		go func() {
			_, err := v.Verify(token)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
