// Package auth verifies and mints the bearer tokens that identify callers,
// carries the caller's identity (a Principal) in a context.Context, and
// provides the HTTP middleware that puts it there.
//
// Tokens are HS256 JWTs signed with a secret shared by every server instance.
// The package only answers "who is calling"; it holds no permission rules and
// never touches a database. Every verification failure is an *apperr.Error
// with code apperr.Unauthenticated and a message that is safe to show to the
// client.
package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/apperr"
)

const (
	// MaxIdentityLen is the largest accepted identity (the sub claim), in bytes.
	MaxIdentityLen = 256

	// SecretLen is the length in bytes of a secret made by GenerateSecret.
	SecretLen = 32

	// maxTokenLen bounds the work spent on a token before its signature is
	// checked; real tokens are a few hundred bytes.
	maxTokenLen = 8 << 10

	// DefaultLeeway is the clock skew tolerated on exp, iat and nbf.
	DefaultLeeway = 30 * time.Second
)

// Principal is who the caller is, as established by a verified token.
type Principal struct {
	// Identity is the token's sub claim: non-empty, at most MaxIdentityLen bytes.
	Identity string
	// Name is the optional friendly name from the token's name claim.
	Name string
	// ExpiresAt is when the token stops being valid.
	ExpiresAt time.Time
	// Grants, when not nil, are the only channels the token may use (the
	// token's channels claim).
	Grants *Grants
	// Admin is the token's admin claim, for the application's backend: it
	// may act on any channel as its OWNER and use the admin API. Always
	// false when the Verifier ignores the claim (WithoutAdmin).
	Admin bool
	// Session, set by a realtime transport and not by the token, names
	// the open connection the caller authenticated (see hub.OpenSession):
	// refreshSession renews that connection's token. Empty over HTTP.
	Session string
}

// Access is what a grant allows on one channel.
type Access string

// The values of the channels claim.
const (
	// Read allows reading a channel, as a member with READ access.
	Read Access = "read"
	// Write allows reading and writing, as far as membership allows.
	Write Access = "write"
)

// Grants restricts a token to some channels, named by id or uniqueName.
// A nil *Grants restricts nothing; an empty one allows no channel at all.
// Grants are immutable once made, and safe for concurrent use.
type Grants struct {
	byKey map[string]Access
}

// checkGrants reports what is wrong with m, or "".
func checkGrants(m map[string]Access) string {
	for key, access := range m {
		if key == "" {
			return "channels claim has an empty key"
		}
		if access != Read && access != Write {
			return fmt.Sprintf("channels claim value %q must be \"read\" or \"write\"", access)
		}
	}
	return ""
}

// Access returns the access granted under key, and false when key is not
// granted.
func (g *Grants) Access(key string) (Access, bool) {
	a, ok := g.byKey[key]
	return a, ok
}

// Keys returns the granted keys, sorted.
func (g *Grants) Keys() []string {
	return slices.Sorted(maps.Keys(g.byKey))
}

// Map returns a copy of the grants as a map.
func (g *Grants) Map() map[string]Access { return maps.Clone(g.byKey) }

// claims is the payload of a token.
type claims struct {
	Name string `json:"name,omitempty"`
	// Channels is kept encoded so that a malformed claim gets a message of
	// its own rather than "malformed token".
	Channels json.RawMessage `json:"channels,omitempty"`
	// Admin marks a token of the application's backend.
	Admin bool `json:"admin,omitempty"`
	jwt.RegisteredClaims
}

// numericClaims are the claims RFC 7519 defines as NumericDate: JSON
// numbers of seconds since the epoch.
var numericClaims = []string{"exp", "iat", "nbf"}

// claimTypeError refuses a token whose claim has the wrong JSON type.
type claimTypeError struct{ claim, want string }

func (e *claimTypeError) Error() string { return "token " + e.claim + " must be " + e.want }

// UnmarshalJSON decodes the payload, refusing exp, iat and nbf that are not
// JSON numbers: the JWT library would take the string "1700000000" too.
func (c *claims) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for _, name := range numericClaims {
		if v, ok := raw[name]; ok && !isJSONNumber(v) {
			return &claimTypeError{claim: name, want: "a number"}
		}
	}
	type plain claims // without this method
	return json.Unmarshal(b, (*plain)(c))
}

// isJSONNumber reports whether v, one encoded JSON value, is a number.
func isJSONNumber(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// textProblem says why s cannot be stored as text, or "": PostgreSQL
// stores neither NUL nor invalid UTF-8.
func textProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "holds a NUL character"
	}
	return ""
}

// grants decodes the channels claim: nil when absent or null.
func (c *claims) grants() (*Grants, *apperr.Error) {
	if len(c.Channels) == 0 || string(c.Channels) == "null" {
		return nil, nil
	}
	m := map[string]Access{}
	if err := json.Unmarshal(c.Channels, &m); err != nil {
		return nil, unauthenticated("channels claim must be an object of \"read\" or \"write\" values")
	}
	if msg := checkGrants(m); msg != "" {
		return nil, unauthenticated(msg)
	}
	return &Grants{byKey: m}, nil
}

// Verifier checks tokens signed with one shared secret. A Verifier is
// immutable after NewVerifier and safe for concurrent use.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
	leeway time.Duration
	// noAdmin ignores the admin claim.
	noAdmin bool
}

// VerifierOption changes a Verifier.
type VerifierOption func(*Verifier)

// WithLeeway sets the clock skew tolerated on exp, iat and nbf (default
// DefaultLeeway). A connection that outlives its token's exp closes when
// exp plus this leeway passes, as a handshake would then refuse it.
func WithLeeway(d time.Duration) VerifierOption { return func(v *Verifier) { v.leeway = d } }

// WithoutAdmin makes the Verifier ignore the admin claim: no principal is
// an admin (PARLEY_ADMIN=false).
func WithoutAdmin() VerifierOption { return func(v *Verifier) { v.noAdmin = true } }

// Leeway is the clock skew the Verifier tolerates: a token is valid until
// its exp plus Leeway.
func (v *Verifier) Leeway() time.Duration { return v.leeway }

// NewVerifier returns a Verifier for tokens signed with secret. It keeps its
// own copy of secret. It panics if secret is empty, because an empty HMAC key
// would let anyone mint tokens; that is a configuration error, not a runtime
// condition.
func NewVerifier(secret []byte, opts ...VerifierOption) *Verifier {
	if len(secret) == 0 {
		panic("auth: NewVerifier called with an empty secret")
	}
	v := &Verifier{secret: append([]byte(nil), secret...), leeway: DefaultLeeway}
	for _, o := range opts {
		o(v)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.leeway),
	)
	return v
}

// Verify checks token's signature (HS256 only), expiry and subject and returns
// the Principal it names. Every failure is an *apperr.Error with code
// apperr.Unauthenticated and a short client-safe message such as
// "token expired" or "invalid token signature". Verify is safe for concurrent
// use.
func (v *Verifier) Verify(token string) (Principal, error) {
	p, err := v.verify(token)
	if err != nil {
		return Principal{}, err
	}
	return p, nil
}

// verify is Verify with a concrete error type, so that a nil error never
// becomes a non-nil interface.
func (v *Verifier) verify(token string) (Principal, *apperr.Error) {
	if len(token) > maxTokenLen {
		return Principal{}, unauthenticated("malformed token")
	}
	var c claims
	parsed, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		return v.secret, nil
	})
	if err != nil {
		return Principal{}, unauthenticated(failureMessage(parsed, err))
	}
	if _, ok := parsed.Header["crit"]; ok {
		// RFC 7515 4.1.11: a recipient must refuse critical extensions it
		// does not understand, and Parley understands none.
		return Principal{}, unauthenticated("token has a crit header; no extension is supported")
	}
	switch {
	case c.Subject == "":
		return Principal{}, unauthenticated("token is missing sub")
	case len(c.Subject) > MaxIdentityLen:
		return Principal{}, unauthenticated("token sub is too long")
	}
	if why := textProblem(c.Subject); why != "" {
		return Principal{}, unauthenticated("token sub " + why)
	}
	if why := textProblem(c.Name); why != "" {
		return Principal{}, unauthenticated("token name " + why)
	}
	grants, gerr := c.grants()
	if gerr != nil {
		return Principal{}, gerr
	}
	return Principal{Identity: c.Subject, Name: c.Name, ExpiresAt: c.ExpiresAt.Time, Grants: grants, Admin: c.Admin && !v.noAdmin}, nil
}

// failureMessage turns a jwt parse error into a client-safe message.
func failureMessage(parsed *jwt.Token, err error) string {
	if te, ok := errors.AsType[*claimTypeError](err); ok {
		return te.Error()
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The alg header is missing or names no known method.
		return "unexpected signing method"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// The parser reports a disallowed alg with the same sentinel as a
		// bad signature; tell them apart by the alg the token claims.
		if parsed != nil && parsed.Method != nil && parsed.Method.Alg() != jwt.SigningMethodHS256.Alg() {
			return "unexpected signing method"
		}
		return "invalid token signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token is missing exp"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token used before issued"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	default:
		return "invalid token"
	}
}

func unauthenticated(msg string) *apperr.Error {
	return apperr.New(apperr.Unauthenticated, "%s", msg)
}

// Mint signs an HS256 token for identity with secret. The token carries sub =
// identity, name (omitted when empty), iat = now and exp = now+ttl. It returns
// an error, never an *apperr.Error (apperr.CodeOf reports apperr.Internal),
// when secret is empty, identity is empty or longer than MaxIdentityLen bytes,
// or ttl is not positive. Mint is safe for concurrent use.
func Mint(secret []byte, identity, name string, ttl time.Duration, now time.Time) (string, error) {
	return MintWithGrants(secret, identity, name, nil, ttl, now)
}

// MintWithGrants is Mint with a channels claim holding grants (none when
// grants is nil). It also fails when a grant has an empty key or a value
// other than Read and Write.
func MintWithGrants(secret []byte, identity, name string, grants map[string]Access, ttl time.Duration, now time.Time) (string, error) {
	return mint(secret, identity, name, grants, false, ttl, now)
}

// MintAdmin is Mint with the admin claim: a token for the application's
// backend, which may act on any channel as its OWNER and use the admin API
// (unless the server ignores the claim). Whoever holds secret can mint one.
func MintAdmin(secret []byte, identity, name string, ttl time.Duration, now time.Time) (string, error) {
	return mint(secret, identity, name, nil, true, ttl, now)
}

// mint signs a token with the given claims.
func mint(secret []byte, identity, name string, grants map[string]Access, admin bool, ttl time.Duration, now time.Time) (string, error) {
	var channels json.RawMessage
	if grants != nil {
		if msg := checkGrants(grants); msg != "" {
			return "", fmt.Errorf("auth: mint: %s", msg)
		}
		var err error
		if channels, err = json.Marshal(grants); err != nil {
			return "", fmt.Errorf("auth: mint: %w", err)
		}
	}
	switch {
	case len(secret) == 0:
		return "", errors.New("auth: mint: empty secret")
	case identity == "":
		return "", errors.New("auth: mint: empty identity")
	case len(identity) > MaxIdentityLen:
		return "", fmt.Errorf("auth: mint: identity is %d bytes, at most %d allowed", len(identity), MaxIdentityLen)
	case ttl <= 0:
		return "", fmt.Errorf("auth: mint: ttl %v is not positive", ttl)
	}
	c := claims{
		Name:     name,
		Channels: channels,
		Admin:    admin,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   identity,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	return signed, nil
}

// GenerateSecret returns SecretLen bytes from crypto/rand, suitable as the
// shared signing secret. Its error, if any, is not an *apperr.Error.
func GenerateSecret() ([]byte, error) {
	secret := make([]byte, SecretLen)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("auth: generate secret: %w", err)
	}
	return secret, nil
}

// BearerToken extracts the token from an Authorization header value of the
// form "Bearer <token>". The scheme is matched case-insensitively and
// surrounding spaces are trimmed. It reports false when the scheme is not
// Bearer or the token is empty.
func BearerToken(header string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// principalKey is the context key for the Principal.
type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal carried by ctx. It reports false when ctx
// carries none or one with an empty Identity, i.e. when the caller is
// anonymous.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	if !ok || p.Identity == "" {
		return Principal{}, false
	}
	return p, true
}

// Middleware authenticates HTTP requests from their Authorization header:
//
//   - no header: the request passes through anonymous (no Principal in its
//     context); resolvers decide whether that is allowed;
//   - a valid Bearer token: the Principal is put in the request context;
//   - anything else: the response is HTTP 401 with a GraphQL-shaped JSON body
//     whose extensions.code is UNAUTHENTICATED, and next is not called.
//
// A WebSocket upgrade request with an invalid header is passed through
// anonymous instead, because the WebSocket connection_init step (see
// FromInitPayload) authenticates it later. The returned handler is safe for
// concurrent use.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values("Authorization")
		if len(values) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		p, err := v.fromHeader(values)
		if err != nil {
			if isWebSocketUpgrade(r) {
				next.ServeHTTP(w, r)
				return
			}
			writeUnauthenticated(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// fromHeader verifies the token in the Authorization header values.
func (v *Verifier) fromHeader(values []string) (Principal, *apperr.Error) {
	if len(values) > 1 {
		return Principal{}, unauthenticated("multiple authorization headers")
	}
	token, ok := BearerToken(values[0])
	if !ok {
		return Principal{}, unauthenticated("authorization header must be \"Bearer <token>\"")
	}
	return v.verify(token)
}

// isWebSocketUpgrade reports whether r asks to upgrade to the WebSocket
// protocol.
func isWebSocketUpgrade(r *http.Request) bool {
	for _, value := range r.Header.Values("Upgrade") {
		for protocol := range strings.SplitSeq(value, ",") {
			if strings.EqualFold(strings.TrimSpace(protocol), "websocket") {
				return true
			}
		}
	}
	return false
}

// writeUnauthenticated writes a 401 response carrying err.
func writeUnauthenticated(w http.ResponseWriter, err *apperr.Error) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	apperr.WriteHTTP(w, http.StatusUnauthorized, err)
}

// FromInitPayload authenticates a WebSocket connection from its
// connection_init payload. The token is read from the first present key of
// "authorization", "Authorization" (either "Bearer <token>" or the bare
// token) and "token" (the bare token). Every failure is an *apperr.Error with
// code apperr.Unauthenticated: "missing token" when no key holds a non-empty
// string, "malformed token" when a value is neither a string nor null, otherwise the
// messages of Verify. FromInitPayload is safe for concurrent use.
func (v *Verifier) FromInitPayload(payload map[string]any) (Principal, error) {
	for _, key := range []string{"authorization", "Authorization", "token"} {
		raw := payload[key]
		if raw == nil {
			continue
		}
		value, ok := raw.(string)
		if !ok {
			return Principal{}, unauthenticated("malformed token")
		}
		value = strings.TrimSpace(value)
		if value == "" {
			continue
		}
		token := value
		if key != "token" {
			if bearer, ok := BearerToken(value); ok {
				token = bearer
			}
		}
		return v.Verify(token)
	}
	return Principal{}, unauthenticated("missing token")
}
