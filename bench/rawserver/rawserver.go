// Package rawserver is a minimal WebSocket fan-out server: the baseline
// that Parley's GraphQL delivery is compared with. It has no GraphQL, no
// authentication and no database: a publisher POSTs a message to a room,
// the server numbers it and queues one pre-encoded frame to every socket
// in the room, and one goroutine per socket writes its frames: one write
// per delivery by default, or, in coalescing mode (Options.Coalesce),
// everything queued for the socket in one write. The two modes bound what
// a server can deliver on a core with and without coalescing.
//
// Endpoints:
//
//	GET  /ws?room=NAME   WebSocket; receives every message of the room as
//	                     {"id","index","body","createdAt"}
//	POST /publish        {"room":NAME,"body":TEXT} → {"id","index"}
//
// A socket whose queue is full is closed with 1008 (slow consumer), never
// silently skipped, like Parley's brokers.
package rawserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// DefaultBuffer is a socket's queue of undelivered frames, as Parley's
// pubsub.DefaultBuffer.
const DefaultBuffer = 256

// maxPublishBytes caps a publish request.
const maxPublishBytes = 64 << 10

// Options tune a Server.
type Options struct {
	// Buffer is each socket's queue length; 0 is DefaultBuffer.
	Buffer int
	// Coalesce writes every frame queued for a socket in one write
	// (writev), up to 256 KiB, instead of one write per frame.
	Coalesce bool
}

// Server is a running fan-out server.
type Server struct {
	// URL is the base URL, http://host:port.
	URL string

	buffer   int
	coalesce bool
	srv      *http.Server
	ln       net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	conns    sync.WaitGroup
	served   chan error

	mu    sync.Mutex
	rooms map[string]*room

	nextID     atomic.Int64
	slowClosed atomic.Int64
}

type room struct {
	mu    sync.Mutex
	index int64
	socks map[*sock]struct{}
}

type sock struct {
	out    chan []byte
	closed atomic.Bool
	kick   chan struct{} // closed when the socket is dropped as slow
}

// Start listens on addr (such as 127.0.0.1:0) and serves until Close.
func Start(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rawserver: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		URL: "http://" + ln.Addr().String(), buffer: opts.Buffer, coalesce: opts.Coalesce, ln: ln,
		ctx: ctx, cancel: cancel, rooms: map[string]*room{}, served: make(chan error, 1),
	}
	if s.buffer <= 0 {
		s.buffer = DefaultBuffer
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /publish", s.publish)
	return mux
}

// SlowClosed counts sockets closed because their queue was full.
func (s *Server) SlowClosed() int64 { return s.slowClosed.Load() }

// Close stops the server: no new requests, every socket closed.
func (s *Server) Close() error {
	s.cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	err := s.srv.Shutdown(shutdownCtx)
	s.conns.Wait()
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("rawserver: close: %w", err)
	}
	return nil
}

func (s *Server) room(name string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[name]
	if r == nil {
		r = &room{socks: map[*sock]struct{}{}}
		s.rooms[name] = r
	}
	return r
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("room")
	if name == "" {
		http.Error(w, "room is required", http.StatusBadRequest)
		return
	}
	s.conns.Add(1)
	defer s.conns.Done()
	if s.coalesce {
		s.serveCoalesced(w, r, s.room(name))
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the request
	}
	defer c.CloseNow()
	// CloseRead answers the client's control frames and ends ctx when
	// the client goes away; clients send nothing else.
	ctx := c.CloseRead(s.ctx)
	so := &sock{out: make(chan []byte, s.buffer), kick: make(chan struct{})}
	rm := s.room(name)
	rm.mu.Lock()
	rm.socks[so] = struct{}{}
	rm.mu.Unlock()
	defer func() {
		rm.mu.Lock()
		delete(rm.socks, so)
		rm.mu.Unlock()
	}()
	for {
		select {
		case b := <-so.out:
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return
			}
		case <-so.kick:
			_ = c.Close(websocket.StatusPolicyViolation, "slow consumer")
			return
		case <-ctx.Done():
			_ = c.Close(websocket.StatusGoingAway, "server closing")
			return
		}
	}
}

type publishRequest struct {
	Room string `json:"room"`
	Body string `json:"body"`
}

// Message is what a subscriber receives, and (without Body and
// CreatedAt) what a publisher gets back.
type Message struct {
	ID        string `json:"id"`
	Index     int64  `json:"index"`
	Body      string `json:"body,omitempty"`
	CreatedAt string `json:"createdAt,omitempty"`
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublishBytes))
	if err != nil {
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	var in publishRequest
	if err := json.Unmarshal(raw, &in); err != nil || in.Room == "" {
		http.Error(w, `want {"room":…,"body":…}`, http.StatusBadRequest)
		return
	}
	rm := s.room(in.Room)
	msg := Message{ID: "m" + strconv.FormatInt(s.nextID.Add(1), 10), Body: in.Body}
	// Numbering and queueing under the room's lock keeps every socket's
	// frames in index order.
	rm.mu.Lock()
	msg.Index = rm.index
	rm.index++
	msg.CreatedAt = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(msg)
	if err == nil && s.coalesce {
		b = frame(b)
	}
	if err == nil {
		for so := range rm.socks {
			if so.closed.Load() {
				continue
			}
			select {
			case so.out <- b:
			default:
				if so.closed.CompareAndSwap(false, true) {
					s.slowClosed.Add(1)
					close(so.kick)
				}
			}
		}
	}
	rm.mu.Unlock()
	if err != nil {
		http.Error(w, "encode message", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(Message{ID: msg.ID, Index: msg.Index}); err != nil {
		return // the publisher went away
	}
}
