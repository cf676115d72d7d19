// Package accounting checks exactly-once delivery: which receivers were
// expected to get each message, which ones got it, and how often.
//
// A Ledger knows groups of receivers (for example the subscribers of one
// room). A publisher calls Expect once a message is accepted, naming its
// group; each receiver records every delivery in its own Inbox. Tally then
// compares the two by message id: an expected (message, receiver) pair
// without a delivery is a loss, every delivery of a pair beyond the first
// is a duplicate, and a delivery of a message nobody expected (say, one
// whose send reported an error but was stored anyway) is unexpected.
//
// Deliveries may be recorded before the matching Expect: the comparison
// happens in Tally, so a subscriber that sees a message before its
// publisher sees the mutation's response is not miscounted.
package accounting

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Ledger tracks expected and delivered messages. It is safe for concurrent
// use: each receiver's Inbox has its own lock, so receivers do not contend
// with each other.
//
// Message ids are numbered in the order the ledger first sees them, by
// Expect or by a delivery, and an inbox counts deliveries in a slice
// indexed by that number. A thousand receivers of a few thousand messages
// then share one small map instead of each growing its own: per-receiver
// maps were a fifth of the tool's CPU at 300,000 deliveries/s, most of it
// cache misses and rehashing (BENCHMARKS.md, round 14).
type Ledger struct {
	groups  [][]int
	inboxes []*Inbox

	mu    sync.RWMutex
	ids   map[string]int32 // message id → its number
	names []string         // number → message id
	group []int            // number → the group expected, -1 until Expect

	expectedPairs atomic.Int64
	firstSeen     atomic.Int64
}

// New returns a ledger for receivers 0..receivers-1 and the given groups,
// each a list of receiver numbers. A receiver may belong to several groups.
// It panics when a group names a receiver out of range: that is a
// programming error.
func New(receivers int, groups [][]int) *Ledger {
	l := &Ledger{groups: groups, inboxes: make([]*Inbox, receivers), ids: map[string]int32{}}
	for i := range l.inboxes {
		l.inboxes[i] = &Inbox{ledger: l}
	}
	for g, members := range groups {
		for _, r := range members {
			if r < 0 || r >= receivers {
				panic(fmt.Sprintf("accounting: group %d names receiver %d of %d", g, r, receivers))
			}
		}
	}
	return l
}

// number returns message id's number, giving it the next one on first
// sight.
func (l *Ledger) number(id string) int32 {
	l.mu.RLock()
	n, ok := l.ids[id]
	l.mu.RUnlock()
	if ok {
		return n
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.numberLocked(id)
}

// numberLocked is number with l.mu held for writing.
func (l *Ledger) numberLocked(id string) int32 {
	if n, ok := l.ids[id]; ok {
		return n
	}
	n := int32(len(l.names))
	l.ids[id] = n
	l.names = append(l.names, id)
	l.group = append(l.group, -1)
	return n
}

// Expect records that message id was accepted and must reach every member
// of group. Expecting the same id twice counts it once (the first group
// wins). It panics for an unknown group.
func (l *Ledger) Expect(id string, group int) {
	if group < 0 || group >= len(l.groups) {
		panic(fmt.Sprintf("accounting: expect %q for group %d of %d", id, group, len(l.groups)))
	}
	l.mu.Lock()
	n := l.numberLocked(id)
	first := l.group[n] < 0
	if first {
		l.group[n] = group
	}
	l.mu.Unlock()
	if first {
		l.expectedPairs.Add(int64(len(l.groups[group])))
	}
}

// Inbox returns receiver r's inbox. It panics when r is out of range.
func (l *Ledger) Inbox(r int) *Inbox { return l.inboxes[r] }

// Pending is a cheap estimate of the expected deliveries still missing:
// expected pairs minus first deliveries seen. It can be off while
// unexpected messages arrive, so use it to decide when to Tally, not as a
// result.
func (l *Ledger) Pending() int64 {
	return l.expectedPairs.Load() - l.firstSeen.Load()
}

// Inbox is one receiver's record of deliveries.
type Inbox struct {
	ledger *Ledger
	mu     sync.Mutex
	got    []int32 // deliveries by message number; missing at the end: none
}

// Deliver records one delivery of message id and reports whether it is the
// first one to this receiver.
func (b *Inbox) Deliver(id string) (first bool) {
	n := int(b.ledger.number(id))
	b.mu.Lock()
	if n >= len(b.got) {
		b.got = append(b.got, make([]int32, n+1-len(b.got))...)
	}
	b.got[n]++
	c := b.got[n]
	b.mu.Unlock()
	if c == 1 {
		b.ledger.firstSeen.Add(1)
	}
	return c == 1
}

// count is how often the message numbered n reached b.
func (b *Inbox) count(n int) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < len(b.got) {
		return b.got[n]
	}
	return 0
}

// Loss is an expected delivery that did not happen.
type Loss struct {
	Message  string `json:"message"`
	Receiver int    `json:"receiver"`
}

// Duplicate is a message a receiver got more than once.
type Duplicate struct {
	Message  string `json:"message"`
	Receiver int    `json:"receiver"`
	Times    int    `json:"times"`
}

// maxExamples bounds the losses and duplicates a Tally lists.
const maxExamples = 10

// Tally is the comparison of expected and delivered messages.
type Tally struct {
	// Messages is the number of distinct messages expected.
	Messages int `json:"messages"`
	// Expected counts (message, receiver) pairs that should have been
	// delivered.
	Expected int64 `json:"expected"`
	// Delivered counts expected pairs delivered at least once.
	Delivered int64 `json:"delivered"`
	// Lost counts expected pairs never delivered: Expected − Delivered.
	Lost int64 `json:"lost"`
	// Duplicates counts deliveries of a pair beyond the first, expected
	// messages or not.
	Duplicates int64 `json:"duplicates"`
	// Unexpected counts first deliveries of pairs nobody expected: a
	// message never Expected, or delivered to a receiver outside its
	// group.
	Unexpected int64 `json:"unexpected"`
	// LostExamples and DuplicateExamples list up to ten of each, to help
	// find the cause.
	LostExamples      []Loss      `json:"lost_examples,omitempty"`
	DuplicateExamples []Duplicate `json:"duplicate_examples,omitempty"`
}

// Ratio is Delivered ÷ Expected, 1 when nothing was expected.
func (t Tally) Ratio() float64 {
	if t.Expected == 0 {
		return 1
	}
	return float64(t.Delivered) / float64(t.Expected)
}

// Exact reports whether every expected pair was delivered exactly once and
// nothing else arrived.
func (t Tally) Exact() bool {
	return t.Lost == 0 && t.Duplicates == 0 && t.Unexpected == 0
}

// Tally compares what was expected with what was delivered so far.
// Deliveries may continue meanwhile; each inbox is read at one instant.
func (l *Ledger) Tally() Tally {
	l.mu.RLock()
	names, group := slices.Clone(l.names), slices.Clone(l.group)
	l.mu.RUnlock()

	var t Tally
	// member[g][r] says whether receiver r belongs to group g.
	member := make([]map[int]bool, len(l.groups))
	for g, rs := range l.groups {
		member[g] = make(map[int]bool, len(rs))
		for _, r := range rs {
			member[g][r] = true
		}
	}
	for r, box := range l.inboxes {
		box.mu.Lock()
		for n, c := range box.got[:min(len(box.got), len(names))] {
			if c == 0 {
				continue
			}
			if c > 1 {
				t.Duplicates += int64(c - 1)
				if len(t.DuplicateExamples) < maxExamples {
					t.DuplicateExamples = append(t.DuplicateExamples, Duplicate{Message: names[n], Receiver: r, Times: int(c)})
				}
			}
			if g := group[n]; g < 0 || !member[g][r] {
				t.Unexpected++
			}
		}
		box.mu.Unlock()
	}
	for n, g := range group {
		if g < 0 {
			continue
		}
		t.Messages++
		for _, r := range l.groups[g] {
			t.Expected++
			if l.inboxes[r].count(n) > 0 {
				t.Delivered++
				continue
			}
			t.Lost++
			if len(t.LostExamples) < maxExamples {
				t.LostExamples = append(t.LostExamples, Loss{Message: names[n], Receiver: r})
			}
		}
	}
	return t
}
