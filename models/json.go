package models

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// JSON is an arbitrary JSON value kept in its encoded form. A nil JSON is SQL
// NULL and GraphQL null. It is the Go side of the GraphQL JSON scalar.
type JSON json.RawMessage

// Value stores the encoded JSON, or NULL when empty.
func (j JSON) Value() (driver.Value, error) {
	if len(j) == 0 {
		return nil, nil
	}
	return string(j), nil
}

// Scan reads a stored value written by Value.
func (j *JSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case []byte:
		*j = append(JSON(nil), v...)
	case string:
		*j = JSON(v)
	default:
		return fmt.Errorf("scan JSON from %T", src)
	}
	return nil
}

// GormDBDataType picks jsonb on PostgreSQL and text elsewhere.
func (JSON) GormDBDataType(db *gorm.DB, _ *schema.Field) string {
	if db.Dialector.Name() == "postgres" {
		return "jsonb"
	}
	return "text"
}

// MarshalGQL writes the value as it is, or null.
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(j)
}

// UnmarshalGQL encodes a value decoded from GraphQL input. JSON null becomes
// a nil JSON.
func (j *JSON) UnmarshalGQL(v any) error {
	if v == nil {
		*j = nil
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("JSON scalar: %w", err)
	}
	*j = JSON(bytes.TrimRight(buf.Bytes(), "\n"))
	return nil
}

// MarshalJSON writes the value as it is, or null.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON keeps the encoded value; null becomes a nil JSON.
func (j *JSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*j = nil
		return nil
	}
	*j = append(JSON(nil), b...)
	return nil
}
