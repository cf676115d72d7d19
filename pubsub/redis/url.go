package redis

import (
	"errors"
	"fmt"
	"net/url"

	goredis "github.com/redis/go-redis/v9"
)

// CheckURL reports whether NewFromURL accepts url (redis://, rediss:// or
// unix://, see go-redis's ParseURL), without connecting. The error never
// holds the URL, which may hold a password. It is safe for concurrent use.
func CheckURL(rawURL string) error {
	if _, err := goredis.ParseURL(rawURL); err != nil {
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err
		}
		return fmt.Errorf("redis url: %w", err)
	}
	return nil
}
