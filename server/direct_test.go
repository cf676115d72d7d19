package server_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

const directChannel = `mutation($i: String!) { directChannel(identity: $i) { id type membersCount myMembership { role } } }`

func mustDirect(t *testing.T, c *parleytest.Client, identity string) channelData {
	t.Helper()
	var out struct{ DirectChannel channelData }
	c.Do(directChannel, map[string]any{"i": identity}, &out)
	return out.DirectChannel
}

// TestDirectChannel: one DIRECT channel per pair of users whichever asks,
// also under concurrent calls; exactly its two members, who cannot be added
// to, invited, joined, left or removed; never in publicChannels; the
// caller's own identity gives a notes-to-self channel of one.
func TestDirectChannel(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		d := mustDirect(t, alice, "bob") // bob is unknown until now
		if d.Type != "DIRECT" || d.MembersCount != 2 || d.MyMembership.Role != "ADMIN" {
			t.Fatalf("direct channel = %+v", d)
		}
		if again := mustDirect(t, bob, "alice"); again.ID != d.ID || again.MyMembership.Role != "ADMIN" {
			t.Fatalf("bob's direct channel with alice = %+v, want %s", again, d.ID)
		}
		if again := mustDirect(t, alice, "bob"); again.ID != d.ID {
			t.Fatalf("second call = %s, want %s", again.ID, d.ID)
		}
		self := mustDirect(t, alice, "alice")
		if self.ID == d.ID || self.Type != "DIRECT" || self.MembersCount != 1 {
			t.Fatalf("notes to self = %+v", self)
		}
		if again := mustDirect(t, alice, "alice"); again.ID != self.ID {
			t.Fatal("notes to self changed on a second call")
		}
		alice.Fails("BAD_USER_INPUT", directChannel, map[string]any{"i": " "})
		alice.Fails("BAD_USER_INPUT", createChannel, map[string]any{"in": map[string]any{"type": "DIRECT"}})

		vars := map[string]any{"c": d.ID}
		for _, q := range []string{
			`mutation($c: ID!) { addMember(channelId: $c, identity: "carol") { id } }`,
			`mutation($c: ID!) { inviteMember(channelId: $c, identity: "carol") { id } }`,
			`mutation($c: ID!) { addMembers(channelId: $c, members: [{identity: "carol"}]) { id } }`,
			`mutation($c: ID!) { joinChannel(channelId: $c) { id } }`,
			`mutation($c: ID!) { leaveChannel(channelId: $c) }`,
			`mutation($c: ID!) { removeMember(channelId: $c, identity: "bob") }`,
			`mutation($c: ID!) { updateMember(channelId: $c, identity: "bob", input: {role: MEMBER}) { id } }`,
		} {
			alice.Fails("FORBIDDEN", q, vars)
		}
		// An outsider does not see it.
		carol := srv.Client("carol")
		carol.Fails("NOT_FOUND", `query($c: ID!) { channel(id: $c) { id } }`, vars)
		carol.Fails("NOT_FOUND", `mutation($c: ID!) { joinChannel(channelId: $c) { id } }`, vars)
		// Its members talk, and may rename it.
		mustSend(t, bob, d.ID, "hi alice")
		alice.Do(`mutation($c: ID!) { updateChannel(id: $c, input: {friendlyName: "us"}) { id } }`, vars, nil)

		var pub struct {
			PublicChannels struct {
				Edges []struct{ Node struct{ ID string } }
			}
			MyChannels struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		alice.Do(`{ publicChannels { edges { node { id } } } myChannels { edges { node { id } } } }`, nil, &pub)
		if len(pub.PublicChannels.Edges) != 0 {
			t.Fatalf("publicChannels lists %+v", pub.PublicChannels)
		}
		var mine []string
		for _, e := range pub.MyChannels.Edges {
			mine = append(mine, e.Node.ID)
		}
		if !slices.Contains(mine, d.ID) || !slices.Contains(mine, self.ID) {
			t.Fatalf("myChannels = %v, want %s and %s", mine, d.ID, self.ID)
		}

		// Concurrent first calls from both sides make one channel.
		const pairs = 4
		ids := make([]string, 2*pairs)
		var wg sync.WaitGroup
		dave, erin := srv.Client("dave"), srv.Client("erin")
		for i := range pairs {
			for j, c := range []struct {
				client *parleytest.Client
				other  string
			}{{dave, "erin"}, {erin, "dave"}} {
				wg.Go(func() {
					r := c.client.Post(directChannel, map[string]any{"i": c.other})
					if len(r.Errors) > 0 {
						t.Errorf("concurrent directChannel: %+v", r.Errors)
						return
					}
					var out struct{ DirectChannel channelData }
					decode(t, r, &out)
					ids[2*i+j] = out.DirectChannel.ID
				})
			}
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("concurrent calls made channels %v", ids)
			}
		}
		var n int64
		if err := srv.Store.DB(t.Context()).Table("channels").Where("type = ?", "DIRECT").Count(&n).Error; err != nil || n != 3 {
			t.Fatalf("%d DIRECT channels (%v), want 3", n, err)
		}
	})
}

// TestPhotoURL: channels and users take an http or https photoUrl of at most
// 2 KiB; anything else is BAD_USER_INPUT and changes nothing.
func TestPhotoURL(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		var created struct{ CreateChannel struct{ ID, PhotoURL string } }
		alice.Do(`mutation { createChannel(input: {type: PUBLIC, photoUrl: "https://example.com/a.png"}) { id photoUrl } }`, nil, &created)
		if created.CreateChannel.PhotoURL != "https://example.com/a.png" {
			t.Fatalf("created %+v", created)
		}
		ch := created.CreateChannel.ID
		// Alice connects first: her coming online is not the event below.
		channelEvents := srv.Dial(t, "alice").Subscribe(`subscription { channelEvents { reasons channel { photoUrl } } }`, nil)
		profile := srv.Dial(t, "bob").Subscribe(`subscription { userUpdated(identity: "alice") { reasons user { photoUrl } } }`, nil)
		ready(t, channelEvents, profile)
		const updateChannel = `mutation($c: ID!, $p: String) { updateChannel(id: $c, input: {photoUrl: $p}) { photoUrl } }`
		const updateMe = `mutation($p: String) { updateMe(input: {photoUrl: $p}) { photoUrl } }`
		atLimit := "https://example.com/" + strings.Repeat("a", 2048-len("https://example.com/"))
		for _, ok := range []string{"http://example.com", "https://cdn.example.com:8443/p/1.jpg?s=64#x", atLimit} {
			var c struct{ UpdateChannel struct{ PhotoURL *string } }
			alice.Do(updateChannel, map[string]any{"c": ch, "p": ok}, &c)
			var u struct{ UpdateMe struct{ PhotoURL *string } }
			alice.Do(updateMe, map[string]any{"p": ok}, &u)
			if c.UpdateChannel.PhotoURL == nil || *c.UpdateChannel.PhotoURL != ok || u.UpdateMe.PhotoURL == nil || *u.UpdateMe.PhotoURL != ok {
				t.Fatalf("photoUrl %q: channel %v, user %v", ok, c.UpdateChannel.PhotoURL, u.UpdateMe.PhotoURL)
			}
		}
		var userEv struct {
			UserUpdated struct {
				Reasons []string
				User    struct{ PhotoURL string }
			}
		}
		mustJSON(t, profile.Next(t, eventWait), &userEv)
		if strings.Join(userEv.UserUpdated.Reasons, ",") != "PHOTO" || userEv.UserUpdated.User.PhotoURL != "http://example.com" {
			t.Fatalf("userUpdated = %+v", userEv)
		}
		var chEv channelEventData
		mustJSON(t, channelEvents.Next(t, eventWait), &chEv)
		if strings.Join(chEv.ChannelEvents.Reasons, ",") != "PHOTO" {
			t.Fatalf("channelEvents = %+v", chEv)
		}
		for _, bad := range []string{atLimit + "a", "ftp://example.com/a.png", "/relative.png", "example.com/a.png", "https://", "https://exa mple.com/a b", "javascript:alert(1)", ""} {
			alice.Fails("BAD_USER_INPUT", updateChannel, map[string]any{"c": ch, "p": bad})
			alice.Fails("BAD_USER_INPUT", updateMe, map[string]any{"p": bad})
			alice.Fails("BAD_USER_INPUT", createChannel, map[string]any{"in": map[string]any{"type": "PUBLIC", "photoUrl": bad}})
		}
		var state struct {
			Channel struct{ PhotoURL string }
			Me      struct{ PhotoURL string }
		}
		alice.Do(`query($c: ID!) { channel(id: $c) { photoUrl } me { photoUrl } }`, map[string]any{"c": ch}, &state)
		if state.Channel.PhotoURL != atLimit || state.Me.PhotoURL != atLimit {
			t.Fatal("a refused photoUrl changed something")
		}
		var cleared struct{ UpdateMe struct{ PhotoURL *string } }
		alice.Do(updateMe, map[string]any{"p": nil}, &cleared)
		if cleared.UpdateMe.PhotoURL != nil {
			t.Fatalf("null did not clear the photoUrl: %v", *cleared.UpdateMe.PhotoURL)
		}
	})
}
