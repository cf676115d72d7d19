package rawserver

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gobwas/ws"
)

// maxWriteBytes caps one write of a coalescing socket's queued frames.
const maxWriteBytes = 256 << 10

// frame returns a whole unmasked text frame holding payload: in
// coalescing mode a message is framed once and every socket writes the
// same bytes.
func frame(payload []byte) []byte {
	var buf bytes.Buffer
	_ = ws.WriteFrame(&buf, ws.NewTextFrame(payload)) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// serveCoalesced serves one socket in coalescing mode: its writer takes
// every frame queued for it and writes them in one writev, up to
// maxWriteBytes, instead of one write per frame.
func (s *Server) serveCoalesced(w http.ResponseWriter, r *http.Request, rm *room) {
	nc, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return // UpgradeHTTP has answered the request
	}
	defer nc.Close()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// The client sends nothing but control frames: read them to notice
	// when it goes away.
	go func() {
		defer cancel()
		for {
			h, err := ws.ReadHeader(nc)
			if err != nil || h.OpCode == ws.OpClose {
				return
			}
			if _, err := io.CopyN(io.Discard, nc, h.Length); err != nil {
				return
			}
		}
	}()
	so := &sock{out: make(chan []byte, s.buffer), kick: make(chan struct{})}
	rm.mu.Lock()
	rm.socks[so] = struct{}{}
	rm.mu.Unlock()
	defer func() {
		rm.mu.Lock()
		delete(rm.socks, so)
		rm.mu.Unlock()
	}()
	var bufs net.Buffers
	for {
		select {
		case b := <-so.out:
			bufs = append(bufs[:0], b)
			size := len(b)
		drain:
			for size < maxWriteBytes {
				select {
				case b := <-so.out:
					bufs = append(bufs, b)
					size += len(b)
				default:
					break drain
				}
			}
			_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			batch := bufs
			if _, err := batch.WriteTo(nc); err != nil {
				return
			}
		case <-so.kick:
			_ = ws.WriteFrame(nc, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusPolicyViolation, "slow consumer")))
			return
		case <-ctx.Done():
			_ = ws.WriteFrame(nc, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "server closing")))
			return
		}
	}
}
