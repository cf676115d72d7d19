package server_test

import (
	"testing"
	"time"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/parleytest"
)

const sessionQuery = `{ session { identity expiresAt grants { key read write channel { id uniqueName } } } }`

type sessionData struct {
	Identity  string
	ExpiresAt time.Time
	Grants    []struct {
		Key         string
		Read, Write bool
		Channel     *struct {
			ID         string
			UniqueName *string
		}
	}
}

// TestSession: session states the token's identity, expiry and grants;
// refreshSession checks a fresh token of the same identity and returns its
// session.
func TestSession(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		general := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "uniqueName": "general"})
		secret := mustCreateChannel(t, srv.Client("bob"), map[string]any{"type": "PRIVATE", "uniqueName": "bobs"})

		var out struct{ Session sessionData }
		alice.Do(sessionQuery, nil, &out)
		if s := out.Session; s.Identity != "alice" || s.Grants != nil || time.Until(s.ExpiresAt) < 50*time.Minute || time.Until(s.ExpiresAt) > time.Hour {
			t.Fatalf("session = %+v", s)
		}

		tok := srv.TokenWith("alice", map[string]auth.Access{"general": auth.Write, secret: auth.Read, "nowhere": auth.Read}, 10*time.Minute)
		limited := srv.ClientWithToken(tok)
		limited.Do(sessionQuery, nil, &out)
		s := out.Session
		if s.Identity != "alice" || len(s.Grants) != 3 || time.Until(s.ExpiresAt) > 10*time.Minute {
			t.Fatalf("limited session = %+v", s)
		}
		// Sorted by key; a channel alice may not see, or none at all, is null.
		byKey := map[string]int{}
		for i, g := range s.Grants {
			byKey[g.Key] = i
			if !g.Read {
				t.Errorf("grant %s: read is false", g.Key)
			}
		}
		if g := s.Grants[byKey["general"]]; !g.Write || g.Channel == nil || g.Channel.ID != general {
			t.Errorf("general grant = %+v", g)
		}
		if g := s.Grants[byKey[secret]]; g.Write || g.Channel != nil {
			t.Errorf("grant of bob's private channel = %+v, want read and no channel", g)
		}
		if g := s.Grants[byKey["nowhere"]]; g.Channel != nil {
			t.Errorf("grant of a missing channel = %+v", g)
		}
		if s.Grants[0].Key > s.Grants[1].Key || s.Grants[1].Key > s.Grants[2].Key {
			t.Errorf("grants not sorted: %+v", s.Grants)
		}

		const refresh = `mutation($t: String!) { refreshSession(token: $t) { identity expiresAt grants { key write } } }`
		fresh := srv.TokenWith("alice", map[string]auth.Access{"general": auth.Read}, 2*time.Hour)
		var refreshed struct{ RefreshSession sessionData }
		limited.Do(refresh, map[string]any{"t": fresh}, &refreshed)
		if r := refreshed.RefreshSession; r.Identity != "alice" || time.Until(r.ExpiresAt) < 110*time.Minute || len(r.Grants) != 1 || r.Grants[0].Write {
			t.Fatalf("refreshSession = %+v", r)
		}
		alice.Fails("FORBIDDEN", refresh, map[string]any{"t": srv.Token("bob")})
		alice.Fails("UNAUTHENTICATED", refresh, map[string]any{"t": "not-a-token"})
		expired, err := auth.Mint(srv.Secret, "alice", "", time.Minute, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if msg := alice.Fails("UNAUTHENTICATED", refresh, map[string]any{"t": expired}); msg != "token expired" {
			t.Errorf("expired token: %q", msg)
		}
		srv.Client("").Fails("UNAUTHENTICATED", refresh, map[string]any{"t": fresh})
		srv.Client("").Fails("UNAUTHENTICATED", sessionQuery, nil)
	})
}
