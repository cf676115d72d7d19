package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/media"
)

// mediaHandler serves the media endpoints, whose URLs the chat service
// signs (see chat.CreateUpload and chat.MessageMedia); they need no
// Authorization header, the signature is the permission:
//
//	PUT  /media/uploads/{id}?expires=…&signature=…  an upload's bytes; 200 with
//	     the stored attachment as JSON
//	GET  /media/{id}?expires=…&signature=…          an attachment's bytes, with
//	     its content type, Content-Disposition, nosniff and range requests
//	     (HEAD too)
//
// Errors are GraphQL-shaped JSON with extensions.code, as on /graphql:
// 400 BAD_USER_INPUT (413 when more bytes arrive than declared), 403
// FORBIDDEN for an expired or altered URL, 404 NOT_FOUND, 409 CONFLICT for
// an upload URL already used, 405 METHOD_NOT_ALLOWED.
func mediaHandler(svc *chat.Service, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, chat.UploadPathPrefix); ok && !strings.Contains(id, "/") {
			if r.Method != http.MethodPut {
				methodNotAllowed(w, "PUT")
				return
			}
			receiveUpload(w, r, svc, log, id)
			return
		}
		id := strings.TrimPrefix(r.URL.Path, chat.MediaPathPrefix)
		if id == "" || strings.Contains(id, "/") {
			apperr.WriteHTTP(w, http.StatusNotFound, apperr.New(apperr.NotFound, "no media at this path"))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, "GET, HEAD")
			return
		}
		serveMedia(w, r, svc, log, id)
	})
}

// methodNotAllowed answers 405 with Allow.
func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	apperr.WriteHTTP(w, http.StatusMethodNotAllowed, apperr.New(apperr.MethodNotAllowed, "this path takes %s", allow))
}

// storedMedia is the PUT answer.
type storedMedia struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	Width       *int   `json:"width"`
	Height      *int   `json:"height"`
}

// receiveUpload streams the request body into the upload id.
func receiveUpload(w http.ResponseWriter, r *http.Request, svc *chat.Service, log *slog.Logger, id string) {
	q := r.URL.Query()
	m, err := svc.ReceiveUpload(r.Context(), id, q.Get("expires"), q.Get("signature"), r.Body, r.ContentLength)
	if err != nil {
		writeMediaError(w, r, log, err)
		return
	}
	body, err := json.Marshal(storedMedia{ID: m.ID, Filename: m.Filename, ContentType: m.ContentType, Size: m.Size, Width: m.Width, Height: m.Height})
	if err != nil {
		writeMediaError(w, r, log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// serveMedia serves the attachment id.
func serveMedia(w http.ResponseWriter, r *http.Request, svc *chat.Service, log *slog.Logger, id string) {
	q := r.URL.Query()
	c, err := svc.OpenMedia(r.Context(), id, q.Get("expires"), q.Get("signature"))
	if err != nil {
		writeMediaError(w, r, log, err)
		return
	}
	defer func() {
		if err := c.Content.Close(); err != nil {
			log.WarnContext(r.Context(), "close media", "media", id, "err", err)
		}
	}()
	h := w.Header()
	h.Set("Content-Type", c.Media.ContentType)
	h.Set("Content-Disposition", contentDisposition(c.Media.ContentType, c.Media.Filename))
	h.Set("X-Content-Type-Options", "nosniff")
	// Whatever a browser makes of the bytes, it runs nothing from them.
	h.Set("Content-Security-Policy", "sandbox")
	// The bytes of an id never change; the URL works until it expires.
	h.Set("ETag", `"`+id+`"`)
	maxAge := int64(0)
	if exp, err := strconv.ParseInt(q.Get("expires"), 10, 64); err == nil {
		maxAge = max(0, exp-time.Now().Unix())
	}
	h.Set("Cache-Control", "private, max-age="+strconv.FormatInt(maxAge, 10))
	http.ServeContent(w, r, "", c.ModTime, c.Content)
}

// contentDisposition shows images, audio and video in the browser and
// downloads anything else, under filename (RFC 6266, with RFC 2231
// encoding where it is not plain ASCII).
func contentDisposition(contentType, filename string) string {
	kind := "attachment"
	if t := strings.ToLower(contentType); strings.HasPrefix(t, "image/") || strings.HasPrefix(t, "audio/") || strings.HasPrefix(t, "video/") {
		kind = "inline"
	}
	if v := mime.FormatMediaType(kind, map[string]string{"filename": filename}); v != "" {
		return v
	}
	return kind
}

// writeMediaError answers a media request that failed: a client error
// with its status and code, anything else logged and shown as INTERNAL.
func writeMediaError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	ae, ok := errors.AsType[*apperr.Error](err)
	if !ok {
		log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
		apperr.WriteHTTP(w, http.StatusInternalServerError, apperr.New(apperr.Internal, "internal error"))
		return
	}
	status := http.StatusInternalServerError
	switch ae.Code {
	case apperr.BadUserInput:
		status = http.StatusBadRequest
		if errors.Is(err, media.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
	case apperr.Unauthenticated:
		status = http.StatusUnauthorized
	case apperr.Forbidden:
		status = http.StatusForbidden
	case apperr.NotFound:
		status = http.StatusNotFound
	case apperr.Conflict:
		status = http.StatusConflict
	}
	apperr.WriteHTTP(w, status, ae)
}
