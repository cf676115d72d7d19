package server

import (
	"net"
	"runtime"
	"sync"
)

// flusher writes the queued frames of every WebSocket connection the
// poller holds, from one goroutine per process: a connection with
// something to write joins its list, and each turn writes every listed
// connection's queue, one batch each, without waiting for any socket.
//
// A fan-out event queues a frame for each of its subscribers from the
// hub's dispatch goroutine; with a goroutine per writing connection it
// started a thousand goroutines per event, which the scheduler then ran
// one by one, and everything else on the core (the send path's group
// commit) waited behind them. The flusher makes that one wakeup per turn,
// and the turn's length sets how much piles up for the next one: under
// load each write carries more frames, the way a raw server that drains
// whole queues does.
//
// A socket that would block leaves the flusher: its connection's rest is
// written by a goroutine of its own, bounded by the write timeout, so a
// slow client never holds the others up. Safe for concurrent use.
type flusher struct {
	mu    sync.Mutex
	ready []*wsConn
	wake  chan struct{}
}

var (
	sharedFlusher     *flusher
	sharedFlusherOnce sync.Once
)

// newFlusher returns the process's flusher, started on first use; nil
// where the poller is unavailable, since only its sockets can be written
// without waiting.
func newFlusher(p *poller) *flusher {
	if p == nil {
		return nil
	}
	sharedFlusherOnce.Do(func() {
		sharedFlusher = &flusher{wake: make(chan struct{}, 1)}
		go sharedFlusher.run()
	})
	return sharedFlusher
}

// add lists c for the next turn. c's writing flag, set by its caller,
// keeps c listed at most once.
func (f *flusher) add(c *wsConn) {
	f.mu.Lock()
	f.ready = append(f.ready, c)
	first := len(f.ready) == 1
	f.mu.Unlock()
	if first {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// yieldEvery is how many connections the flusher writes before it lets
// the other goroutines run: a turn over a thousand subscribers takes
// milliseconds, and with one core a request's every step (read, group
// commit, response) would otherwise wait for the turn's end.
const yieldEvery = 64

// run takes turns for the life of the process.
func (f *flusher) run() {
	var (
		turn []*wsConn
		bufs net.Buffers
	)
	for {
		f.mu.Lock()
		turn, f.ready = f.ready, turn[:0]
		f.mu.Unlock()
		if len(turn) == 0 {
			<-f.wake
			continue
		}
		for i, c := range turn {
			bufs = c.flush(bufs)
			turn[i] = nil
			if i%yieldEvery == yieldEvery-1 {
				runtime.Gosched()
			}
		}
	}
}
