package media

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"time"
)

// Purpose says what a signed URL allows; a signature made for one purpose
// never verifies for another.
type Purpose string

// The purposes of signed URLs.
const (
	// PurposeUpload allows one PUT of an upload's bytes.
	PurposeUpload Purpose = "upload"
	// PurposeDownload allows GETs of a stored object.
	PurposeDownload Purpose = "download"
)

// Errors of Signer.Verify.
var (
	// ErrBadSignature refuses a URL whose signature does not match: it was
	// not made by this deployment, or was altered.
	ErrBadSignature = errors.New("media: bad URL signature")
	// ErrExpired refuses a URL whose expiry has passed.
	ErrExpired = errors.New("media: URL expired")
)

// Signer signs and verifies the expiring URLs of uploads and downloads:
// HMAC-SHA256 over the purpose, the object's id and the expiry time. Its
// key is derived from the server's secret (the JWT secret) with a label of
// its own, so a URL signature can never be taken for a token signature or
// the other way round, and every node of a deployment verifies what any
// node signed. It is safe for concurrent use.
type Signer struct {
	key []byte
}

// signerLabel separates the URL key from other uses of the secret.
const signerLabel = "parley media URL signing key v1"

// NewSigner returns a Signer whose key is HMAC-SHA256(secret, label).
func NewSigner(secret []byte) *Signer {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signerLabel))
	return &Signer{key: m.Sum(nil)}
}

// Sign returns the signature, base64url without padding, that lets a URL
// do purpose on id until expires (whole seconds).
func (s *Signer) Sign(purpose Purpose, id string, expires time.Time) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(purpose, id, expires.Unix()))
}

func (s *Signer) mac(purpose Purpose, id string, expires int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(string(purpose) + "\n" + id + "\n" + strconv.FormatInt(expires, 10)))
	return m.Sum(nil)
}

// Verify checks sig for purpose on id until expires, a Unix time in
// seconds as a decimal string, at now: ErrBadSignature when it does not
// match (or expires is not a number), ErrExpired when it matches but
// expires has passed. The comparison takes constant time.
func (s *Signer) Verify(purpose Purpose, id, expires, sig string, now time.Time) error {
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(purpose, id, exp)) {
		return ErrBadSignature
	}
	if now.Unix() >= exp {
		return ErrExpired
	}
	return nil
}
