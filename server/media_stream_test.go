package server_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/parleychat/parley/parleytest"
)

// mp4Stream yields n bytes of an MP4 file (an ftyp box, then zeros)
// without holding them: the bytes are made as they are read.
type mp4Stream struct {
	n, off int64
}

var mp4Head = []byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'm', 'p', '4', '2', 0, 0, 0, 0, 'm', 'p', '4', '2', 'i', 's', 'o', 'm'}

func (s *mp4Stream) Read(p []byte) (int, error) {
	if s.off >= s.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.n-s.off)]
	clear(p)
	if s.off < int64(len(mp4Head)) {
		copy(p, mp4Head[s.off:])
	}
	s.off += int64(len(p))
	return len(p), nil
}

// rssBytes is the process's resident set size, from /proc; 0 where there
// is none.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestMediaStreams: a 10 MiB upload and its download stream through the
// server (and this test's client) without being held in memory: the bytes
// allocated on the heap while both run, by the server and the client in
// this process, stay under 2 MiB, as does the growth of heap in use.
func TestMediaStreams(t *testing.T) {
	// Not parallel: it measures the heap of the whole test process, which parallel tests would allocate in.
	const size = 10 << 20
	const budget = 2 << 20
	srv := parleytest.NewServer(t, parleytest.Backends()[0], parleytest.Options{})
	alice := srv.Client("alice")
	ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})
	up := mustUpload(t, alice, ch, "big.mp4", "video/mp4", size)
	// Warm the HTTP client's connection and the handler's paths up.
	exchange(t, srv, http.MethodGet, "/healthz", nil, 0, nil)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rss0 := rssBytes()
	res := exchange(t, srv, http.MethodPut, up.UploadURL, &mp4Stream{n: size}, size, nil)
	runtime.ReadMemStats(&after)
	if res.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", res.status, res.body)
	}
	alloc, inuse := after.TotalAlloc-before.TotalAlloc, int64(after.HeapInuse)-int64(before.HeapInuse)
	t.Logf("upload of %d MiB: %d KiB allocated, heap in use %+d KiB, RSS %+d KiB", size>>20, alloc>>10, inuse>>10, (rssBytes()-rss0)>>10)
	if alloc > budget || inuse > budget {
		t.Errorf("the upload allocated %d bytes (heap in use %+d); want under %d", alloc, inuse, budget)
	}

	var sent struct{ SendMessage mediaMessage }
	alice.Do(sendWithMedia, map[string]any{"c": ch, "b": "video", "m": []string{up.ID}}, &sent)
	req, err := http.NewRequest(http.MethodGet, srv.URL+sent.SendMessage.Media[0].URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	if _, err := io.Copy(want, &mp4Stream{n: size}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	rss0 = rssBytes()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	runtime.ReadMemStats(&after)
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("GET: %d bytes (%v), same bytes: %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
	alloc, inuse = after.TotalAlloc-before.TotalAlloc, int64(after.HeapInuse)-int64(before.HeapInuse)
	t.Logf("download of %d MiB: %d KiB allocated, heap in use %+d KiB, RSS %+d KiB", size>>20, alloc>>10, inuse>>10, (rssBytes()-rss0)>>10)
	if alloc > budget || inuse > budget {
		t.Errorf("the download allocated %d bytes (heap in use %+d); want under %d", alloc, inuse, budget)
	}
}
