package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// ChannelFilter narrows MyChannels. Empty fields filter nothing; the
// fields combine with AND, the values of one field with OR.
type ChannelFilter struct {
	Types    []models.ChannelType
	Statuses []models.ChannelStatus
	States   []models.ChannelState
	// HasUnread keeps the channels with (true) or without (false) unread
	// messages for the caller.
	HasUnread *bool
	// Attributes keeps the channels whose attributes contain this object:
	// every key it names, recursively, with an equal value; an array in
	// it matches an array that holds each of its values.
	Attributes models.JSON
}

// filterMyChannels adds f's conditions to a myChannels query, which joins
// each channel to the caller's membership as m. BAD_USER_INPUT for an
// attributes filter that is not an object of objects, scalars and arrays
// of scalars, or over the attributes limit.
func (s *Service) filterMyChannels(q *gorm.DB, f ChannelFilter) (*gorm.DB, error) {
	if len(f.Types) > 0 {
		q = q.Where("channels.type IN ?", f.Types)
	}
	if len(f.States) > 0 {
		q = q.Where("channels.state IN ?", f.States)
	}
	if len(f.Statuses) > 0 {
		// Every channel listed has a membership: NOT_PARTICIPATING
		// matches none.
		var statuses []models.MemberStatus
		for _, st := range f.Statuses {
			switch st {
			case models.StatusJoined:
				statuses = append(statuses, models.MemberJoined)
			case models.StatusInvited:
				statuses = append(statuses, models.MemberInvited)
			}
		}
		if len(statuses) == 0 {
			q = q.Where("1 = 0")
		} else {
			q = q.Where("m.status IN ?", statuses)
		}
	}
	if f.HasUnread != nil {
		// As UnreadCount counts, for joined members only: not deleted,
		// not SYSTEM, not the caller's own, after their horizon.
		unread := "(m.status = ? AND " + unreadSQL("channels") + " > 0)"
		if !*f.HasUnread {
			unread = "NOT " + unread
		}
		q = q.Where(unread, models.MemberJoined)
	}
	if f.Attributes != nil {
		if err := s.checkAttributes(f.Attributes); err != nil {
			return nil, err
		}
		cond, args, err := containsAttributes(q.Dialector.Name(), f.Attributes)
		if err != nil {
			return nil, err
		}
		q = q.Where(cond, args...)
	}
	return q, nil
}

// errAttributesFilter is the answer to an attributes filter Parley does not
// apply the same way on both databases.
func errAttributesFilter() error {
	return apperr.New(apperr.BadUserInput, "filter.attributes must be an object whose values are objects, strings, numbers, booleans, null or arrays of those scalars")
}

// containsAttributes returns a condition that channels.attributes contains
// filter, an encoded JSON object. On PostgreSQL it is jsonb containment
// (@>), which the GIN index idx_channels_attributes serves; on SQLite the
// same test is spelled out with json_type and json_extract per leaf, and
// json_each for arrays.
func containsAttributes(dialect string, filter models.JSON) (string, []any, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(filter))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return "", nil, errAttributesFilter()
	}
	if err := checkFilterValue(obj); err != nil {
		return "", nil, err
	}
	if dialect != "sqlite" {
		return "channels.attributes @> CAST(? AS jsonb)", []any{string(filter)}, nil
	}
	var conds []string
	var args []any
	sqliteContains("$", obj, &conds, &args)
	if len(conds) == 0 {
		return "json_type(channels.attributes) = 'object'", nil, nil
	}
	return strings.Join(conds, " AND "), args, nil
}

// checkFilterValue accepts objects, scalars and arrays of scalars, with keys
// that SQLite's JSON paths can quote (no '"' or '\').
func checkFilterValue(v any) error {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if strings.ContainsAny(k, `"\`) {
				return apperr.New(apperr.BadUserInput, "filter.attributes keys must not contain '\"' or '\\'")
			}
			if err := checkFilterValue(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				return errAttributesFilter()
			}
		}
	}
	return nil
}

// sqliteContains appends the conditions that the attributes hold obj at
// path.
func sqliteContains(path string, obj map[string]any, conds *[]string, args *[]any) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := path + `."` + k + `"` // checkFilterValue refused keys with '"' or '\'
		switch v := obj[k].(type) {
		case map[string]any:
			*conds = append(*conds, "json_type(channels.attributes, ?) = 'object'")
			*args = append(*args, p)
			sqliteContains(p, v, conds, args)
		case []any:
			*conds = append(*conds, "json_type(channels.attributes, ?) = 'array'")
			*args = append(*args, p)
			for _, e := range v {
				cond, eargs := sqliteScalar("j.value", "j.type", e)
				*conds = append(*conds, "EXISTS (SELECT 1 FROM json_each(channels.attributes, ?) AS j WHERE "+cond+")")
				*args = append(append(*args, p), eargs...)
			}
		default:
			cond, eargs := sqliteScalar("json_extract(channels.attributes, ?)", "json_type(channels.attributes, ?)", v)
			*conds = append(*conds, cond)
			for range strings.Count(cond, "?") - len(eargs) {
				*args = append(*args, p)
			}
			*args = append(*args, eargs...)
		}
	}
}

// sqliteScalar is the condition that the JSON value with SQL value
// expression value and json_type expression typ equals the scalar v, and
// its arguments after those of value and typ.
func sqliteScalar(value, typ string, v any) (string, []any) {
	switch x := v.(type) {
	case nil:
		return typ + " = 'null'", nil
	case bool:
		return fmt.Sprintf("%s = '%t'", typ, x), nil
	case string:
		return typ + " = 'text' AND " + value + " = ?", []any{x}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return typ + " IN ('integer', 'real') AND " + value + " = ?", []any{n}
		}
		f, _ := x.Float64() // a json.Number always parses as a float
		return typ + " IN ('integer', 'real') AND " + value + " = ?", []any{f}
	}
	return "1 = 0", nil
}
