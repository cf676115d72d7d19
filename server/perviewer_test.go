package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/parleychat/parley/graph"
	"github.com/parleychat/parley/parleytest"
)

// TestPerViewerFieldsAreMarked derives from the schema which fields may be
// shared across viewers: it reads every field of the types subscriptions
// return as two members whose memberships differ, and fails for any field
// whose value differs without @perViewer in the schema, since the realtime
// transports would then give one viewer's result to another.
func TestPerViewerFieldsAreMarked(t *testing.T) {
	t.Parallel()
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob, carol := srv.Client("alice"), srv.Client("bob"), srv.Client("carol")
		// dave is no member: he sees the public channel's metadata only.
		dave := srv.Client("dave")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "members": []string{"bob", "carol"}})
		mustSend(t, alice, ch, "one")
		mustSend(t, alice, ch, "two")
		bob.Do(`mutation($c: ID!) { markRead(channelId: $c, index: 1) { id } }`, map[string]any{"c": ch}, nil)

		roots := map[string]string{
			"Channel": `channel(id: $c) { %s }`,
			"Message": `messages(channelId: $c, last: 1) { edges { node { %s } } }`,
			"Member":  `members(channelId: $c) { edges { node { %s } } }`,
			"User":    `user(identity: "alice") { %s } channel(id: $c) { id }`,
		}
		differs := map[string]bool{}
		for typ, root := range roots {
			def := schema.Types[typ]
			for _, f := range def.Fields {
				if strings.HasPrefix(f.Name, "__") || len(f.Arguments) > 0 {
					continue
				}
				sel := f.Name
				if inner := schema.Types[f.Type.Name()]; inner != nil && inner.Kind == ast.Object {
					sel += " { " + scalarFields(schema, inner) + " }"
				}
				query := `query($c: ID!) { ` + fmt.Sprintf(root, sel) + ` }`
				vars := map[string]any{"c": ch}
				others := []*parleytest.Client{carol}
				if typ == "Channel" {
					others = append(others, dave)
				}
				var asBob json.RawMessage
				bob.Do(query, vars, &asBob)
				marked := f.Directives.ForName("perViewer") != nil
				for _, other := range others {
					var asOther json.RawMessage
					other.Do(query, vars, &asOther)
					if string(asBob) != string(asOther) {
						differs[typ+"."+f.Name] = true
						if !marked {
							t.Errorf("%s.%s differs between viewers (%s vs %s) but is not marked @perViewer", typ, f.Name, asBob, asOther)
						}
					}
				}
			}
		}
		// The setup tells viewers apart: the test has teeth.
		for _, f := range []string{"Channel.unreadCount", "Channel.myMembership", "Channel.status"} {
			if !differs[f] {
				t.Errorf("%s is the same for both viewers here: the test cannot see per-viewer fields", f)
			}
		}
	})
}

// scalarFields selects every scalar and enum field of def.
func scalarFields(schema *ast.Schema, def *ast.Definition) string {
	var out []string
	for _, f := range def.Fields {
		if strings.HasPrefix(f.Name, "__") || len(f.Arguments) > 0 || f.Type.Elem != nil {
			continue
		}
		if kind := schema.Types[f.Type.Name()].Kind; kind != ast.Scalar && kind != ast.Enum {
			continue
		}
		if f.Directives.ForName("perViewer") != nil {
			continue // compared at its own type
		}
		out = append(out, f.Name)
	}
	return strings.Join(out, " ")
}
