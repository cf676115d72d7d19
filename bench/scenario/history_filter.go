package scenario

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parleychat/parley/models"
)

// HistoryAuthors is how many authors write a filtered history's fill:
// author 0 is the channel's owner, who also runs the timed queries.
const HistoryAuthors = 4

// HistoryFilter is the messages(filter:) that History's timed queries ask
// with. When a run has one, its fill varies the messages so that each
// field keeps some and drops others, by index i:
//
//   - author: 3 when i%100 == 50 (1 %), else i%3 (about a third each);
//   - type: LOCATION when i%100 == 77 (1 %), MEDIA when i%10 == 3 (10 %),
//     TEXT otherwise;
//   - the message mentions author 0 when i%20 == 7 (5 %).
//
// The fields combine as MessageFilter's do: every field given must hold.
type HistoryFilter struct {
	// Types keeps the messages of these types.
	Types []models.MessageType
	// Authors keeps the messages of these authors (0 to HistoryAuthors-1).
	Authors []int
	// HasMedia keeps the MEDIA messages (true) or the others (false).
	HasMedia *bool
	// MentionsMe keeps the messages that mention author 0 (true) or the
	// others (false).
	MentionsMe *bool
	spec       string
}

// ParseHistoryFilter reads parley-bench's --filter: comma-separated
// key=value fields, a field's values joined with '+': types=TEXT+MEDIA,
// authors=1+3, hasMedia=true, mentionsMe=false. An empty spec is no
// filter (nil).
func ParseHistoryFilter(spec string) (*HistoryFilter, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	f := &HistoryFilter{spec: spec}
	seen := map[string]bool{}
	for field := range strings.SplitSeq(spec, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok || value == "" {
			return nil, fmt.Errorf("filter field %q: want key=value", field)
		}
		if seen[key] {
			return nil, fmt.Errorf("filter field %q given twice", key)
		}
		seen[key] = true
		switch key {
		case "types":
			for v := range strings.SplitSeq(value, "+") {
				t := models.MessageType(strings.ToUpper(v))
				if err := t.UnmarshalGQL(string(t)); err != nil {
					return nil, fmt.Errorf("filter types: %w", err)
				}
				f.Types = append(f.Types, t)
			}
		case "authors":
			for v := range strings.SplitSeq(value, "+") {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n >= HistoryAuthors {
					return nil, fmt.Errorf("filter authors: %q is not an author number from 0 to %d", v, HistoryAuthors-1)
				}
				f.Authors = append(f.Authors, n)
			}
		case "hasMedia", "mentionsMe":
			b, err := strconv.ParseBool(value)
			if err != nil {
				return nil, fmt.Errorf("filter %s: %q is not true or false", key, value)
			}
			if key == "hasMedia" {
				f.HasMedia = &b
			} else {
				f.MentionsMe = &b
			}
		default:
			return nil, fmt.Errorf("filter field %q: want types, authors, hasMedia or mentionsMe", key)
		}
	}
	return f, nil
}

// String is the filter as --filter spells it.
func (f *HistoryFilter) String() string { return f.spec }

// historyMessage is the shape of the message at index i in a filtered
// history's fill (see HistoryFilter).
func historyMessage(i int) (author int, typ models.MessageType, mentioned bool) {
	author = i % 3
	if i%100 == 50 {
		author = 3
	}
	typ = models.MessageText
	switch {
	case i%100 == 77:
		typ = models.MessageLocation
	case i%10 == 3:
		typ = models.MessageMedia
	}
	return author, typ, i%20 == 7
}

// keeps reports whether the message at index i passes f.
func (f *HistoryFilter) keeps(i int) bool {
	author, typ, mentioned := historyMessage(i)
	if len(f.Types) > 0 && !slices.Contains(f.Types, typ) {
		return false
	}
	if len(f.Authors) > 0 && !slices.Contains(f.Authors, author) {
		return false
	}
	if f.HasMedia != nil && *f.HasMedia != (typ == models.MessageMedia) {
		return false
	}
	return f.MentionsMe == nil || *f.MentionsMe == mentioned
}

// last returns the indexes of the last n messages below `below` that f
// keeps, in ascending order; all the last n when f is nil.
func (f *HistoryFilter) last(below, n int) []int {
	var out []int
	for i := below - 1; i >= 0 && len(out) < n; i-- {
		if f == nil || f.keeps(i) {
			out = append(out, i)
		}
	}
	slices.Reverse(out)
	return out
}

// variables is f as a MessageFilter input, given the identities of the
// fill's authors.
func (f *HistoryFilter) variables(authors []string) map[string]any {
	v := map[string]any{}
	if len(f.Types) > 0 {
		v["types"] = f.Types
	}
	if len(f.Authors) > 0 {
		ids := make([]string, len(f.Authors))
		for i, a := range f.Authors {
			ids[i] = authors[a]
		}
		v["authors"] = ids
	}
	if f.HasMedia != nil {
		v["hasMedia"] = *f.HasMedia
	}
	if f.MentionsMe != nil {
		v["mentionsMe"] = *f.MentionsMe
	}
	return v
}
