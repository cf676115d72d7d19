package media

import (
	"errors"
	"fmt"
	"image"
	// The image formats whose width and height are read.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// Errors of Check: the bytes that arrived are not what was declared.
var (
	// ErrTooLarge: more bytes arrived than the declared size.
	ErrTooLarge = errors.New("media: more bytes than declared")
	// ErrTooSmall: the bytes ended before the declared size.
	ErrTooSmall = errors.New("media: fewer bytes than declared")
	// ErrTypeMismatch: the content is not of the declared type.
	ErrTypeMismatch = errors.New("media: content does not match the declared type")
	// ErrBadImage: the content has the declared image type's signature
	// but its header does not decode.
	ErrBadImage = errors.New("media: image header does not decode")
	// ErrInterrupted: reading the bytes failed before their end, such as
	// when the client went away; it wraps the reader's error.
	ErrInterrupted = errors.New("media: upload interrupted")
)

// DefaultTypes are the content types allowed by default: images, audio,
// video, PDF and plain text.
var DefaultTypes = []string{"image/*", "audio/*", "video/*", "application/pdf", "text/plain"}

// ParseType normalises a declared content type: the media type in lower
// case, with its parameters (such as charset) kept. It refuses what does
// not parse as a MIME type, and wildcards.
func ParseType(v string) (string, error) {
	t, params, err := mime.ParseMediaType(v)
	if err != nil || strings.Contains(t, "*") || !strings.Contains(t, "/") {
		return "", fmt.Errorf("%q is not a content type such as image/png", v)
	}
	return mime.FormatMediaType(t, params), nil
}

// baseType is the media type of v without parameters, in lower case.
func baseType(v string) string {
	t, _, _ := strings.Cut(v, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// CheckPattern accepts an allowed-types pattern: a content type such as
// application/pdf, or type/* such as image/*.
func CheckPattern(p string) error {
	typ, sub, ok := strings.Cut(p, "/")
	if !ok || typ == "" || sub == "" || typ == "*" || strings.ContainsAny(p, " ;") || (strings.Contains(sub, "*") && sub != "*") {
		return fmt.Errorf("%q is not a content type such as application/pdf or a pattern such as image/*", p)
	}
	return nil
}

// Allowed reports whether the content type ct matches one of patterns
// (see CheckPattern), ignoring case and parameters.
func Allowed(ct string, patterns []string) bool {
	t := baseType(ct)
	for _, p := range patterns {
		p = strings.ToLower(p)
		if prefix, ok := strings.CutSuffix(p, "/*"); ok {
			if strings.HasPrefix(t, prefix+"/") {
				return true
			}
		} else if t == p {
			return true
		}
	}
	return false
}

// strictTypes are the declared types whose every valid file starts with a
// signature that http.DetectContentType recognises: content of such a type
// must sniff as it. Other types (most audio and video formats, which the
// sniffer knows only in some of their variants) are accepted when the
// sniffer recognises nothing, but never when it recognises another type.
var strictTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "application/pdf", "text/plain"}

// sniffAliases are names that clients use for the types the sniffer
// reports under another name.
var sniffAliases = map[string]string{
	"image/jpg":       "image/jpeg",
	"image/pjpeg":     "image/jpeg",
	"audio/wav":       "audio/wave",
	"audio/x-wav":     "audio/wave",
	"audio/vnd.wave":  "audio/wave",
	"audio/mp3":       "audio/mpeg",
	"audio/ogg":       "application/ogg",
	"video/ogg":       "application/ogg",
	"audio/mp4":       "video/mp4",
	"audio/x-aiff":    "audio/aiff",
	"video/x-msvideo": "video/avi",
	"audio/webm":      "video/webm",
}

// sniffMatches reports whether content sniffed as sniffed may be stored as
// the declared type (both base types).
func sniffMatches(declared, sniffed string) bool {
	if alias, ok := sniffAliases[declared]; ok && alias == sniffed {
		return true
	}
	switch {
	case declared == sniffed:
		return true
	case sniffed == "application/octet-stream":
		return !slices.Contains(strictTypes, declared)
	case sniffed == "text/plain":
		// Text formats the sniffer does not tell apart from plain text.
		return declared == "text/csv" || declared == "text/markdown" || declared == "application/json"
	}
	return false
}

// sniffLen is how many bytes http.DetectContentType considers.
const sniffLen = 512

// Info is what Check learned of the bytes that arrived.
type Info struct {
	// Size is the number of bytes.
	Size int64
	// Sniffed is the type http.DetectContentType gave the first 512 bytes.
	Sniffed string
	// Width and Height are an image's dimensions in pixels, zero for other
	// content or image formats whose headers are not read (PNG, JPEG and
	// GIF are).
	Width, Height int
}

// Check is a reader that passes through the bytes of an upload declared as
// contentType, size bytes long, and checks them as they go: a read that
// would pass the declared size fails with ErrTooLarge; once 512 bytes (or
// all of them) have arrived, content that does not sniff as the declared
// type fails with ErrTypeMismatch; at the end, fewer bytes than declared
// fail with ErrTooSmall. For PNG, JPEG and GIF it reads the width and
// height from the image's header while the bytes stream through, and fails
// with ErrBadImage when that header does not decode. An error of r fails
// with ErrInterrupted wrapping it. It returns io.EOF only
// when every check passed, so a Storage.Put of it stores nothing
// otherwise. Close it when done (it ends the header decoder). Not safe for
// concurrent use.
type Check struct {
	r        io.Reader
	declared string
	size     int64
	n        int64
	head     [sniffLen]byte
	sniffed  string
	err      error // sticky: the first failure, or io.EOF once passed
	img      *imageProbe
}

// NewCheck returns a Check of r, declared as contentType and size bytes.
func NewCheck(r io.Reader, contentType string, size int64) *Check {
	c := &Check{r: r, declared: baseType(contentType), size: size}
	canonical := c.declared
	if alias, ok := sniffAliases[canonical]; ok {
		canonical = alias
	}
	if canonical == "image/png" || canonical == "image/jpeg" || canonical == "image/gif" {
		c.img = newImageProbe()
	}
	return c
}

// Read implements io.Reader.
func (c *Check) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	// Read at most one byte past the declared size, to see an overrun.
	if rest := c.size - c.n + 1; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	if n > 0 {
		if c.n+int64(n) > c.size {
			return 0, c.fail(ErrTooLarge)
		}
		if c.n < sniffLen {
			copy(c.head[c.n:], p[:n])
		}
		c.n += int64(n)
		if c.sniffed == "" && c.n >= sniffLen {
			if ferr := c.sniff(); ferr != nil {
				return 0, ferr
			}
		}
		if c.img != nil {
			c.img.write(p[:n])
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		if ferr := c.finish(); ferr != nil {
			return 0, ferr
		}
		return n, io.EOF
	case err != nil:
		return 0, c.fail(fmt.Errorf("%w: %w", ErrInterrupted, err))
	}
	return n, nil
}

// sniff checks the type of the first bytes.
func (c *Check) sniff() error {
	c.sniffed = baseType(http.DetectContentType(c.head[:min(c.n, sniffLen)]))
	if !sniffMatches(c.declared, c.sniffed) {
		return c.fail(ErrTypeMismatch)
	}
	return nil
}

// finish runs the checks of the end of the content.
func (c *Check) finish() error {
	if c.n < c.size {
		return c.fail(ErrTooSmall)
	}
	if c.sniffed == "" {
		if err := c.sniff(); err != nil {
			return err
		}
	}
	if c.img != nil {
		if err := c.img.finish(); err != nil {
			return c.fail(err)
		}
	}
	c.err = io.EOF
	return nil
}

// fail records err as the Check's outcome and returns it.
func (c *Check) fail(err error) error {
	c.err = err
	if c.img != nil {
		c.img.close()
	}
	return err
}

// Info returns what the Check learned; complete once Read returned io.EOF.
func (c *Check) Info() Info {
	info := Info{Size: c.n, Sniffed: c.sniffed}
	if c.img != nil {
		info.Width, info.Height = c.img.cfg.Width, c.img.cfg.Height
	}
	return info
}

// Close ends the header decoder, if one still runs. It is safe to call
// more than once.
func (c *Check) Close() error {
	if c.img != nil {
		c.img.close()
	}
	return nil
}

// imageProbe runs image.DecodeConfig in a goroutine on the bytes written to
// it through a pipe: each write waits until the decoder has taken the
// bytes or finished, so nothing is buffered beyond what the decoder itself
// reads ahead, and once the header is decoded later writes are skipped.
type imageProbe struct {
	pw     *io.PipeWriter
	done   chan struct{}
	cfg    image.Config
	err    error // the decoder's, read after done
	closed bool
}

func newImageProbe() *imageProbe {
	pr, pw := io.Pipe()
	p := &imageProbe{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.cfg, _, p.err = image.DecodeConfig(pr)
		// Writes after the header fail at once instead of blocking.
		_ = pr.CloseWithError(errProbeDone)
	}()
	return p
}

// errProbeDone ends writes to a probe whose decoder has returned.
var errProbeDone = errors.New("media: image header read")

// write hands b to the decoder, unless it has finished.
func (p *imageProbe) write(b []byte) {
	if p.closed {
		return
	}
	if _, err := p.pw.Write(b); err != nil {
		p.closed = true
	}
}

// finish ends the input and returns ErrBadImage when the header did not
// decode.
func (p *imageProbe) finish() error {
	p.close()
	if p.err != nil {
		return ErrBadImage
	}
	return nil
}

// close ends the input and waits for the decoder.
func (p *imageProbe) close() {
	p.closed = true
	_ = p.pw.Close()
	<-p.done
}
