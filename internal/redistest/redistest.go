// Package redistest holds what the Redis-backed tests of the broker and of
// presence share: the server they talk to (TEST_REDIS_URL), clients closed
// with the test, polling for a condition, and redis-server processes of a
// test's own for restart tests. Its functions are meant to be called from
// a test's goroutine, like the testing.T they take.
package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// URL returns TEST_REDIS_URL or skips t.
func URL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("TEST_REDIS_URL")
	if url == "" {
		t.Skip("TEST_REDIS_URL is not set")
	}
	return url
}

// NewClient returns a client of url, closed in t.Cleanup.
func NewClient(t *testing.T, url string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	client := goredis.NewClient(opts)
	t.Cleanup(func() {
		if err := client.Close(); err != nil {
			t.Errorf("client Close: %v", err)
		}
	})
	return client
}

// Eventually polls cond every 20ms until it holds, failing t after limit.
func Eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartServer starts a redis-server of its own (keeping nothing on disk)
// on a free port, or skips t when redis-server is not installed. It
// returns the server's URL and a function that kills it, which t.Cleanup
// calls too; Restart starts it again on the same port.
func StartServer(t *testing.T) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed")
	}
	s := &Server{t: t, bin: bin, port: freePort(t)}
	s.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
	s.Restart()
	return s
}

// Server is a redis-server process of one test.
type Server struct {
	// URL reaches the server.
	URL  string
	t    *testing.T
	bin  string
	port int
	kill func()
}

// Restart starts the server (again) and waits until it answers.
func (s *Server) Restart() {
	t := s.t
	t.Helper()
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.kill = sync.OnceFunc(func() {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill redis-server: %v", err)
		}
		<-exited
	})
	t.Cleanup(s.kill)
	client := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer func() {
		if err := client.Close(); err != nil {
			t.Errorf("client Close: %v", err)
		}
	}()
	Eventually(t, 5*time.Second, "redis-server answers", func() bool {
		return client.Ping(t.Context()).Err() == nil
	})
}

// Kill stops the server at once.
func (s *Server) Kill() { s.kill() }

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return port
}
