package localsub

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/parleychat/parley/pubsub"
)

// queued is how many messages of s wait for Next.
func queued(s *Sub) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) - s.head
}

// sorted returns a sorted copy of ss, for comparing sets.
func sorted(ss []string) []string { return slices.Sorted(slices.Values(ss)) }

func TestRegistryFirstAndLast(t *testing.T) {
	var r Registry
	a, b := New(1, func(*Sub) {}), New(1, func(*Sub) {})
	r.Join(a)
	r.Join(b)
	if added, first := r.Add(a, []string{"x", "y", "x"}); !slices.Equal(sorted(added), []string{"x", "y"}) || !slices.Equal(sorted(first), []string{"x", "y"}) {
		t.Fatalf("Add(a) = %v, %v; want [x y], [x y]", added, first)
	}
	if added, first := r.Add(b, []string{"y", "z"}); !slices.Equal(added, []string{"y", "z"}) || !slices.Equal(first, []string{"z"}) {
		t.Fatalf("Add(b) = %v, %v; want [y z], [z]", added, first)
	}
	if added, first := r.Add(a, []string{"x"}); added != nil || first != nil {
		t.Fatalf("Add(a) again = %v, %v; want nothing", added, first)
	}
	if last := r.Remove(a, []string{"y", "w"}); last != nil {
		t.Fatalf("Remove(a, y) = %v; want nothing, b has y", last)
	}
	if last := r.Leave(b); !slices.Equal(sorted(last), []string{"y", "z"}) {
		t.Fatalf("Leave(b) = %v; want [y z]", last)
	}
	if last := r.Leave(a); !slices.Equal(last, []string{"x"}) {
		t.Fatalf("Leave(a) = %v; want [x]", last)
	}
	if added, first := r.Add(a, []string{"x"}); added != nil || first != nil {
		t.Fatalf("Add after Leave = %v, %v; want nothing", added, first)
	}
}

func TestRegistryDeliver(t *testing.T) {
	var r Registry
	fast, slow := New(2, func(*Sub) {}), New(1, func(*Sub) {})
	for _, s := range []*Sub{fast, slow} {
		r.Join(s)
		r.Add(s, []string{"t"})
	}
	msg := pubsub.Message{Topic: "t", Data: []byte("m")}
	if got := r.Deliver(msg); got != nil {
		t.Fatalf("first Deliver ended %v", got)
	}
	if got := r.Deliver(msg); !slices.Equal(got, []*Sub{slow}) {
		t.Fatalf("second Deliver ended %v; want only the slow Sub", got)
	}
	if !slow.Ended() || !errors.Is(slow.Err(), pubsub.ErrSlowConsumer) {
		t.Fatalf("slow Sub: ended %v, Err %v", slow.Ended(), slow.Err())
	}
	if fast.Ended() || queued(fast) != 2 {
		t.Fatalf("fast Sub: ended %v, %d queued", fast.Ended(), queued(fast))
	}
}

func TestRegistryClear(t *testing.T) {
	var r Registry
	s := New(1, func(*Sub) {})
	r.Join(s)
	r.Add(s, []string{"t"})
	if got := r.Clear(); !slices.Equal(got, []*Sub{s}) {
		t.Fatalf("Clear = %v", got)
	}
	// The brokers rely on this: a subscription may change its topics
	// after its broker cleared the registry but before it is ended.
	if added, first := r.Add(s, []string{"u"}); added != nil || first != nil {
		t.Fatalf("Add after Clear = %v, %v; want nothing", added, first)
	}
	if last := r.Remove(s, []string{"t"}); last != nil {
		t.Fatalf("Remove after Clear = %v; want nothing", last)
	}
	if got := r.Deliver(pubsub.Message{Topic: "t"}); got != nil {
		t.Fatalf("Deliver after Clear ended %v", got)
	}
}

func TestSubCloseAndWatch(t *testing.T) {
	detached := 0
	s := New(1, func(*Sub) { detached++ })
	ctx, cancel := context.WithCancel(context.Background())
	s.Watch(ctx)
	s.Close()
	s.Close()
	cancel()
	if detached != 1 {
		t.Fatalf("detached %d times; want 1", detached)
	}
	if _, ok := s.Next(context.Background()); ok || s.Err() != nil {
		t.Fatalf("Next = %v, Err %v; want false, nil", ok, s.Err())
	}

	ended := make(chan struct{})
	s = New(1, func(*Sub) { close(ended) })
	ctx, cancel = context.WithCancel(context.Background())
	s.Watch(ctx)
	cancel()
	<-ended
	if !s.Ended() || s.Err() != nil {
		t.Fatalf("after ctx done: ended %v, Err %v", s.Ended(), s.Err())
	}

	s = New(1, func(*Sub) { t.Error("End detached the Sub") })
	s.End(pubsub.ErrClosed)
	s.Close()
	if !errors.Is(s.Err(), pubsub.ErrClosed) {
		t.Fatalf("Err = %v; want ErrClosed", s.Err())
	}
}

func TestSubQueue(t *testing.T) {
	ctx := context.Background()
	s := New(1000, func(*Sub) {})
	msg := func(i int) pubsub.Message { return pubsub.Message{Topic: "t", Data: []byte{byte(i)}} }
	next := func() int {
		t.Helper()
		m, ok := s.Next(ctx)
		if !ok {
			t.Fatalf("Next ended early: %v", s.Err())
		}
		return int(m.Data[0])
	}

	// Messages come out in order, also when reads and writes interleave
	// across the reuse of the queue's room.
	want := 0
	for round := range 10 {
		for i := range idleQueueCap - 1 {
			if !s.deliver(msg(round*(idleQueueCap-1) + i)) {
				t.Fatal("deliver ended a Sub with room")
			}
			if i%3 == 2 {
				if got := next(); got != want {
					t.Fatalf("Next = %d, want %d", got, want)
				}
				want++
			}
		}
	}
	for queued(s) > 0 {
		if got := next(); got != want {
			t.Fatalf("Next = %d, want %d", got, want)
		}
		want++
	}

	// A burst's backlog is released once read; a small queue is kept.
	for i := range 100 {
		s.deliver(msg(i))
	}
	if queued(s) != 100 {
		t.Fatalf("queued %d, want 100", queued(s))
	}
	for range 100 {
		next()
	}
	if s.queue != nil {
		t.Fatalf("emptied queue keeps capacity %d", cap(s.queue))
	}

	// Messages queued before the end are still read, then Next reports
	// the end, every time it is called.
	s.deliver(msg(1))
	s.deliver(msg(2))
	s.End(pubsub.ErrClosed)
	if next() != 1 || next() != 2 {
		t.Fatal("queued messages lost at the end")
	}
	for range 2 {
		if _, ok := s.Next(ctx); ok || !errors.Is(s.Err(), pubsub.ErrClosed) {
			t.Fatalf("Next after the end = %v, Err %v", ok, s.Err())
		}
	}
}

func TestSubNextWaits(t *testing.T) {
	s := New(1, func(*Sub) {})
	got := make(chan pubsub.Message)
	go func() {
		m, _ := s.Next(context.Background())
		got <- m
	}()
	s.deliver(pubsub.Message{Topic: "late"})
	if m := <-got; m.Topic != "late" {
		t.Fatalf("Next = %+v", m)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok := s.Next(ctx); ok || s.Ended() {
		t.Fatalf("Next with a done ctx = %v, ended %v; want false on a live Sub", ok, s.Ended())
	}
}
