package media_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/media"
)

// PNG returns a w×h PNG image.
func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.White)
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDirPutOpenDelete(t *testing.T) {
	ctx := t.Context()
	root := filepath.Join(t.TempDir(), "media")
	d := media.NewDir(root)
	n, err := d.Put(ctx, "0192-abc", strings.NewReader("hello"))
	if err != nil || n != 5 {
		t.Fatalf("Put = %d, %v", n, err)
	}
	f, _, err := d.Open(ctx, "0192-abc")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "0192-abc"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "0192-abc"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, _, err := d.Open(ctx, "0192-abc"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after Delete: %v", err)
	}
	for _, key := range []string{"", "../x", "a/b", ".incoming", strings.Repeat("a", 129)} {
		if _, err := d.Put(ctx, key, strings.NewReader("x")); !errors.Is(err, media.ErrBadKey) {
			t.Errorf("Put(%q) = %v; want ErrBadKey", key, err)
		}
	}
}

// TestDirPutFailureStoresNothing: a reader that fails midway leaves no
// object and no temporary file, and keeps the object that was there.
func TestDirPutFailureStoresNothing(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	d := media.NewDir(root)
	boom := errors.New("boom")
	if _, err := d.Put(ctx, "k1", io.MultiReader(strings.NewReader("partial"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("Put = %v; want boom", err)
	}
	if _, _, err := d.Open(ctx, "k1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed Put left an object: %v", err)
	}
	if _, err := d.Put(ctx, "k1", strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "k1", io.MultiReader(strings.NewReader("second"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("Put = %v; want boom", err)
	}
	f, _, err := d.Open(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); string(got) != "first" {
		t.Fatalf("object is %q after a failed overwrite; want first", got)
	}
	left, err := os.ReadDir(filepath.Join(root, ".incoming"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestSigner(t *testing.T) {
	s := media.NewSigner([]byte("secret-0123456789abcdef0123456789"))
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(time.Hour)
	sig := s.Sign(media.PurposeDownload, "id1", exp)
	expStr := "1700003600"
	if err := s.Verify(media.PurposeDownload, "id1", expStr, sig, now); err != nil {
		t.Fatalf("valid signature refused: %v", err)
	}
	if err := s.Verify(media.PurposeDownload, "id1", expStr, sig, exp.Add(-time.Second)); err != nil {
		t.Fatalf("refused one second before expiry: %v", err)
	}
	if err := s.Verify(media.PurposeDownload, "id1", expStr, sig, exp); !errors.Is(err, media.ErrExpired) {
		t.Fatalf("at expiry: %v; want ErrExpired", err)
	}
	for name, c := range map[string][4]string{
		"other purpose": {string(media.PurposeUpload), "id1", expStr, sig},
		"other id":      {string(media.PurposeDownload), "id2", expStr, sig},
		"later expiry":  {string(media.PurposeDownload), "id1", "1700003601", sig},
		"not a number":  {string(media.PurposeDownload), "id1", "soon", sig},
		"bad base64":    {string(media.PurposeDownload), "id1", expStr, "%%%"},
	} {
		if err := s.Verify(media.Purpose(c[0]), c[1], c[2], c[3], now); !errors.Is(err, media.ErrBadSignature) {
			t.Errorf("%s: %v; want ErrBadSignature", name, err)
		}
	}
	other := media.NewSigner([]byte("another-secret-0123456789abcdef01"))
	if err := other.Verify(media.PurposeDownload, "id1", expStr, sig, now); !errors.Is(err, media.ErrBadSignature) {
		t.Errorf("another secret: %v; want ErrBadSignature", err)
	}
}

// check reads data through a Check declared as ct and size.
func check(data []byte, ct string, size int64) (media.Info, error) {
	c := media.NewCheck(bytes.NewReader(data), ct, size)
	defer c.Close()
	_, err := io.Copy(io.Discard, c)
	return c.Info(), err
}

func TestCheck(t *testing.T) {
	pngData := pngOf(t, 640, 480)
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, image.NewGray(image.Rect(0, 0, 33, 17)), nil); err != nil {
		t.Fatal(err)
	}
	var gifData bytes.Buffer
	if err := gif.Encode(&gifData, image.NewPaletted(image.Rect(0, 0, 7, 9), color.Palette{color.Black, color.White}), nil); err != nil {
		t.Fatal(err)
	}
	text := []byte("hello, world\n")
	html := []byte("<!DOCTYPE html><script>alert(1)</script>")
	pdf := []byte("%PDF-1.7\n" + strings.Repeat("x", 600))
	mp4 := append([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'm', 'p', '4', '2', 0, 0, 0, 0, 'm', 'p', '4', '2', 'i', 's', 'o', 'm'}, make([]byte, 100)...)
	unknown := append([]byte("fLaC"), make([]byte, 1000)...)
	for _, c := range []struct {
		name string
		data []byte
		ct   string
		size int64
		want error
		w, h int
	}{
		{"png", pngData, "image/png", int64(len(pngData)), nil, 640, 480},
		{"jpeg", jpg.Bytes(), "image/jpeg", int64(jpg.Len()), nil, 33, 17},
		{"jpg alias", jpg.Bytes(), "image/jpg", int64(jpg.Len()), nil, 33, 17},
		{"gif", gifData.Bytes(), "image/gif", int64(gifData.Len()), nil, 7, 9},
		{"text", text, "text/plain; charset=utf-8", int64(len(text)), nil, 0, 0},
		{"pdf", pdf, "application/pdf", int64(len(pdf)), nil, 0, 0},
		{"mp4", mp4, "video/mp4", int64(len(mp4)), nil, 0, 0},
		{"m4a", mp4, "audio/mp4", int64(len(mp4)), nil, 0, 0},
		{"unrecognised audio", unknown, "audio/flac", int64(len(unknown)), nil, 0, 0},
		{"one byte more than declared", text, "text/plain", int64(len(text)) - 1, media.ErrTooLarge, 0, 0},
		{"one byte less than declared", text, "text/plain", int64(len(text)) + 1, media.ErrTooSmall, 0, 0},
		{"html as text", html, "text/plain", int64(len(html)), media.ErrTypeMismatch, 0, 0},
		{"html as video", html, "video/mp4", int64(len(html)), media.ErrTypeMismatch, 0, 0},
		{"text as png", text, "image/png", int64(len(text)), media.ErrTypeMismatch, 0, 0},
		{"png as jpeg", pngData, "image/jpeg", int64(len(pngData)), media.ErrTypeMismatch, 0, 0},
		{"binary as text", unknown, "text/plain", int64(len(unknown)), media.ErrTypeMismatch, 0, 0},
		{"binary as png", unknown, "image/png", int64(len(unknown)), media.ErrTypeMismatch, 0, 0},
		{"truncated png header", pngData[:20], "image/png", 20, media.ErrBadImage, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			info, err := check(c.data, c.ct, c.size)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v; want %v", err, c.want)
			}
			if c.want == nil && (info.Width != c.w || info.Height != c.h || info.Size != c.size) {
				t.Fatalf("info = %+v; want %d×%d, %d bytes", info, c.w, c.h, c.size)
			}
		})
	}
}

// TestCheckStopsAtOverrun: a stream far longer than declared is not read
// past the declared size and one byte.
func TestCheckStopsAtOverrun(t *testing.T) {
	src := &countingReader{}
	c := media.NewCheck(src, "application/octet-stream", 1000)
	defer c.Close()
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, media.ErrTooLarge) {
		t.Fatalf("err = %v; want ErrTooLarge", err)
	}
	if src.n > 1001 {
		t.Fatalf("read %d bytes of an upload declared as 1000", src.n)
	}
}

// TestCheckInterrupted: a reader that fails is ErrInterrupted, wrapping
// its error.
func TestCheckInterrupted(t *testing.T) {
	boom := errors.New("connection reset")
	c := media.NewCheck(io.MultiReader(strings.NewReader("hello"), errReader{boom}), "text/plain", 100)
	defer c.Close()
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, media.ErrInterrupted) || !errors.Is(err, boom) {
		t.Fatalf("err = %v; want ErrInterrupted wrapping the reader's", err)
	}
}

type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n += int64(len(p))
	return len(p), nil
}

func TestAllowed(t *testing.T) {
	for _, c := range []struct {
		ct   string
		want bool
	}{
		{"image/png", true}, {"IMAGE/PNG", true}, {"video/mp4", true}, {"audio/ogg", true},
		{"application/pdf", true}, {"text/plain; charset=utf-8", true},
		{"text/html", false}, {"application/zip", false}, {"imagex/png", false},
	} {
		if got := media.Allowed(c.ct, media.DefaultTypes); got != c.want {
			t.Errorf("Allowed(%q) = %v; want %v", c.ct, got, c.want)
		}
	}
	for _, p := range []string{"", "image", "*/*", "image/x*", "a b/c"} {
		if media.CheckPattern(p) == nil {
			t.Errorf("CheckPattern(%q) accepted", p)
		}
	}
	for _, p := range []string{"image/*", "application/pdf", "text/csv"} {
		if err := media.CheckPattern(p); err != nil {
			t.Errorf("CheckPattern(%q): %v", p, err)
		}
	}
}
