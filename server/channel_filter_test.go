package server_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/parleychat/parley/parleytest"
)

// myChannelsSQL records the SQL and arguments of the myChannels queries the
// server's store runs, to explain their plans.
type myChannelsSQL struct {
	mu    sync.Mutex
	stmts []capturedStmt
}

type capturedStmt struct {
	sql  string
	vars []any
}

func captureMyChannels(t *testing.T, srv *parleytest.Server) *myChannelsSQL {
	t.Helper()
	c := &myChannelsSQL{}
	err := srv.Store.DB(t.Context()).Callback().Query().After("gorm:query").Register("parleytest:mychannels", func(db *gorm.DB) {
		if sql := db.Statement.SQL.String(); strings.Contains(sql, "JOIN members AS m ON m.channel_id = channels.id") {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.stmts = append(c.stmts, capturedStmt{sql, slices.Clone(db.Statement.Vars)})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *myChannelsSQL) last() capturedStmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[len(c.stmts)-1]
}

// explain returns the plan of stmt, with sequential scans made as costly as
// PostgreSQL allows: a plan that still scans a table has no index to use.
func explain(t *testing.T, srv *parleytest.Server, stmt capturedStmt) string {
	t.Helper()
	var lines []string
	err := srv.Store.DB(t.Context()).Transaction(func(tx *gorm.DB) error {
		if srv.Store.Dialect() == "sqlite" {
			var rows []struct {
				ID, Parent, Notused int
				Detail              string
			}
			if err := tx.Raw("EXPLAIN QUERY PLAN "+stmt.sql, stmt.vars...).Scan(&rows).Error; err != nil {
				return err
			}
			for _, r := range rows {
				lines = append(lines, r.Detail)
			}
			return nil
		}
		if err := tx.Exec("SET LOCAL enable_seqscan = off").Error; err != nil {
			return err
		}
		// GORM binds "?" placeholders; the captured SQL has PostgreSQL's.
		sql := regexp.MustCompile(`\$\d+`).ReplaceAllString(stmt.sql, "?")
		return tx.Raw("EXPLAIN "+sql, stmt.vars...).Scan(&lines).Error
	})
	if err != nil {
		t.Fatalf("explain %s: %v", stmt.sql, err)
	}
	return strings.Join(lines, "\n")
}

// TestMyChannelsFilter: each field of the filter, their combinations, with
// every orderBy and with pagination, on index-backed plans.
func TestMyChannelsFilter(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		mk := func(c *parleytest.Client, in map[string]any) string { return mustCreateChannel(t, c, in) }
		c1 := mk(alice, map[string]any{"type": "PUBLIC", "uniqueName": "c1", "friendlyName": "Echo", "members": []string{"bob"},
			"attributes": map[string]any{"team": "red", "n": 1, "tags": []any{"a", "b"}, "nested": map[string]any{"x": true}}})
		c2 := mk(alice, map[string]any{"type": "PRIVATE", "uniqueName": "c2", "friendlyName": "Delta",
			"attributes": map[string]any{"team": "blue", "n": 1.5, "tags": []any{"b"}, "nested": map[string]any{"x": false, "y": nil}}})
		c3 := mk(bob, map[string]any{"type": "PRIVATE", "uniqueName": "c3", "friendlyName": "Charlie", "attributes": map[string]any{"team": "red"}})
		bob.Do(inviteMember, map[string]any{"c": c3, "i": "alice"}, nil)
		c4 := mustDirect(t, alice, "bob").ID
		c5 := mk(alice, map[string]any{"type": "PUBLIC", "uniqueName": "c5", "friendlyName": "Bravo"})
		mustSend(t, bob, c1, "unread for alice")
		mustSend(t, bob, c4, "unread for alice")
		mustSend(t, alice, c2, "read: alice wrote it")
		alice.Do(setState, map[string]any{"c": c2, "s": "CLOSED"}, nil)
		alice.Do(setState, map[string]any{"c": c5, "s": "INACTIVE"}, nil)
		names := map[string]string{c1: "c1", c2: "c2", c3: "c3", c4: "c4", c5: "c5"}
		captured := captureMyChannels(t, srv)

		const query = `query($f: ChannelFilter, $o: ChannelOrder, $n: Int, $a: String) { myChannels(filter: $f, orderBy: $o, first: $n, after: $a) {
			edges { node { id } } pageInfo { hasNextPage endCursor } } }`
		list := func(filter map[string]any, order map[string]any, pageSize int) []string {
			var out []string
			var after any
			for {
				var page struct {
					MyChannels struct {
						Edges    []struct{ Node struct{ ID string } }
						PageInfo pageInfo
					}
				}
				alice.Do(query, map[string]any{"f": filter, "o": order, "n": pageSize, "a": after}, &page)
				for _, e := range page.MyChannels.Edges {
					out = append(out, names[e.Node.ID])
				}
				plan := explain(t, srv, captured.last())
				if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "SCAN channels") || strings.Contains(plan, "SCAN members") {
					t.Fatalf("filter %v order %v scans a table:\n%s", filter, order, plan)
				}
				if !page.MyChannels.PageInfo.HasNextPage {
					return out
				}
				after = *page.MyChannels.PageInfo.EndCursor
			}
		}
		sorted := func(s []string) string { s = slices.Clone(s); slices.Sort(s); return strings.Join(s, ",") }
		for _, c := range []struct {
			filter map[string]any
			want   string
		}{
			{nil, "c1,c2,c3,c4,c5"},
			{map[string]any{"types": []string{"PUBLIC"}}, "c1,c5"},
			{map[string]any{"types": []string{"DIRECT", "PRIVATE"}}, "c2,c3,c4"},
			{map[string]any{"statuses": []string{"INVITED"}}, "c3"},
			{map[string]any{"statuses": []string{"JOINED"}}, "c1,c2,c4,c5"},
			{map[string]any{"statuses": []string{"NOT_PARTICIPATING"}}, ""},
			{map[string]any{"states": []string{"CLOSED"}}, "c2"},
			{map[string]any{"states": []string{"INACTIVE", "CLOSED"}}, "c2,c5"},
			{map[string]any{"hasUnread": true}, "c1,c4"},
			{map[string]any{"hasUnread": false}, "c2,c3,c5"},
			{map[string]any{"attributes": map[string]any{"team": "red"}}, "c1,c3"},
			{map[string]any{"attributes": map[string]any{"tags": []any{"b"}}}, "c1,c2"},
			{map[string]any{"attributes": map[string]any{"tags": []any{"b", "a"}}}, "c1"},
			{map[string]any{"attributes": map[string]any{"tags": []any{}}}, "c1,c2"},
			{map[string]any{"attributes": map[string]any{"nested": map[string]any{"x": true}}}, "c1"},
			{map[string]any{"attributes": map[string]any{"nested": map[string]any{"x": false}}}, "c2"},
			{map[string]any{"attributes": map[string]any{"nested": map[string]any{"y": nil}}}, "c2"},
			{map[string]any{"attributes": map[string]any{"nested": map[string]any{}}}, "c1,c2"},
			{map[string]any{"attributes": map[string]any{"n": 1}}, "c1"},
			{map[string]any{"attributes": map[string]any{"n": 1.5}}, "c2"},
			{map[string]any{"attributes": map[string]any{"team": "red", "n": 1}}, "c1"},
			{map[string]any{"attributes": map[string]any{"team": 1}}, ""},
			{map[string]any{"attributes": map[string]any{}}, "c1,c2,c3"},
			{map[string]any{"types": []string{"PRIVATE"}, "attributes": map[string]any{"team": "red"}}, "c3"},
			{map[string]any{"types": []string{"PUBLIC", "DIRECT"}, "hasUnread": true, "states": []string{"ACTIVE"}}, "c1,c4"},
		} {
			if got := sorted(list(c.filter, nil, 2)); got != c.want {
				t.Errorf("filter %v: %s, want %s", c.filter, got, c.want)
			}
		}
		for _, bad := range []any{[]any{1}, "red", map[string]any{"a": []any{map[string]any{"b": 1}}}, map[string]any{"a\"b": 1}, map[string]any{"a": []any{[]any{1}}}} {
			alice.Fails("BAD_USER_INPUT", query, map[string]any{"f": map[string]any{"attributes": bad}})
		}

		// Every order, ascending and descending, pages through the filtered
		// channels in the order of the unfiltered list.
		filter := map[string]any{"types": []string{"PUBLIC", "PRIVATE"}, "statuses": []string{"JOINED", "INVITED"}}
		for _, field := range []string{"LAST_MESSAGE", "FRIENDLY_NAME", "UNIQUE_NAME"} {
			for _, dir := range []string{"ASC", "DESC"} {
				order := map[string]any{"field": field, "direction": dir}
				all := list(nil, order, 100)
				var want []string
				for _, n := range all {
					if n != "c4" {
						want = append(want, n)
					}
				}
				for _, size := range []int{1, 2, 3} {
					if got := list(filter, order, size); fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("order %v pages of %d: %v, want %v", order, size, got, want)
					}
				}
			}
		}
	})
}

// TestMyChannelsHasUnread: the hasUnread filter counts as unreadCount
// does: a channel whose only messages after the caller's horizon are
// their own, system messages or deleted ones has nothing unread, one with
// another member's message has; the filter's plan reads indexes only.
func TestMyChannelsHasUnread(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{SystemMessages: true})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		withBob := func() string {
			return mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE", "members": []string{"bob"}})
		}
		clear := func(ch string) {
			callOK(t, bob, `mutation($c: ID!) { setReadHorizon(channelId: $c, index: null) { id } }`, map[string]any{"c": ch}, nil)
		}
		own, system, deleted, mixed, other := withBob(), withBob(), withBob(), withBob(), withBob()
		mustSend(t, bob, own, "bob's own")
		clear(own)
		callOK(t, alice, `mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "renamed"}) { id } }`, map[string]any{"c": system}, nil)
		gone := mustSend(t, alice, deleted, "deleted")
		callOK(t, alice, `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": gone.ID}, nil)
		gone = mustSend(t, alice, mixed, "deleted")
		callOK(t, alice, `mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": gone.ID}, nil)
		mustSend(t, bob, mixed, "bob's own")
		clear(mixed)
		mustSend(t, alice, other, "unread for bob")
		names := map[string]string{own: "own", system: "system", deleted: "deleted", mixed: "mixed", other: "other"}
		captured := captureMyChannels(t, srv)

		list := func(hasUnread bool) string {
			var page struct {
				MyChannels struct {
					Edges []struct {
						Node struct {
							ID          string
							UnreadCount int
						}
					}
				}
			}
			callOK(t, bob, `query($u: Boolean) { myChannels(filter: {hasUnread: $u}, first: 50) { edges { node { id unreadCount } } } }`,
				map[string]any{"u": hasUnread}, &page)
			plan := explain(t, srv, captured.last())
			if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "SCAN g") || strings.Contains(plan, "SCAN members") || strings.Contains(plan, "SCAN m ") {
				t.Errorf("hasUnread %v scans a table:\n%s", hasUnread, plan)
			}
			var got []string
			for _, e := range page.MyChannels.Edges {
				if (e.Node.UnreadCount > 0) != hasUnread {
					t.Errorf("hasUnread %v lists %s with unreadCount %d", hasUnread, names[e.Node.ID], e.Node.UnreadCount)
				}
				got = append(got, names[e.Node.ID])
			}
			slices.Sort(got)
			return strings.Join(got, ",")
		}
		if got := list(true); got != "other" {
			t.Errorf("hasUnread: true lists %s, want other", got)
		}
		if got := list(false); got != "deleted,mixed,own,system" {
			t.Errorf("hasUnread: false lists %s, want deleted,mixed,own,system", got)
		}
	})
}
