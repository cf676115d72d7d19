package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/parleychat/parley/graph"
	"github.com/parleychat/parley/parleytest"
)

// textArg is one string somewhere in one argument of a root field: the
// variables that reach it, and its path as the error names it.
type textArg struct {
	op, field, path string
	build           func(bad string) (query string, vars map[string]any)
}

// textArgs derives, from the schema, every string (String, ID, or inside
// JSON) that a Query or Mutation field takes, nested ones included. Every
// other argument gets a value of its type; the operation never runs, so
// the values need not name anything.
func textArgs(t *testing.T) []textArg {
	t.Helper()
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	var out []textArg
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation} {
		op := strings.ToLower(root.Name)
		for _, f := range root.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			sel := ""
			if def := schema.Types[f.Type.Name()]; def.Kind == ast.Object {
				sel = " { __typename }"
			}
			for target, arg := range f.Arguments {
				for _, path := range stringPaths(schema, arg.Type, arg.Name, 0) {
					out = append(out, textArg{op: op, field: f.Name, path: path.name, build: func(bad string) (string, map[string]any) {
						var decl, args []string
						vars := map[string]any{}
						for i, a := range f.Arguments {
							name := fmt.Sprintf("a%d", i)
							decl = append(decl, "$"+name+": "+a.Type.String())
							args = append(args, a.Name+": $"+name)
							v := sampleValue(schema, a.Type, 0)
							if i == target {
								v = path.set(bad)
							}
							vars[name] = v
						}
						return fmt.Sprintf("%s(%s) { %s(%s)%s }", op, strings.Join(decl, ", "), f.Name, strings.Join(args, ", "), sel), vars
					}})
				}
			}
		}
	}
	return out
}

// stringPath is one string inside a value of some type: set builds a
// value of the type with bad at that string.
type stringPath struct {
	name string
	set  func(bad string) any
}

// stringPaths lists the strings a value of typ can hold, named from name.
func stringPaths(schema *ast.Schema, typ *ast.Type, name string, depth int) []stringPath {
	if depth > 3 {
		return nil
	}
	if typ.Elem != nil {
		var out []stringPath
		for _, p := range stringPaths(schema, typ.Elem, name+"[0]", depth+1) {
			out = append(out, stringPath{p.name, func(bad string) any { return []any{p.set(bad)} }})
		}
		return out
	}
	def := schema.Types[typ.Name()]
	switch {
	case typ.Name() == "String" || typ.Name() == "ID":
		return []stringPath{{name, func(bad string) any { return bad }}}
	case typ.Name() == "JSON":
		return []stringPath{
			{name + ".k[1].deep", func(bad string) any { return map[string]any{"k": []any{1, map[string]any{"deep": bad}}} }},
			// A key is named with its NUL escaped; bad is always "a\x00b".
			{name + `.keya\u0000b`, func(bad string) any { return map[string]any{"key" + bad: 1} }},
		}
	case def != nil && def.Kind == ast.InputObject:
		var out []stringPath
		for _, fd := range def.Fields {
			for _, p := range stringPaths(schema, fd.Type, name+"."+fd.Name, depth+1) {
				out = append(out, stringPath{p.name, func(bad string) any {
					v := sampleValue(schema, typ, depth).(map[string]any)
					v[fd.Name] = p.set(bad)
					return v
				}})
			}
		}
		return out
	}
	return nil
}

// sampleValue is a valid value of typ: its required input fields set.
func sampleValue(schema *ast.Schema, typ *ast.Type, depth int) any {
	if typ.Elem != nil {
		return []any{sampleValue(schema, typ.Elem, depth+1)}
	}
	def := schema.Types[typ.Name()]
	switch {
	case typ.Name() == "Int":
		return 1
	case typ.Name() == "Float":
		return 1.5
	case typ.Name() == "Boolean":
		return true
	case typ.Name() == "JSON":
		return map[string]any{"k": "v"}
	case typ.Name() == "DateTime":
		return time.Now().UTC().Format(time.RFC3339)
	case def != nil && def.Kind == ast.Enum:
		return def.EnumValues[0].Name
	case def != nil && def.Kind == ast.InputObject:
		v := map[string]any{}
		for _, fd := range def.Fields {
			if fd.Type.NonNull && fd.DefaultValue == nil {
				v[fd.Name] = sampleValue(schema, fd.Type, depth+1)
			}
		}
		return v
	}
	return "x"
}

// TestStringsAtTheBoundary: every string argument of every query and
// mutation, nested ones and those inside JSON values included, is refused
// with BAD_USER_INPUT naming the argument when it holds a NUL character,
// on both databases alike, and nothing is written. The arguments are
// derived from the schema, so a new field is covered by itself.
func TestStringsAtTheBoundary(t *testing.T) {
	t.Parallel()
	args := textArgs(t)
	if len(args) < 40 {
		t.Fatalf("found only %d string arguments in the schema", len(args))
	}
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "uniqueName": "room"})
		before := badInputState(t, srv, alice, ch)
		for _, a := range args {
			query, vars := a.build("a\x00b")
			r := alice.Post(query, vars)
			want := fmt.Sprintf("argument %s of %s", a.path, a.field)
			if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, want) || !strings.Contains(r.Errors[0].Message, "NUL") {
				t.Errorf("%s %s, NUL in %s: %+v", a.op, a.field, a.path, r.Errors)
			}
		}
		if after := badInputState(t, srv, alice, ch); after != before {
			t.Errorf("refused requests changed stored state:\n%s", badInputDiff(before, after))
		}

		// Just inside the rule: other control characters, U+FFFD and
		// characters outside the BMP are stored and read back as sent.
		for _, body := range []string{"a\x01b\x1f", "\uFFFD", "😀 é"} {
			if got := mustSend(t, alice, ch, body).Body; got != body {
				t.Errorf("sent %q, stored %q", body, got)
			}
		}
	})
}

// TestStringsAtTheBoundaryOtherWays: a NUL written in the document, bytes
// that are not UTF-8 (which only a GET query string can carry: JSON
// decoding replaces them), and a subscription's arguments are refused the
// same way.
func TestStringsAtTheBoundaryOtherWays(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC"})

		limitErr(t, alice.Post(`{ user(identity: "a\u0000b") { id } }`, nil), "BAD_USER_INPUT", "argument identity of user holds a NUL character")
		limitErr(t, alice.Post(`mutation($c: ID!) { sendMessage(input: {channelId: $c, body: "hi", attributes: {list: ["ok", "no\u0000"]}}) { id } }`, map[string]any{"c": ch}),
			"BAD_USER_INPUT", "argument input.attributes.list[1] of sendMessage")

		req, err := http.NewRequest(http.MethodGet, srv.URL+"/graphql?query="+url.QueryEscape(`{ user(identity: "a`+"\xff"+`") { id } }`), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", alice.Authorization)
		r := do(t, req)
		if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.errors[0].Message, "argument identity of user is not valid UTF-8") {
			t.Errorf("invalid UTF-8 over GET: %d %+v", r.status, r.errors)
		}

		ws := srv.Dial(t, "alice")
		errs := ws.Subscribe(`subscription($c: ID!) { messageAdded(channelId: $c) { id } }`, map[string]any{"c": "x\x00"}).Err(t, 10*time.Second)
		if len(errs) != 1 || errs[0].Code() != "BAD_USER_INPUT" || !strings.Contains(errs[0].Message, "argument channelId of messageAdded") {
			t.Errorf("over WebSocket: %+v", errs)
		}
		var n int64
		if err := srv.Store.DB(t.Context()).Table("messages").Count(&n).Error; err != nil || n != 0 {
			t.Errorf("%d messages stored (%v)", n, err)
		}
	})
}
