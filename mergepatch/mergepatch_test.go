package mergepatch_test

import (
	"testing"

	"github.com/parleychat/parley/mergepatch"
)

// TestRFC7396Examples runs every example of RFC 7396, Appendix A, and the
// one of its section 3.
func TestRFC7396Examples(t *testing.T) {
	for _, c := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		// Section 3.
		{
			`{"title":"Goodbye!","author":{"givenName":"John","familyName":"Doe"},"tags":["example","sample"],"content":"This will be unchanged"}`,
			`{"title":"Hello!","phoneNumber":"+01-123-456-7890","author":{"familyName":null},"tags":["example"]}`,
			`{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}`,
		},
	} {
		got, err := mergepatch.Apply([]byte(c.target), []byte(c.patch))
		if err != nil {
			t.Errorf("Apply(%s, %s): %v", c.target, c.patch, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("Apply(%s, %s) = %s, want %s", c.target, c.patch, got, c.want)
		}
	}
}

func TestApplyKeepsEncodingsAndHandlesEdges(t *testing.T) {
	for _, c := range []struct{ name, target, patch, want string }{
		{"empty target is null", ``, `{"a":1}`, `{"a":1}`},
		{"null target", `null`, `{"a":{"b":null}}`, `{"a":{}}`},
		{"untouched numbers keep their digits", `{"big":12345678901234567890,"f":1.50}`, `{"x":true}`, `{"big":12345678901234567890,"f":1.50,"x":true}`},
		{"whitespace is compacted", "{ \"a\" : [ 1 , 2 ] }", `{ "b" : { "c" : 3 } }`, `{"a":[1,2],"b":{"c":3}}`},
		{"HTML characters are not escaped", `{}`, `{"<a>":"&"}`, `{"<a>":"&"}`},
		{"a duplicate name keeps its last value", `{"a":1,"a":2}`, `{}`, `{"a":2}`},
		{"empty patch changes nothing", `{"a":1}`, `{}`, `{"a":1}`},
	} {
		got, err := mergepatch.Apply([]byte(c.target), []byte(c.patch))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	for _, c := range []struct{ target, patch string }{{`{`, `{}`}, {`{}`, `{"a":}`}, {`{}`, ``}} {
		if _, err := mergepatch.Apply([]byte(c.target), []byte(c.patch)); err == nil {
			t.Errorf("Apply(%q, %q) succeeded; want an error", c.target, c.patch)
		}
	}
}
