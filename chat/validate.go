package chat

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// checkName validates an optional friendly or unique name.
func (s *Service) checkName(field string, v *string) error {
	if v == nil {
		return nil
	}
	if n := utf8.RuneCountInString(*v); n > s.limits.MaxNameChars {
		return apperr.New(apperr.BadUserInput, "%s is %d characters; the limit is %d", field, n, s.limits.MaxNameChars)
	}
	if !utf8.ValidString(*v) {
		return apperr.New(apperr.BadUserInput, "%s is not valid UTF-8", field)
	}
	return nil
}

// checkUniqueName validates a unique name: non-empty when set.
func (s *Service) checkUniqueName(v *string) error {
	if v != nil && strings.TrimSpace(*v) == "" {
		return apperr.New(apperr.BadUserInput, "uniqueName must not be empty; use null for none")
	}
	return s.checkName("uniqueName", v)
}

// checkAttributes validates encoded attributes.
func (s *Service) checkAttributes(a models.JSON) error {
	if len(a) > s.limits.MaxAttributesBytes {
		return apperr.New(apperr.BadUserInput, "attributes are %d bytes encoded; the limit is %d bytes", len(a), s.limits.MaxAttributesBytes)
	}
	return nil
}

// maxPhotoURLBytes caps a photoUrl.
const maxPhotoURLBytes = 2 << 10

// checkPhotoURL validates an optional photoUrl: an absolute http or https
// URL with a host, without spaces, of at most 2 KiB.
func checkPhotoURL(v *string) error {
	if v == nil {
		return nil
	}
	if len(*v) > maxPhotoURLBytes {
		return apperr.New(apperr.BadUserInput, "photoUrl is %d bytes; the limit is %d bytes", len(*v), maxPhotoURLBytes)
	}
	u, err := url.Parse(*v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		!utf8.ValidString(*v) || strings.ContainsFunc(*v, unicode.IsSpace) {
		return apperr.New(apperr.BadUserInput, "photoUrl must be an absolute http or https URL")
	}
	return nil
}

// checkBody validates a message body.
func (s *Service) checkBody(body string) error {
	if strings.TrimSpace(body) == "" {
		return apperr.New(apperr.BadUserInput, "body must not be empty")
	}
	if len(body) > s.limits.MaxBodyBytes {
		return apperr.New(apperr.BadUserInput, "body is %d bytes; the limit is %d bytes", len(body), s.limits.MaxBodyBytes)
	}
	if !utf8.ValidString(body) {
		return apperr.New(apperr.BadUserInput, "body is not valid UTF-8")
	}
	return nil
}

// checkIdentity validates an identity named by a client.
func checkIdentity(identity string) error {
	if strings.TrimSpace(identity) == "" {
		return apperr.New(apperr.BadUserInput, "identity must not be empty")
	}
	if len(identity) > 256 {
		return apperr.New(apperr.BadUserInput, "identity is %d bytes; the limit is 256", len(identity))
	}
	return nil
}

// truncateChars cuts s to at most n characters.
func truncateChars(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
