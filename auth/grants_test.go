package auth_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
)

// TestGrants: the channels claim becomes Principal.Grants; a claim that is
// not an object of "read" and "write" values refuses the token.
func TestGrants(t *testing.T) {
	v := auth.NewVerifier(secret)
	for _, tt := range []struct {
		name  string
		claim any // nil: no claim
		want  map[string]auth.Access
		err   string
	}{
		{name: "absent", claim: nil, want: nil},
		{name: "empty object", claim: map[string]any{}, want: map[string]auth.Access{}},
		{name: "ids and names", claim: map[string]any{"general": "write", "0190a0": "read"},
			want: map[string]auth.Access{"general": auth.Write, "0190a0": auth.Read}},
		{name: "bad value", claim: map[string]any{"general": "admin"}, err: `channels claim value "admin" must be "read" or "write"`},
		{name: "empty key", claim: map[string]any{"": "read"}, err: "channels claim has an empty key"},
		{name: "array", claim: []string{"general"}, err: `channels claim must be an object of "read" or "write" values`},
		{name: "number value", claim: map[string]any{"general": 1}, err: `channels claim must be an object of "read" or "write" values`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := validClaims()
			if tt.claim != nil {
				c["channels"] = tt.claim
			}
			p, err := v.Verify(sign(t, jwt.SigningMethodHS256, c, secret))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || apperr.CodeOf(err) != apperr.Unauthenticated {
					t.Fatalf("err = %v, want UNAUTHENTICATED %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (p.Grants == nil) != (tt.want == nil) || (p.Grants != nil && !maps.Equal(p.Grants.Map(), tt.want)) {
				t.Fatalf("grants = %#v, want %#v", p.Grants, tt.want)
			}
		})
	}
}

func TestMintWithGrants(t *testing.T) {
	v := auth.NewVerifier(secret)
	grants := map[string]auth.Access{"general": auth.Write, "news": auth.Read}
	tok, err := auth.MintWithGrants(secret, "alice", "", grants, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(p.Grants.Map(), grants) || !slices.Equal(p.Grants.Keys(), []string{"general", "news"}) {
		t.Fatalf("grants = %v, want %v", p.Grants, grants)
	}
	for _, bad := range []map[string]auth.Access{{"": auth.Read}, {"general": "admin"}} {
		if _, err := auth.MintWithGrants(secret, "alice", "", bad, time.Hour, time.Now()); err == nil {
			t.Errorf("MintWithGrants(%v) succeeded", bad)
		}
	}
	tok, err = auth.Mint(secret, "alice", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(tok); err != nil || p.Grants != nil {
		t.Fatalf("a token without grants: %+v, %v", p, err)
	}
}
