package server

import (
	"testing"

	"github.com/parleychat/parley/graph"
)

// perViewerFields are the fields of the shared types whose value depends on
// the caller: a subscription that selects one gets results of its own.
var perViewerFields = map[string]map[string]bool{
	"Channel": {"lastMessage": true, "myMembership": true, "unreadCount": true, "status": true},
}

// TestViewerIndependentFieldsCoverSchema keeps viewerIndependentFields true
// to the schema: every field it names exists, and every field of the types
// that subscriptions return is classified, so that a field added to the
// schema cannot be shared across viewers before someone decides it may.
func TestViewerIndependentFieldsCoverSchema(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	for typ, fields := range viewerIndependentFields {
		def := schema.Types[typ]
		if def == nil {
			t.Errorf("viewerIndependentFields names type %s, which the schema lacks", typ)
			continue
		}
		for f := range fields {
			if def.Fields.ForName(f) == nil {
				t.Errorf("viewerIndependentFields names %s.%s, which the schema lacks", typ, f)
			}
		}
	}
	for _, typ := range []string{"Message", "User", "Channel", "Member"} {
		for _, f := range schema.Types[typ].Fields {
			shared, own := viewerIndependentFields[typ][f.Name], perViewerFields[typ][f.Name]
			switch {
			case shared && own:
				t.Errorf("%s.%s is both viewer-independent and per viewer", typ, f.Name)
			case !shared && !own && f.Name != "__typename":
				t.Errorf("%s.%s is new: add it to viewerIndependentFields (server/frames.go) if its value is the same for every viewer, else to perViewerFields here", typ, f.Name)
			}
		}
	}
}
