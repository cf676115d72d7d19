package server

import (
	"testing"
)

// TestTakeLockedCapsOneWrite: one write takes at most maxWriteVecs buffers
// (Linux refuses a writev of more than IOV_MAX = 1,024) and at most
// maxWriteBytes, and the queue keeps the rest in order.
func TestTakeLockedCapsOneWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		frames    int
		body      int
		wantTaken int
	}{
		{"a queue of small frames at the buffer cap", maxWriteVecs / 3, 10, maxWriteVecs / 3},
		{"one frame past the buffer cap", maxWriteVecs/3 + 1, 10, maxWriteVecs / 3},
		{"a full default queue of small frames", 1024, 10, maxWriteVecs / 3},
		{"large frames at the byte cap", 4, maxWriteBytes/4 - 20, 4},
		{"large frames one past the byte cap", 5, maxWriteBytes/4 - 20, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &wsConn{writing: true}
			for i := range tc.frames {
				c.queue = append(c.queue, wsFrame{head: []byte{byte(i)}, body: make([]byte, tc.body), tail: closingBrace})
			}
			c.queued = tc.frames
			bufs, n, size, last := c.takeLocked(nil)
			if n != tc.wantTaken || len(bufs) != 3*n || last {
				t.Fatalf("took %d frames in %d buffers (last %v), want %d frames", n, len(bufs), last, tc.wantTaken)
			}
			if len(bufs) > maxWriteVecs || size > maxWriteBytes {
				t.Fatalf("one write of %d buffers and %d bytes: over the caps", len(bufs), size)
			}
			if c.queued != tc.frames-n || len(c.queue) != c.queued || !c.writing {
				t.Fatalf("queue holds %d (%d counted), writing %v after taking %d of %d", len(c.queue), c.queued, c.writing, n, tc.frames)
			}
			if c.queued > 0 && c.queue[0].head[0] != byte(n) {
				t.Fatalf("the queue goes on at frame %d, want %d", c.queue[0].head[0], n)
			}
		})
	}
}
