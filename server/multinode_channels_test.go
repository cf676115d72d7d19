package server_test

import (
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

// TestTwoNodesChannelsAndMembers: the channel and member events of
// invitations, channel state and member updates made on node B reach
// subscribers on node A.
func TestTwoNodesChannelsAndMembers(t *testing.T) {
	t.Parallel()
	nodes := parleytest.MultiNode(t)
	a := parleytest.NewServer(t, nodes, parleytest.Options{})
	b := parleytest.NewServer(t, nodes, parleytest.Options{DatabaseURL: a.DatabaseURL})
	ownerOnB := b.Client("owner")
	a.Client("bob").Do(`{ me { id } }`, nil, nil)
	ch := mustCreateChannel(t, ownerOnB, map[string]any{"type": "PRIVATE", "members": []string{"watcher"}})
	vars := map[string]any{"c": ch}

	bobEvents := a.Dial(t, "bob").Subscribe(`subscription { channelEvents { type reasons channel { id state } } }`, nil)
	memberEvents := a.Dial(t, "watcher").Subscribe(`subscription($c: ID!) { memberUpdated(channelId: $c) {
		reasons member { role access displayName user { identity } } } }`, vars)
	ready(t, bobEvents, memberEvents)

	ownerOnB.Do(inviteMember, map[string]any{"c": ch, "i": "bob"}, nil)
	var ev channelEventData
	mustJSON(t, bobEvents.Next(t, eventWait), &ev)
	if ev.ChannelEvents.Type != "INVITED" || ev.ChannelEvents.Channel.ID != ch {
		t.Fatalf("bob on A after an invitation on B: %+v", ev)
	}
	// Bob now follows the channel he is invited to.
	ownerOnB.Do(setState, map[string]any{"c": ch, "s": "INACTIVE"}, nil)
	mustJSON(t, bobEvents.Next(t, eventWait), &ev)
	if ev.ChannelEvents.Type != "UPDATED" || strings.Join(ev.ChannelEvents.Reasons, ",") != "STATE" || ev.ChannelEvents.Channel.State != "INACTIVE" {
		t.Fatalf("bob on A after setChannelState on B: %+v", ev)
	}

	b.Client("bob").Do(acceptInvite, vars, nil)
	var mu memberUpdatedData
	mustJSON(t, memberEvents.Next(t, eventWait), &mu)
	if strings.Join(mu.MemberUpdated.Reasons, ",") != "STATUS" || mu.MemberUpdated.Member.User.Identity != "bob" {
		t.Fatalf("watcher on A after bob accepted on B: %+v", mu)
	}
	ownerOnB.Do(updateMember, map[string]any{"c": ch, "i": "bob", "in": map[string]any{"access": "READ", "displayName": "Bobby"}}, nil)
	mustJSON(t, memberEvents.Next(t, eventWait), &mu)
	if m := mu.MemberUpdated; strings.Join(m.Reasons, ",") != "ACCESS,DISPLAY_NAME" || m.Member.Access != "READ" || *m.Member.DisplayName != "Bobby" {
		t.Fatalf("watcher on A after updateMember on B: %+v", mu)
	}
	mustJSON(t, nextChannelEventExcept(t, bobEvents, "STATUS"), &ev)
	if ev.ChannelEvents.Type != "JOINED" {
		t.Fatalf("bob on A after accepting on B: %+v", ev)
	}
	mustSend(t, b.Client("watcher"), ch, "wakes it")
	mustJSON(t, nextChannelEventExcept(t, bobEvents, "LAST_MESSAGE"), &ev)
	if strings.Join(ev.ChannelEvents.Reasons, ",") != "STATE" || ev.ChannelEvents.Channel.State != "ACTIVE" {
		t.Fatalf("bob on A after a message on B woke the channel: %+v", ev)
	}
}
