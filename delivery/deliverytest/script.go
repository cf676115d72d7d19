package deliverytest

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Reply is a scripted answer of a fake.
type Reply struct {
	// Status is the HTTP status; zero means success.
	Status int
	// Reason is the error: FCM's errorCode (UNREGISTERED,
	// INVALID_ARGUMENT, …), APNs' reason (Unregistered, BadDeviceToken,
	// …); ignored by the webhook receiver.
	Reason string
	// RetryAfter, when positive, is sent as Retry-After in seconds.
	RetryAfter time.Duration
	// Hold, when not nil, delays the answer until it is closed or the
	// request is abandoned: a delivery in flight.
	Hold chan struct{}
}

// script hands out the replies scripted per key, in order; a key without
// one left gets success.
type script struct {
	mu      sync.Mutex
	replies map[string][]Reply
}

func (s *script) add(key string, r ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replies == nil {
		s.replies = map[string][]Reply{}
	}
	s.replies[key] = append(s.replies[key], r...)
}

func (s *script) next(key string) Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.replies[key]
	if len(q) == 0 {
		return Reply{}
	}
	s.replies[key] = q[1:]
	return q[0]
}

// wait holds a request while r says so; false when the client went away.
func (r Reply) wait(req *http.Request) bool {
	if r.Hold == nil {
		return true
	}
	select {
	case <-r.Hold:
		return true
	case <-req.Context().Done():
		return false
	}
}

// header sets Retry-After when r has one.
func (r Reply) header(w http.ResponseWriter) {
	if r.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(r.RetryAfter.Seconds())))
	}
}

// recorder keeps what a fake received and announces each arrival.
type recorder[T any] struct {
	mu  sync.Mutex
	all []T
	// arrived gets every request as it arrives.
	arrived chan T
}

func newRecorder[T any]() recorder[T] { return recorder[T]{arrived: make(chan T, 10_000)} }

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.all = append(r.all, v)
	r.mu.Unlock()
	r.arrived <- v
}

// list returns a copy of what arrived so far.
func (r *recorder[T]) list() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.all...)
}

// next waits for the next arrival, failing t after timeout.
func (r *recorder[T]) next(t testing.TB, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-r.arrived:
		return v
	case <-time.After(timeout):
		t.Fatalf("no %s came within %s", what, timeout)
		var zero T
		return zero
	}
}
