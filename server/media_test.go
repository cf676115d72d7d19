package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"net"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/parleytest"
)

const createUpload = `mutation($in: CreateUploadInput!) { createUpload(input: $in) { id uploadUrl expiresAt } }`

type uploadData struct {
	ID        string `json:"id"`
	UploadURL string `json:"uploadUrl"`
	ExpiresAt string `json:"expiresAt"`
}

const sendWithMedia = `mutation($c: ID!, $b: String, $m: [ID!]) { sendMessage(input: {channelId: $c, body: $b, media: $m}) {
	id index type body media { id filename contentType size width height url expiresAt } } }`

type mediaData struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int    `json:"size"`
	Width       *int   `json:"width"`
	Height      *int   `json:"height"`
	URL         string `json:"url"`
	ExpiresAt   string `json:"expiresAt"`
}

type mediaMessage struct {
	ID    string      `json:"id"`
	Index int         `json:"index"`
	Type  string      `json:"type"`
	Body  string      `json:"body"`
	Media []mediaData `json:"media"`
}

// mustUpload creates an upload as c and returns it.
func mustUpload(t *testing.T, c *parleytest.Client, channelID, filename, contentType string, size int) uploadData {
	t.Helper()
	var out struct{ CreateUpload uploadData }
	c.Do(createUpload, map[string]any{"in": map[string]any{"channelId": channelID, "filename": filename, "contentType": contentType, "size": size}}, &out)
	return out.CreateUpload
}

// httpResult is a status, body and headers of a raw HTTP exchange.
type httpResult struct {
	status int
	body   []byte
	header http.Header
}

// code is the GraphQL-shaped error body's extensions.code, or "".
func (r httpResult) code() string {
	var body struct {
		Errors []parleytest.Error `json:"errors"`
	}
	if json.Unmarshal(r.body, &body) != nil || len(body.Errors) == 0 {
		return ""
	}
	return body.Errors[0].Code()
}

// exchange sends method to srv's path (a relative URL as the server hands
// out) with body; length -1 sends it chunked.
func exchange(t *testing.T, srv *parleytest.Server, method, path string, body io.Reader, length int64, header http.Header) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	if body == nil {
		req.ContentLength = 0
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{status: resp.StatusCode, body: got, header: resp.Header}
}

// put uploads data to an upload URL.
func put(t *testing.T, srv *parleytest.Server, path string, data []byte) httpResult {
	t.Helper()
	return exchange(t, srv, http.MethodPut, path, bytes.NewReader(data), int64(len(data)), nil)
}

// pngImage returns a w×h PNG.
func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		img.Set(x, x%h, color.NRGBA{R: uint8(x), G: 80, B: 160, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storedFiles lists the files of a media directory, temporary ones too.
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestMediaEndToEnd: createUpload, PUT the bytes, sendMessage with the
// upload, read the message's media as another member (live too) and GET
// the URL whole and by range; a non-member gets no URL; deleting the
// message deletes its media.
func TestMediaEndToEnd(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice, bob, carol := srv.Client("alice"), srv.Client("bob"), srv.Client("carol")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC", "members": []string{"bob"}})
		sub := srv.Dial(t, "bob").Subscribe(`subscription($c: ID) { messageAdded(channelId: $c, afterIndex: -1) {
			index media { filename width height url } } }`, map[string]any{"c": ch})

		pic := pngImage(t, 300, 200)
		up := mustUpload(t, alice, ch, "café photo.png", "image/png", len(pic))
		if !strings.HasPrefix(up.UploadURL, "/media/uploads/"+up.ID+"?") {
			t.Fatalf("uploadUrl %q", up.UploadURL)
		}
		res := put(t, srv, up.UploadURL, pic)
		if res.status != http.StatusOK {
			t.Fatalf("PUT: %d %s", res.status, res.body)
		}
		var stored struct {
			ID            string
			Size          int
			Width, Height *int
		}
		if err := json.Unmarshal(res.body, &stored); err != nil || stored.ID != up.ID || stored.Size != len(pic) || *stored.Width != 300 || *stored.Height != 200 {
			t.Fatalf("PUT answered %s (%v)", res.body, err)
		}
		if again := put(t, srv, up.UploadURL, pic); again.status != http.StatusConflict || again.code() != "CONFLICT" {
			t.Fatalf("second PUT: %d %s; want 409 CONFLICT", again.status, again.body)
		}

		mustSend(t, alice, ch, "text first")
		var sent struct{ SendMessage mediaMessage }
		// The body may be left out when media are given.
		alice.Do(sendWithMedia, map[string]any{"c": ch, "m": []string{up.ID}}, &sent)
		if sent.SendMessage.Type != "MEDIA" || sent.SendMessage.Body != "" {
			t.Fatalf("sent a %s message with body %q; want MEDIA and none", sent.SendMessage.Type, sent.SendMessage.Body)
		}
		m := sent.SendMessage.Media
		if len(m) != 1 || m[0].ID != up.ID || m[0].Filename != "café photo.png" || m[0].ContentType != "image/png" ||
			m[0].Size != len(pic) || *m[0].Width != 300 || *m[0].Height != 200 || m[0].URL == "" {
			t.Fatalf("sent media %+v", m)
		}
		var ev struct {
			MessageAdded struct {
				Index int
				Media []mediaData
			}
		}
		for _, want := range []int{0, 1} {
			if err := json.Unmarshal(sub.Next(t, eventWait), &ev); err != nil || ev.MessageAdded.Index != want {
				t.Fatalf("messageAdded %+v (%v); want index %d", ev.MessageAdded, err, want)
			}
		}
		if len(ev.MessageAdded.Media) != 1 || ev.MessageAdded.Media[0].Filename != "café photo.png" || *ev.MessageAdded.Media[0].Width != 300 {
			t.Fatalf("messageAdded media %+v", ev.MessageAdded)
		}

		const history = `query($c: ID!) { messages(channelId: $c, last: 10, filter: {hasMedia: true}) { edges { node { id media { id url expiresAt } } } } }`
		var hist struct {
			Messages struct{ Edges []struct{ Node mediaMessage } }
		}
		bob.Do(history, map[string]any{"c": ch}, &hist)
		if len(hist.Messages.Edges) != 1 || hist.Messages.Edges[0].Node.ID != sent.SendMessage.ID {
			t.Fatalf("hasMedia: true lists %+v; want the one MEDIA message", hist.Messages.Edges)
		}
		url := hist.Messages.Edges[0].Node.Media[0].URL
		exp, err := time.Parse(time.RFC3339, hist.Messages.Edges[0].Node.Media[0].ExpiresAt)
		if err != nil || exp.Before(time.Now().Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
			t.Fatalf("expiresAt %v (%v); want in an hour", exp, err)
		}
		// A non-member of the public channel gets no URL.
		if code := carol.Post(history, map[string]any{"c": ch}).Code(); code != "FORBIDDEN" {
			t.Fatalf("non-member listing messages: %s; want FORBIDDEN", code)
		}

		whole := exchange(t, srv, http.MethodGet, url, nil, 0, nil)
		if whole.status != http.StatusOK || !bytes.Equal(whole.body, pic) {
			t.Fatalf("GET: %d, %d bytes", whole.status, len(whole.body))
		}
		for h, want := range map[string]string{
			"Content-Type":           "image/png",
			"X-Content-Type-Options": "nosniff",
			"Content-Disposition":    `inline; filename*=utf-8''caf%C3%A9%20photo.png`,
			"Accept-Ranges":          "bytes",
		} {
			if got := whole.header.Get(h); got != want {
				t.Errorf("%s: %q; want %q", h, got, want)
			}
		}
		part := exchange(t, srv, http.MethodGet, url, nil, 0, http.Header{"Range": {"bytes=8-23"}})
		if part.status != http.StatusPartialContent || !bytes.Equal(part.body, pic[8:24]) {
			t.Fatalf("range GET: %d %q", part.status, part.body)
		}
		if got, want := part.header.Get("Content-Range"), "bytes 8-23/"+itoa(len(pic)); got != want {
			t.Fatalf("Content-Range %q; want %q", got, want)
		}
		tampered := strings.Replace(url, "signature=", "signature=x", 1)
		if r := exchange(t, srv, http.MethodGet, tampered, nil, 0, nil); r.status != http.StatusForbidden || r.code() != "FORBIDDEN" {
			t.Fatalf("tampered URL: %d %s", r.status, r.body)
		}
		if r := exchange(t, srv, http.MethodDelete, url, nil, 0, nil); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("DELETE: %d", r.status)
		}

		// An upload goes on one message only.
		alice.Fails("BAD_USER_INPUT", sendWithMedia, map[string]any{"c": ch, "b": "again", "m": []string{up.ID}})

		alice.Do(`mutation($id: ID!) { deleteMessage(id: $id) { id } }`, map[string]any{"id": sent.SendMessage.ID}, nil)
		if r := exchange(t, srv, http.MethodGet, url, nil, 0, nil); r.status != http.StatusNotFound || r.code() != "NOT_FOUND" {
			t.Fatalf("GET after delete: %d %s", r.status, r.body)
		}
		if files := storedFiles(t, srv.MediaDir); len(files) != 0 {
			t.Fatalf("files left after deleting the message: %v", files)
		}
		var after struct {
			Messages struct{ Edges []struct{ Node mediaMessage } }
		}
		bob.Do(`query($c: ID!) { messages(channelId: $c, last: 10) { edges { node { id media { id } } } } }`, map[string]any{"c": ch}, &after)
		for _, e := range after.Messages.Edges {
			if n := len(e.Node.Media); n != 0 {
				t.Fatalf("message %s lists %d media after the delete", e.Node.ID, n)
			}
		}
	})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// clock is a settable clock for the media options.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// TestUploadChecks: what createUpload refuses, limits at the limit and one
// past it, and PUTs whose bytes are not what was declared: each a coded
// error that stores nothing and leaves the URL usable until it expires.
func TestUploadChecks(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		var clk clock
		const limit = 1000
		srv := parleytest.NewServer(t, b, parleytest.Options{Media: chat.MediaOptions{MaxUploadBytes: limit, Now: clk.now}})
		alice, bob := srv.Client("alice"), srv.Client("bob")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC"})
		other := mustCreateChannel(t, alice, map[string]any{"type": "PUBLIC"})
		in := func(filename, contentType string, size int) map[string]any {
			return map[string]any{"in": map[string]any{"channelId": ch, "filename": filename, "contentType": contentType, "size": size}}
		}

		mustUpload(t, alice, ch, "a.txt", "text/plain", limit)
		mustUpload(t, alice, ch, "a.txt", "text/plain", 1)
		mustUpload(t, alice, ch, strings.Repeat("é", 255), "TEXT/PLAIN; charset=UTF-8", 1)
		for name, vars := range map[string]map[string]any{
			"one byte over the limit": in("a.txt", "text/plain", limit+1),
			"empty":                   in("a.txt", "text/plain", 0),
			"html":                    in("a.html", "text/html", 10),
			"zip":                     in("a.zip", "application/zip", 10),
			"not a type":              in("a", "png", 10),
			"empty filename":          in(" ", "text/plain", 10),
			"slash in filename":       in("../a.txt", "text/plain", 10),
			"filename too long":       in(strings.Repeat("é", 256), "text/plain", 10),
		} {
			if msg := alice.Fails("BAD_USER_INPUT", createUpload, vars); msg == "" {
				t.Errorf("%s: no message", name)
			}
		}
		// Members who may write only.
		bob.Fails("FORBIDDEN", createUpload, in("a.txt", "text/plain", 10))

		text := bytes.Repeat([]byte("plain text, "), 100)[:limit]
		up := mustUpload(t, alice, ch, "a.txt", "text/plain", limit)
		// Refused, storing nothing.
		for name, c := range map[string]struct {
			body   []byte
			length int64
			status int
		}{
			"one byte over, chunked":    {append(text, 'x'), -1, http.StatusRequestEntityTooLarge},
			"one byte short, chunked":   {text[:limit-1], -1, http.StatusBadRequest},
			"Content-Length over":       {append(text, 'x'), limit + 1, http.StatusRequestEntityTooLarge},
			"html declared as text":     {append([]byte("<html><body>"), text[12:]...), -1, http.StatusBadRequest},
			"binary declared as text":   {make([]byte, limit), limit, http.StatusBadRequest},
			"Content-Length under size": {text[:limit-1], limit - 1, http.StatusBadRequest},
		} {
			r := exchange(t, srv, http.MethodPut, up.UploadURL, bytes.NewReader(c.body), c.length, nil)
			if r.status != c.status || r.code() != "BAD_USER_INPUT" {
				t.Errorf("%s: %d %s; want %d BAD_USER_INPUT", name, r.status, r.body, c.status)
			}
			if files := storedFiles(t, srv.MediaDir); len(files) != 0 {
				t.Fatalf("%s stored %v", name, files)
			}
		}
		img := mustUpload(t, alice, ch, "a.png", "image/png", len(text))
		if r := put(t, srv, img.UploadURL, text); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "not image/png") {
			t.Errorf("text declared as PNG: %d %s", r.status, r.body)
		}

		// Not uploaded yet: not attachable.
		alice.Fails("BAD_USER_INPUT", sendWithMedia, map[string]any{"c": ch, "b": "early", "m": []string{up.ID}})
		// The URL still works for the right bytes.
		if r := put(t, srv, up.UploadURL, text); r.status != http.StatusOK {
			t.Fatalf("correct PUT after refused ones: %d %s", r.status, r.body)
		}
		if files := storedFiles(t, srv.MediaDir); len(files) != 1 {
			t.Fatalf("stored %v; want one file", files)
		}
		// Someone else's upload, or one made for another channel.
		bob.Do(`mutation($c: ID!) { joinChannel(channelId: $c) { role } }`, map[string]any{"c": ch}, nil)
		bob.Fails("NOT_FOUND", sendWithMedia, map[string]any{"c": ch, "b": "mine?", "m": []string{up.ID}})
		alice.Fails("BAD_USER_INPUT", sendWithMedia, map[string]any{"c": other, "b": "here?", "m": []string{up.ID}})
		alice.Fails("BAD_USER_INPUT", sendWithMedia, map[string]any{"c": ch, "b": "twice", "m": []string{up.ID, up.ID}})

		// At most 10 media on a message; 11 is refused.
		var ids []string
		for range chat.MaxMediaPerMessage + 1 {
			u := mustUpload(t, alice, ch, "n.txt", "text/plain", 5)
			if r := put(t, srv, u.UploadURL, []byte("hello")); r.status != http.StatusOK {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
			ids = append(ids, u.ID)
		}
		alice.Fails("BAD_USER_INPUT", sendWithMedia, map[string]any{"c": ch, "b": "eleven", "m": ids})
		var sent struct{ SendMessage mediaMessage }
		alice.Do(sendWithMedia, map[string]any{"c": ch, "b": "ten", "m": ids[:chat.MaxMediaPerMessage]}, &sent)
		if got := len(sent.SendMessage.Media); got != chat.MaxMediaPerMessage {
			t.Fatalf("sent %d media; want %d", got, chat.MaxMediaPerMessage)
		}
		for i, m := range sent.SendMessage.Media {
			if m.ID != ids[i] {
				t.Fatalf("media %d is %s; want %s (the order sent)", i, m.ID, ids[i])
			}
		}

		// Expired URLs: upload and download.
		late := mustUpload(t, alice, ch, "late.txt", "text/plain", 5)
		url := sent.SendMessage.Media[0].URL
		clk.advance(time.Hour + time.Second)
		if r := put(t, srv, late.UploadURL, []byte("hello")); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "expired") {
			t.Fatalf("expired upload URL: %d %s", r.status, r.body)
		}
		if r := exchange(t, srv, http.MethodGet, url, nil, 0, nil); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "expired") {
			t.Fatalf("expired media URL: %d %s", r.status, r.body)
		}
	})
}

// TestMediaSweep: uploads never attached are deleted after 24 h, bytes
// and all; attached ones stay.
func TestMediaSweep(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		var clk clock
		srv := parleytest.NewServer(t, b, parleytest.Options{Media: chat.MediaOptions{Now: clk.now}})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})
		stored := mustUpload(t, alice, ch, "s.txt", "text/plain", 5)
		kept := mustUpload(t, alice, ch, "k.txt", "text/plain", 5)
		for _, u := range []uploadData{stored, kept} {
			if r := put(t, srv, u.UploadURL, []byte("hello")); r.status != http.StatusOK {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
		}
		mustUpload(t, alice, ch, "never.txt", "text/plain", 5)
		alice.Do(sendWithMedia, map[string]any{"c": ch, "b": "kept", "m": []string{kept.ID}}, nil)

		if n, err := srv.Chat.SweepMedia(t.Context()); err != nil || n != 0 {
			t.Fatalf("sweep before 24 h removed %d (%v)", n, err)
		}
		clk.advance(chat.DefaultUnattachedTTL + time.Second)
		if n, err := srv.Chat.SweepMedia(t.Context()); err != nil || n != 2 {
			t.Fatalf("sweep after 24 h removed %d (%v); want 2", n, err)
		}
		if files := storedFiles(t, srv.MediaDir); len(files) != 1 || !strings.HasSuffix(files[0], kept.ID) {
			t.Fatalf("files after the sweep: %v; want only %s", files, kept.ID)
		}
		alice.Fails("NOT_FOUND", sendWithMedia, map[string]any{"c": ch, "b": "gone", "m": []string{stored.ID}})
	})
}

// TestMediaRaces: sends racing to attach one upload attach it once; an
// upload whose client goes away midway stores nothing and its URL works
// again.
func TestMediaRaces(t *testing.T) {
	t.Parallel()
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		srv := parleytest.NewServer(t, b, parleytest.Options{})
		alice := srv.Client("alice")
		ch := mustCreateChannel(t, alice, map[string]any{"type": "PRIVATE"})
		up := mustUpload(t, alice, ch, "r.txt", "text/plain", 5)

		// The client sends 3 of 5 bytes and hangs up.
		u, err := neturl.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhel", up.UploadURL, u.Host); err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		answer, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(answer, []byte("HTTP/1.1 400")) || !bytes.Contains(answer, []byte("ended after 3 of 5 bytes")) {
			t.Fatalf("interrupted upload answered %q", answer)
		}
		if files := storedFiles(t, srv.MediaDir); len(files) != 0 {
			t.Fatalf("an interrupted upload stored %v", files)
		}
		if r := put(t, srv, up.UploadURL, []byte("hello")); r.status != http.StatusOK {
			t.Fatalf("PUT after an interrupted one: %d %s", r.status, r.body)
		}

		const racers = 8
		codes := make([]string, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				codes[i] = alice.Post(sendWithMedia, map[string]any{"c": ch, "b": "race", "m": []string{up.ID}}).Code()
			})
		}
		wg.Wait()
		won := 0
		for _, c := range codes {
			switch c {
			case "":
				won++
			case "BAD_USER_INPUT":
			default:
				t.Errorf("a racing send failed with %s", c)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d racing sends attached the upload (%v); want 1", won, racers, codes)
		}
	})
}
