package server_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// TestTokenClaimTypes: a token whose exp, iat or nbf is not a JSON number,
// or that carries a crit header, is refused: UNAUTHENTICATED with HTTP 401,
// and 4403 over WebSocket. The same claims as numbers pass.
func TestTokenClaimTypes(t *testing.T) {
	t.Parallel()
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	now := time.Now()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	sign := func(c jwt.MapClaims, header map[string]any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(srv.Secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	seconds := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	for _, c := range []struct {
		name, token, message string
	}{
		{"numbers", sign(claims(jwt.MapClaims{"nbf": now.Unix()}), nil), ""},
		{"exp a string", sign(claims(jwt.MapClaims{"exp": seconds(time.Hour)}), nil), "token exp must be a number"},
		{"iat a string", sign(claims(jwt.MapClaims{"iat": seconds(0)}), nil), "token iat must be a number"},
		{"nbf a string", sign(claims(jwt.MapClaims{"nbf": seconds(0)}), nil), "token nbf must be a number"},
		{"crit header", sign(claims(nil), map[string]any{"crit": []string{"exp"}}), "token has a crit header; no extension is supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := srv.Client("")
			cl.Authorization = "Bearer " + c.token
			r := cl.Post(`{ me { identity } }`, nil)
			_, derr := srv.TryDial(t, "", parleytest.WithInitPayload(map[string]any{"authorization": "Bearer " + c.token}))
			if c.message == "" {
				limitOK(t, r)
				if derr != nil {
					t.Errorf("WebSocket refused: %v", derr)
				}
				return
			}
			if r.Status != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", r.Status)
			}
			limitErr(t, r, "UNAUTHENTICATED", c.message)
			if derr == nil || int(derr.Code) != server.CloseForbidden || derr.Reason != c.message {
				t.Errorf("WebSocket: %v, want close %d %q", derr, server.CloseForbidden, c.message)
			}
		})
	}
}
