package db

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// secret is a row of parley_secrets: a named random value, such as a signing
// key, that every process sharing the database must agree on.
type secret struct {
	Key       string    `gorm:"column:key;primaryKey"`
	Value     string    `gorm:"column:value;not null"` // base64 (standard encoding)
	CreatedAt time.Time `gorm:"column:created_at;not null"`
}

// TableName names the table of secret.
func (secret) TableName() string { return "parley_secrets" }

// Secret returns the secret named key, creating it with generate if the
// database has none yet. generate must return a non-empty value; it runs only
// when the secret is missing, and its value is discarded if another caller
// stores one first.
//
// Secret is safe for concurrent use, also by several processes sharing the
// database: whoever stores the secret first wins (INSERT … ON CONFLICT DO
// NOTHING) and every caller returns the stored value. The value never appears
// in errors or logs.
func (s *Store) Secret(ctx context.Context, key string, generate func() ([]byte, error)) ([]byte, error) {
	if key == "" {
		return nil, errors.New("secret: empty key")
	}
	byKey := clause.Eq{Column: clause.Column{Name: "key"}, Value: key}
	var row secret
	err := s.DB(ctx).Where(byKey).Take(&row).Error
	switch {
	case err == nil:
		return decodeSecret(key, row.Value)
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return nil, fmt.Errorf("read secret %q: %w", key, err)
	}
	value, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generate secret %q: %w", key, err)
	}
	if len(value) == 0 {
		return nil, fmt.Errorf("generate secret %q: empty value", key)
	}
	err = s.Write(ctx, func(tx *gorm.DB) error {
		candidate := secret{Key: key, Value: base64.StdEncoding.EncodeToString(value)}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&candidate).Error; err != nil {
			return err
		}
		return tx.Where(byKey).Take(&row).Error
	})
	if err != nil {
		return nil, fmt.Errorf("store secret %q: %w", key, err)
	}
	return decodeSecret(key, row.Value)
}

// decodeSecret decodes the stored form of the secret named key.
func decodeSecret(key, stored string) ([]byte, error) {
	value, err := base64.StdEncoding.DecodeString(stored)
	if err != nil {
		return nil, fmt.Errorf("decode secret %q: %w", key, err)
	}
	return value, nil
}
