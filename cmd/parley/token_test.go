package main

import (
	"maps"
	"strings"
	"testing"

	"github.com/parleychat/parley/auth"
)

// TestTokenChannels: --channel puts a channels claim in the token, one
// grant per flag.
func TestTokenChannels(t *testing.T) {
	secret := strings.Repeat("s", 32)
	env := map[string]string{"PARLEY_JWT_SECRET": secret}
	v := auth.NewVerifier([]byte(secret))
	p, err := v.Verify(mintToken(t, env, "--identity", "alice", "--channel", "general=write", "--channel", "news=read"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]auth.Access{"general": auth.Write, "news": auth.Read}; p.Grants == nil || !maps.Equal(p.Grants.Map(), want) {
		t.Fatalf("grants = %v, want %v", p.Grants, want)
	}
	p, err = v.Verify(mintToken(t, env, "--identity", "alice"))
	if err != nil || p.Grants != nil {
		t.Fatalf("a token without --channel: grants %v, %v", p.Grants, err)
	}
}
