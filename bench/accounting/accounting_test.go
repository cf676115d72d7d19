package accounting

import (
	"fmt"
	"sync"
	"testing"
)

// twoRooms is receivers 0-2 in group 0 and 3-4 in group 1.
func twoRooms() *Ledger { return New(5, [][]int{{0, 1, 2}, {3, 4}}) }

func TestExactDelivery(t *testing.T) {
	l := twoRooms()
	l.Expect("a", 0)
	l.Expect("b", 1)
	for _, r := range []int{0, 1, 2} {
		if !l.Inbox(r).Deliver("a") {
			t.Fatalf("first delivery of a to %d not reported as first", r)
		}
	}
	l.Inbox(3).Deliver("b")
	l.Inbox(4).Deliver("b")
	got := l.Tally()
	want := Tally{Messages: 2, Expected: 5, Delivered: 5}
	if got.Messages != want.Messages || got.Expected != want.Expected || got.Delivered != want.Delivered ||
		got.Lost != 0 || got.Duplicates != 0 || got.Unexpected != 0 {
		t.Fatalf("tally = %+v, want %+v", got, want)
	}
	if !got.Exact() || got.Ratio() != 1 {
		t.Fatalf("exact = %v ratio = %v", got.Exact(), got.Ratio())
	}
	if p := l.Pending(); p != 0 {
		t.Fatalf("pending = %d", p)
	}
}

func TestLossesAndDuplicates(t *testing.T) {
	l := twoRooms()
	l.Expect("a", 0)
	l.Inbox(0).Deliver("a")
	if l.Inbox(0).Deliver("a") {
		t.Fatal("second delivery reported as first")
	}
	l.Inbox(0).Deliver("a") // three times: two duplicates
	l.Inbox(1).Deliver("a")
	// receiver 2 never gets it: one loss
	got := l.Tally()
	if got.Expected != 3 || got.Delivered != 2 || got.Lost != 1 || got.Duplicates != 2 || got.Unexpected != 0 {
		t.Fatalf("tally = %+v", got)
	}
	if len(got.LostExamples) != 1 || got.LostExamples[0] != (Loss{Message: "a", Receiver: 2}) {
		t.Fatalf("lost examples = %+v", got.LostExamples)
	}
	if len(got.DuplicateExamples) != 1 || got.DuplicateExamples[0] != (Duplicate{Message: "a", Receiver: 0, Times: 3}) {
		t.Fatalf("duplicate examples = %+v", got.DuplicateExamples)
	}
	if got.Exact() {
		t.Fatal("a lossy tally reported exact")
	}
	if r := got.Ratio(); r < 0.666 || r > 0.667 {
		t.Fatalf("ratio = %v, want 2/3", r)
	}
	if p := l.Pending(); p != 1 {
		t.Fatalf("pending = %d, want 1", p)
	}
}

func TestUnexpectedAndCrossGroup(t *testing.T) {
	l := twoRooms()
	l.Expect("a", 1)
	l.Inbox(3).Deliver("a")
	l.Inbox(4).Deliver("a")
	l.Inbox(0).Deliver("a")     // group 0 should not get group 1's message
	l.Inbox(1).Deliver("ghost") // never expected
	got := l.Tally()
	if got.Expected != 2 || got.Delivered != 2 || got.Lost != 0 || got.Unexpected != 2 || got.Duplicates != 0 {
		t.Fatalf("tally = %+v", got)
	}
}

func TestDeliveryBeforeExpect(t *testing.T) {
	// A subscriber may see a message before the publisher sees the
	// mutation's response.
	l := twoRooms()
	l.Inbox(3).Deliver("early")
	l.Inbox(4).Deliver("early")
	l.Expect("early", 1)
	if got := l.Tally(); !got.Exact() || got.Delivered != 2 {
		t.Fatalf("tally = %+v", got)
	}
}

func TestExpectTwiceCountsOnce(t *testing.T) {
	l := twoRooms()
	l.Expect("a", 1)
	l.Expect("a", 1)
	if got := l.Tally(); got.Messages != 1 || got.Expected != 2 {
		t.Fatalf("tally = %+v", got)
	}
	if p := l.Pending(); p != 2 {
		t.Fatalf("pending = %d, want 2", p)
	}
}

func TestEmpty(t *testing.T) {
	got := New(0, nil).Tally()
	if !got.Exact() || got.Ratio() != 1 || got.Expected != 0 {
		t.Fatalf("empty tally = %+v", got)
	}
}

func TestConcurrent(t *testing.T) {
	const receivers, messages = 20, 200
	group := make([]int, receivers)
	for i := range group {
		group[i] = i
	}
	l := New(receivers, [][]int{group})
	var wg sync.WaitGroup
	wg.Go(func() {
		for m := range messages {
			l.Expect(fmt.Sprint(m), 0)
		}
	})
	for r := range receivers {
		wg.Go(func() {
			for m := range messages {
				l.Inbox(r).Deliver(fmt.Sprint(m))
			}
		})
	}
	wg.Wait()
	got := l.Tally()
	if !got.Exact() || got.Delivered != receivers*messages {
		t.Fatalf("tally = %+v", got)
	}
}

func TestBadGroupPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a receiver out of range")
		}
	}()
	New(2, [][]int{{0, 2}})
}

// BenchmarkFanoutDeliveries records what a fan-out step of 1 room × 1,000
// receivers at 300 msg/s records: 2,400 messages, each delivered to every
// receiver, message after message. It reports the cost per delivery.
func BenchmarkFanoutDeliveries(b *testing.B) {
	const receivers, messages = 1000, 2400
	group := make([]int, receivers)
	for r := range group {
		group[r] = r
	}
	ids := make([]string, messages)
	for i := range ids {
		ids[i] = fmt.Sprintf("01a238ec-6f17-70c7-9300-%012d", i)
	}
	for b.Loop() {
		l := New(receivers, [][]int{group})
		for _, id := range ids {
			l.Expect(id, 0)
			for r := range receivers {
				l.Inbox(r).Deliver(id)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*receivers*messages), "ns/delivery")
}
