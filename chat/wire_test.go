package chat

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/models"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/events-v1.golden")

// wireFixtures are one event of every kind, with every field set.
func wireFixtures() []*event {
	at := time.Date(2026, 12, 1, 10, 20, 30, 123456000, time.UTC)
	later := at.Add(time.Minute)
	name, unique, author, last := "Alice", "general", "u-alice", "m-1"
	read := 4
	user := &models.User{ID: "u-alice", Identity: "alice", FriendlyName: &name, Attributes: models.JSON(`{"a":1}`), CreatedAt: at, UpdatedAt: later}
	ch := &models.Channel{ID: "c-1", UniqueName: &unique, FriendlyName: &name, Type: models.ChannelPublic, Attributes: models.JSON(`{"topic":"x"}`),
		CreatedByID: &author, CreatedAt: at, UpdatedAt: later, NextMessageIndex: 6, LastMessageID: &last, LastActivityUs: at.UnixMicro(), MessagesCount: 5, MembersCount: 2,
		State: models.StateActive}
	msg := &models.Message{ID: "m-1", ChannelID: "c-1", Index: 5, AuthorID: &author, Body: "héllo \"world\" <b>", Attributes: models.JSON(`[1,2]`),
		CreatedAt: at, EditedAt: &later, DeletedAt: &later, Author: user, Channel: ch}
	member := &models.Member{ID: "mb-1", ChannelID: "c-1", UserID: "u-alice", Role: models.RoleAdmin, LastReadIndex: &read, LastReadAt: &later,
		Attributes: models.JSON(`{"k":"v"}`), JoinedAt: at, UpdatedAt: later, Status: models.MemberJoined, Access: models.AccessReadWrite}
	id := func(n string) string { return "0193e0b0-0000-7000-8000-00000000000" + n }
	return []*event{
		{ID: id("1"), Kind: evMessageAdded, Message: msg, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{ID: id("2"), Kind: evMessageUpdated, Message: msg},
		{ID: id("3"), Kind: evMessageRemoved, Message: msg},
		{ID: id("4"), Kind: evTypingStarted, Channel: ch, User: user, At: at, Node: "node-a"},
		{ID: id("5"), Kind: evTypingEnded, Channel: ch, User: user, At: at},
		{ID: id("6"), Kind: evMemberJoined, Member: member},
		{ID: id("7"), Kind: evMemberLeft, Member: member},
		{ID: id("8"), Kind: evMemberUpdated, Member: member, Reasons: []string{ReasonRole, ReasonLastRead}},
		{ID: id("9"), Kind: evChannelUpdated, Channel: ch},
		{ID: id("a"), Kind: evChannelRemoved, Channel: ch},
		{ID: id("b"), Kind: evMyChannel, Channel: ch, ChannelEvent: ChannelJoined},
		{ID: id("c"), Kind: evUserUpdated, User: user, Reasons: []string{ReasonOnline}},
		{ID: id("d"), Kind: evSessionRefreshed, At: at},
	}
}

// v0Kinds is how many of wireFixtures' kinds version 0 published; the
// later ones (session.refreshed) are new since.
const v0Kinds = 12

// v0Event is the event as version 0 published it: the rows' default
// encoding under short keys. A version-0 node decodes what a newer one
// publishes into this shape.
type v0Event struct {
	Kind         eventKind        `json:"k"`
	Message      *models.Message  `json:"m,omitempty"`
	Channel      *models.Channel  `json:"c,omitempty"`
	Member       *models.Member   `json:"mb,omitempty"`
	User         *models.User     `json:"u,omitempty"`
	At           time.Time        `json:"at,omitzero"`
	Reasons      []string         `json:"r,omitempty"`
	ChannelEvent ChannelEventType `json:"ce,omitempty"`
	Node         string           `json:"n,omitempty"`
}

func readGolden(t *testing.T, name string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for line := range bytes.Lines(data) {
		lines = append(lines, bytes.TrimRight(line, "\n"))
	}
	return lines
}

// TestWireGolden: the encoding of every kind of event is the one in
// testdata/events-v1.golden, byte for byte (run with -update after a
// deliberate change, and read the wire-format rules in wire.go first).
func TestWireGolden(t *testing.T) {
	fixtures := wireFixtures()
	var got bytes.Buffer
	for _, ev := range fixtures {
		data, err := encodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(data)
		got.WriteByte('\n')
	}
	path := filepath.Join("testdata", "events-v1.golden")
	if *updateGolden {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("the wire format changed:\n got %s\nwant %s", got.Bytes(), want)
	}
}

// TestWireDecodesEveryVersion: payloads of version 1 and of version 0
// (which published the rows' default encoding) decode to the same events.
func TestWireDecodesEveryVersion(t *testing.T) {
	fixtures := wireFixtures()
	for _, version := range []string{"events-v1.golden", "events-v0.golden"} {
		lines := readGolden(t, version)
		want := len(fixtures)
		if strings.Contains(version, "v0") {
			want = v0Kinds
		}
		if len(lines) != want {
			t.Fatalf("%s: %d payloads, want %d", version, len(lines), want)
		}
		for i, line := range lines {
			ev, err := decodeEvent(line)
			if err != nil {
				t.Fatalf("%s line %d: %v", version, i+1, err)
			}
			want := *fixtures[i]
			if strings.Contains(version, "v0") {
				want.ID = ""          // version 0 had no event ids
				want.TraceParent = "" // nor trace context
			}
			if !reflect.DeepEqual(*ev, want) {
				t.Errorf("%s line %d decodes to\n%+v\nwant\n%+v", version, i+1, *ev, want)
			}
		}
	}
}

// TestWireReadableByVersion0: a version-0 node, decoding into its own
// shape, reads what this version publishes.
func TestWireReadableByVersion0(t *testing.T) {
	for i, line := range readGolden(t, "events-v1.golden") {
		var old v0Event
		if err := json.Unmarshal(line, &old); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		want := wireFixtures()[i]
		got := event{Kind: old.Kind, Message: old.Message, Channel: old.Channel, Member: old.Member, User: old.User,
			At: old.At, Reasons: old.Reasons, ChannelEvent: old.ChannelEvent, Node: old.Node,
			// What version 0 does not know it ignores.
			ID: want.ID, TraceParent: want.TraceParent}
		if !reflect.DeepEqual(got, *want) {
			t.Errorf("line %d reads, in version 0, as\n%+v\nwant\n%+v", i+1, got, *want)
		}
	}
}

// TestWireCarriesMembershipAndChannelFields: the fields that channels,
// invitations and history sharing added travel between nodes.
func TestWireCarriesMembershipAndChannelFields(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 20, 30, 123456000, time.UTC)
	photo, display := "https://example.com/p.png", "Al"
	ev := &event{
		ID: "e", Kind: evMemberUpdated, Reasons: []string{ReasonStatus},
		Channel: &models.Channel{ID: "c", Type: models.ChannelDirect, State: models.StateClosed, PhotoURL: &photo, CreatedAt: at, UpdatedAt: at},
		Member: &models.Member{ID: "m", ChannelID: "c", UserID: "u", Role: models.RoleMember, Status: models.MemberInvited, Access: models.AccessRead,
			DisplayName: &display, ShareHistoryFrom: &at, HistoryStart: 7, JoinedAt: at, UpdatedAt: at},
		User: &models.User{ID: "u", Identity: "alice", PhotoURL: &photo, CreatedAt: at, UpdatedAt: at},
	}
	data, err := encodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeEvent(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Fatalf("round trip of %s:\n got %+v\nwant %+v", data, got, ev)
	}
}

// TestWireMessageKinds: the message fields added after version 1 (type,
// origin, priority, location, system event, client id, mentions…) survive
// a round trip; a payload without them reads as a TEXT message from a
// user at NORMAL priority.
func TestWireMessageKinds(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 20, 30, 0, time.UTC)
	actor, name, cid, lat, lon := "u-1", "Ops", "c-42", 48.85, 2.35
	state := models.StateClosed
	for _, msg := range []*models.Message{
		{ID: "m-1", ChannelID: "c-1", Index: 3, CreatedAt: at, StoredType: models.MessageSystem, StoredOrigin: models.OriginSystem,
			System: &models.SystemEvent{Kind: models.SystemStateChanged, ActorID: &actor, UserIDs: []string{"u-2"}, FriendlyName: &name, State: &state}},
		{ID: "m-2", ChannelID: "c-1", Index: 4, AuthorID: &actor, CreatedAt: at, StoredType: models.MessageLocation,
			StoredPriority: models.PriorityHigh, SenderDisplayName: &name, Latitude: &lat, Longitude: &lon, ClientMessageID: &cid,
			UpdatedByID: &actor, MentionIDs: []string{"u-2", "u-3"}},
	} {
		data, err := encodeEvent(&event{ID: "e", Kind: evMessageAdded, Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := decodeEvent(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ev.Message, msg) {
			t.Errorf("%s decodes to\n%+v\nwant\n%+v", data, ev.Message, msg)
		}
	}
	ev, err := decodeEvent([]byte(`{"v":1,"k":"message.added","m":{"id":"m","channelId":"c","index":0,"body":"x","createdAt":"2026-12-01T10:20:30Z"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := ev.Message; m.Type() != models.MessageText || m.Origin() != models.OriginUser || m.Priority() != models.PriorityNormal {
		t.Errorf("an old payload reads as type %q, origin %q, priority %q", m.Type(), m.Origin(), m.Priority())
	}
}
