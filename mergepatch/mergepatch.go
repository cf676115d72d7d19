// Package mergepatch applies JSON merge patches as RFC 7396 defines them: a
// patch object names the members to change, a null member removes one, and
// any other patch value replaces the target whole.
//
// Members keep their order: those of the target stay where they were, new
// ones follow in the patch's order. Values the patch does not touch keep
// their encoding byte for byte (numbers are never rounded through float64).
// The package imports nothing of Parley and is safe for concurrent use.
package mergepatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Apply returns target merged with patch, compactly encoded. An empty target
// is JSON null. The result is "null" when patch is null, as the RFC says.
// It fails when target or patch is not valid JSON.
func Apply(target, patch []byte) ([]byte, error) {
	if len(bytes.TrimSpace(target)) == 0 {
		target = []byte("null")
	}
	if !json.Valid(target) {
		return nil, errors.New("mergepatch: target is not valid JSON")
	}
	if !json.Valid(patch) {
		return nil, errors.New("mergepatch: patch is not valid JSON")
	}
	var buf bytes.Buffer
	if err := merge(&buf, target, patch); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// member is one name/value pair of an object, its value still encoded.
type member struct {
	name  string
	value json.RawMessage
}

// merge writes MergePatch(target, patch) to w; target may be nil for a
// member the target lacks.
func merge(w *bytes.Buffer, target, patch []byte) error {
	if !isObject(patch) {
		return json.Compact(w, patch)
	}
	var members []member
	if target != nil && isObject(target) {
		var err error
		if members, err = decodeObject(target); err != nil {
			return err
		}
	}
	changes, err := decodeObject(patch)
	if err != nil {
		return err
	}
	for _, c := range changes {
		i := indexOf(members, c.name)
		if bytes.Equal(bytes.TrimSpace(c.value), []byte("null")) {
			if i >= 0 {
				members = append(members[:i], members[i+1:]...)
			}
			continue
		}
		var old []byte
		if i >= 0 {
			old = members[i].value
		}
		var merged bytes.Buffer
		if err := merge(&merged, old, c.value); err != nil {
			return err
		}
		if i >= 0 {
			members[i].value = merged.Bytes()
		} else {
			members = append(members, member{c.name, merged.Bytes()})
		}
	}
	return encodeObject(w, members)
}

func indexOf(members []member, name string) int {
	for i, m := range members {
		if m.name == name {
			return i
		}
	}
	return -1
}

// isObject reports whether the valid JSON value v is an object.
func isObject(v []byte) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] == '{'
}

// decodeObject splits an encoded object into its members, in order; a name
// given twice keeps its last value at its first place.
func decodeObject(v []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	if _, err := dec.Token(); err != nil { // {
		return nil, fmt.Errorf("mergepatch: %w", err)
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("mergepatch: %w", err)
		}
		name, _ := tok.(string) // object keys are always strings
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("mergepatch: %w", err)
		}
		if i := indexOf(out, name); i >= 0 {
			out[i].value = value
		} else {
			out = append(out, member{name, value})
		}
	}
	return out, nil
}

// encodeObject writes members as a compact object.
func encodeObject(w *bytes.Buffer, members []member) error {
	w.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			w.WriteByte(',')
		}
		if err := writeString(w, m.name); err != nil {
			return err
		}
		w.WriteByte(':')
		if err := json.Compact(w, m.value); err != nil {
			return fmt.Errorf("mergepatch: %w", err)
		}
	}
	w.WriteByte('}')
	return nil
}

// writeString writes s as a JSON string, without escaping HTML characters.
func writeString(w *bytes.Buffer, s string) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("mergepatch: %w", err)
	}
	w.Truncate(w.Len() - 1) // Encode's newline
	return nil
}
