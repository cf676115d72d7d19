package parleytest

import (
	"time"

	"github.com/parleychat/parley/auth"
)

// TokenWith mints a token for identity that expires after ttl and carries
// grants as its channels claim (none when grants is nil).
func (s *Server) TokenWith(identity string, grants map[string]auth.Access, ttl time.Duration) string {
	s.t.Helper()
	tok, err := auth.MintWithGrants(s.Secret, identity, "", grants, ttl, time.Now())
	if err != nil {
		s.t.Fatalf("mint token: %v", err)
	}
	return tok
}

// ClientWithToken returns a client that sends token as its bearer token.
func (s *Server) ClientWithToken(token string) *Client {
	return &Client{s: s, Authorization: "Bearer " + token}
}
