package server

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/resolvers"
)

// frameSharing executes a subscription's selection set once per event for
// all the subscriptions of this node that would get the same result: the
// same document, variables and event value (one decoded broker event is
// shared by every local subscriber, see pubsub.Decode), and the same
// viewer unless every selected field is the same for every viewer. The
// others get the first one's response. Without it, fanning one message out
// to 1000 subscribers ran gqlgen's execution 1000 times over the same value,
// a third of the server's CPU.
//
// Who receives an event is still decided per subscriber by the chat
// stream; only the encoding of an event already allowed is shared.
type frameSharing struct {
	frames *frameCache
}

var (
	_ graphql.HandlerExtension     = frameSharing{}
	_ graphql.OperationInterceptor = frameSharing{}
	_ graphql.ResponseInterceptor  = frameSharing{}
)

// ExtensionName implements graphql.HandlerExtension.
func (frameSharing) ExtensionName() string { return "ParleyFrameSharing" }

// Validate implements graphql.HandlerExtension.
func (frameSharing) Validate(graphql.ExecutableSchema) error { return nil }

type sharedOperationKey struct{}

// sharedOperation is what frameSharing keeps of one subscription.
type sharedOperation struct {
	relay *resolvers.Relay
	// key says which subscriptions get the same result for one value.
	key string
}

// InterceptOperation implements graphql.OperationInterceptor: it gives a
// subscription a Relay, through which InterceptResponse sees its values.
func (frameSharing) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	key, ok := operationKey(ctx, oc)
	if !ok {
		return next(ctx)
	}
	op := &sharedOperation{relay: new(resolvers.Relay), key: key}
	ctx = context.WithValue(resolvers.WithRelay(ctx, op.relay), sharedOperationKey{}, op)
	return next(ctx)
}

// InterceptResponse implements graphql.ResponseInterceptor: for a
// subscription connected to its Relay, it takes the next value and returns
// the response computed for it by an equal subscription, or computes and
// shares it.
func (f frameSharing) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	op, ok := ctx.Value(sharedOperationKey{}).(*sharedOperation)
	if !ok || !op.relay.Connected() {
		return next(ctx)
	}
	v, ok := op.relay.Next(ctx)
	if !ok {
		// gqlgen ends the subscription (with the stream's error, if any)
		// when it finds the channel closed or ctx done.
		op.relay.End()
		return next(ctx)
	}
	return f.frames.response(ctx, frameKey{value: v, operation: op.key}, func() *graphql.Response {
		op.relay.Feed(v)
		return next(ctx)
	})
}

// operationKey returns what identifies a subscription's result for a given
// value: its document, operation name and variables, and the viewer unless
// every field it selects is the same for every viewer. It returns false when
// the variables cannot be encoded.
func operationKey(ctx context.Context, oc *graphql.OperationContext) (string, bool) {
	vars, err := json.Marshal(oc.Variables) // map keys come out sorted
	if err != nil {
		return "", false
	}
	key := oc.RawQuery + "\x00" + oc.OperationName + "\x00" + string(vars)
	if !viewerIndependent(oc.Operation.SelectionSet) {
		p, _ := auth.FromContext(ctx)
		key += "\x00" + p.Identity
	}
	return key, true
}

// viewerIndependentFields are the fields, by type, whose value is the same
// for every viewer who may see the object. A field missing here (such as
// Channel.myMembership, unreadCount or lastMessage) makes a subscription's
// result its viewer's own. Add a field only when its resolver reads nothing
// of the caller.
var viewerIndependentFields = map[string]map[string]bool{
	"Subscription": {"messageAdded": true, "messageUpdated": true, "messageRemoved": true, "memberJoined": true, "memberLeft": true},
	"Message":      {"id": true, "index": true, "body": true, "attributes": true, "createdAt": true, "editedAt": true, "deletedAt": true, "author": true, "channel": true},
	"User":         {"id": true, "identity": true, "friendlyName": true, "attributes": true, "photoUrl": true, "online": true, "createdAt": true, "updatedAt": true},
	"Channel":      {"id": true, "uniqueName": true, "friendlyName": true, "type": true, "attributes": true, "photoUrl": true, "state": true, "createdBy": true, "createdAt": true, "updatedAt": true, "lastMessageIndex": true, "membersCount": true, "messagesCount": true},
	"Member":       {"id": true, "channel": true, "user": true, "role": true, "status": true, "access": true, "displayName": true, "lastReadIndex": true, "lastReadAt": true, "joinedAt": true, "attributes": true, "shareHistoryFrom": true},
}

// viewerIndependent reports whether every field of set, through its
// fragments and sub-selections, is in viewerIndependentFields.
func viewerIndependent(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__typename" {
				continue
			}
			if s.ObjectDefinition == nil || !viewerIndependentFields[s.ObjectDefinition.Name][s.Name] || !viewerIndependent(s.SelectionSet) {
				return false
			}
		case *ast.InlineFragment:
			if !viewerIndependent(s.SelectionSet) {
				return false
			}
		case *ast.FragmentSpread:
			if s.Definition == nil || !viewerIndependent(s.Definition.SelectionSet) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// frameCacheSize is how many recent (value, operation) responses a node
// keeps: enough for every distinct subscription document of a burst of
// events, small enough to bound the memory (and the event values it keeps
// alive).
const frameCacheSize = 1024

// frameKey identifies one response: an event value (a pointer shared by
// the subscribers of a node) and an operation key.
type frameKey struct {
	value     any
	operation string
}

// frameEntry is one response, computed by the first subscription that
// asked for it.
type frameEntry struct {
	done chan struct{} // closed when resp is set
	resp *graphql.Response
}

// frameCache holds the recent responses, the oldest evicted first. It is
// safe for concurrent use.
type frameCache struct {
	mu      sync.Mutex // guards the fields below
	entries map[frameKey]*frameEntry
	ring    [frameCacheSize]frameKey // keys in insertion order
	next    int                      // the ring slot to reuse next
}

func newFrameCache() *frameCache {
	return &frameCache{entries: make(map[frameKey]*frameEntry, frameCacheSize)}
}

// response returns the response for key: computed by compute when no other
// subscription computed it, otherwise the shared one. A response that is
// nil (the subscription ended) or holds errors is not shared; those who
// waited for it compute their own.
func (c *frameCache) response(ctx context.Context, key frameKey, compute func() *graphql.Response) *graphql.Response {
	c.mu.Lock()
	e, found := c.entries[key]
	if !found {
		e = &frameEntry{done: make(chan struct{})}
		delete(c.entries, c.ring[c.next])
		c.ring[c.next] = key
		c.next = (c.next + 1) % frameCacheSize
		c.entries[key] = e
	}
	c.mu.Unlock()
	if found {
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil
		}
		if e.resp != nil {
			return e.resp
		}
		return compute()
	}
	defer close(e.done)
	resp := compute()
	if resp != nil && len(resp.Errors) == 0 {
		// gqlgen reuses the buffer behind Data for this subscription's
		// next event: the shared copy needs its own.
		shared := *resp
		shared.Data = bytes.Clone(resp.Data)
		e.resp = &shared
	}
	return resp
}
