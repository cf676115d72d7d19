package rawserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/bench/client"
)

func TestFanOut(t *testing.T) {
	for _, coalesce := range []bool{false, true} {
		t.Run(fmt.Sprintf("coalesce=%v", coalesce), func(t *testing.T) { testFanOut(t, Options{Coalesce: coalesce}) })
	}
}

func testFanOut(t *testing.T, opts Options) {
	s, err := Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 3
	var mu sync.Mutex
	got := make([][]Message, n)
	for i := range n {
		c, err := client.DialRaw(ctx, "ws"+s.URL[len("http"):]+"/ws?room=a", client.DialOptions{}, func(data []byte) {
			var m Message
			if err := json.Unmarshal(data, &m); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[i] = append(got[i], m)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	// Registration follows the upgrade: publish until every socket has
	// seen a message, after which each must get every later one.
	waitFor(t, func() bool {
		pub(t, s.URL, "a", "warm")
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if len(g) == 0 {
				return false
			}
		}
		return true
	})
	id := pub(t, s.URL, "a", "hello")
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if last := g[len(g)-1]; last.ID != id {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for i, g := range got {
		for j := 1; j < len(g); j++ {
			if g[j].Index != g[j-1].Index+1 {
				t.Errorf("socket %d: index %d after %d", i, g[j].Index, g[j-1].Index)
			}
		}
		if last := g[len(g)-1]; last.Body != "hello" || last.CreatedAt == "" {
			t.Errorf("socket %d: last message %+v", i, last)
		}
	}
	if s.SlowClosed() != 0 {
		t.Errorf("%d sockets closed as slow", s.SlowClosed())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pub(t *testing.T, base, room, body string) string {
	t.Helper()
	b, err := json.Marshal(publishRequest{Room: room, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/publish", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m Message
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}
