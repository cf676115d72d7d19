package chat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/models"
)

// Defaults of MediaOptions.
const (
	DefaultMaxUploadBytes = 25 << 20
	DefaultMediaURLTTL    = time.Hour
	// DefaultUnattachedTTL is how long an upload that no message carries
	// is kept.
	DefaultUnattachedTTL = 24 * time.Hour
	// MaxMediaPerMessage caps sendMessage's media list.
	MaxMediaPerMessage = 10
	// maxFilenameChars caps an upload's filename.
	maxFilenameChars = 255
)

// MediaOptions configure attachments.
type MediaOptions struct {
	// Storage keeps the bytes; nil turns uploads off (createUpload answers
	// BAD_USER_INPUT).
	Storage media.Storage
	// Signer signs upload and download URLs; required with Storage.
	Signer *media.Signer
	// MaxUploadBytes caps one upload (DefaultMaxUploadBytes when zero).
	MaxUploadBytes int64
	// Types are the allowed content types and type/* patterns
	// (media.DefaultTypes when nil).
	Types []string
	// URLTTL is how long an upload or download URL works
	// (DefaultMediaURLTTL when zero).
	URLTTL time.Duration
	// UnattachedTTL is how long an upload no message carries is kept
	// (DefaultUnattachedTTL when zero).
	UnattachedTTL time.Duration
	// BaseURL, such as https://chat.example.com, prefixes the URLs handed
	// out; empty gives URLs relative to the server's root (/media/…).
	BaseURL string
	// Now is the clock of URL expiry and of the sweep; nil is time.Now.
	Now func() time.Time
}

// withDefaults fills o's zero fields.
func (o MediaOptions) withDefaults() MediaOptions {
	o.MaxUploadBytes = cmp.Or(o.MaxUploadBytes, DefaultMaxUploadBytes)
	o.URLTTL = cmp.Or(o.URLTTL, DefaultMediaURLTTL)
	o.UnattachedTTL = cmp.Or(o.UnattachedTTL, DefaultUnattachedTTL)
	if o.Types == nil {
		o.Types = media.DefaultTypes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.BaseURL = strings.TrimSuffix(o.BaseURL, "/")
	return o
}

// The paths of the media endpoints, under MediaOptions.BaseURL; package
// server routes them.
const (
	// UploadPathPrefix + id takes an upload's bytes (PUT).
	UploadPathPrefix = "/media/uploads/"
	// MediaPathPrefix + id serves a stored attachment (GET, HEAD).
	MediaPathPrefix = "/media/"
)

// NewUpload is the input of CreateUpload.
type NewUpload struct {
	ChannelID   string
	Filename    string
	ContentType string
	Size        int64
}

// Upload is a created upload: its signed PUT URL and when that expires.
type Upload struct {
	ID        string
	URL       string
	ExpiresAt time.Time
}

// MediaView is an attachment as a member sees it: with a signed download
// URL and when that expires.
type MediaView struct {
	*models.Media
	URL       string
	ExpiresAt time.Time
}

// errMediaOff refuses uploads on a server without media storage.
func errMediaOff() error {
	return apperr.New(apperr.BadUserInput, "media uploads are not enabled on this server")
}

// CreateUpload makes an upload for a file the caller will attach to a
// message in a channel: members who may write there only (NOT_FOUND or
// FORBIDDEN otherwise, as sendMessage). BAD_USER_INPUT for a filename that
// is empty, over 255 characters, or holds a control character, '/' or
// '\'; a content type that does not parse or is not allowed; a size below
// 1 or over the limit. The returned URL takes one PUT of exactly Size
// bytes of that type until it expires.
func (s *Service) CreateUpload(ctx context.Context, in NewUpload) (*Upload, error) {
	v, err := s.viewer(ctx)
	if err != nil {
		return nil, err
	}
	o := s.media
	if o.Storage == nil {
		return nil, errMediaOff()
	}
	if err := checkFilename(in.Filename); err != nil {
		return nil, err
	}
	ct, err := media.ParseType(in.ContentType)
	if err != nil {
		return nil, apperr.New(apperr.BadUserInput, "contentType: %v", err)
	}
	if !media.Allowed(ct, o.Types) {
		return nil, apperr.New(apperr.BadUserInput, "contentType %s is not allowed; allowed are %s", ct, strings.Join(o.Types, ", "))
	}
	if in.Size < 1 || in.Size > o.MaxUploadBytes {
		return nil, apperr.New(apperr.BadUserInput, "size is %d bytes; it must be from 1 to %d bytes", in.Size, o.MaxUploadBytes)
	}
	at := now()
	row := &models.Media{
		ID: newID(), ChannelID: in.ChannelID, UploaderID: v.UserID, Filename: in.Filename, ContentType: ct, Size: in.Size,
		State: models.MediaPending, CreatedAt: at, UploadExpiresAt: o.Now().Add(o.URLTTL).Truncate(time.Second).UTC(),
	}
	err = s.store.Write(ctx, func(tx *gorm.DB) error {
		a, err := loadAccess(tx, v, in.ChannelID)
		if err != nil {
			return err
		}
		if err := a.requireWrite(); err != nil {
			return err
		}
		return tx.Create(row).Error
	})
	if err != nil {
		return nil, internal("create upload", err)
	}
	return &Upload{ID: row.ID, URL: s.signedURL(media.PurposeUpload, UploadPathPrefix, row.ID, row.UploadExpiresAt), ExpiresAt: row.UploadExpiresAt}, nil
}

// checkFilename validates an upload's filename.
func checkFilename(name string) error {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		return apperr.New(apperr.BadUserInput, "filename must not be empty")
	case !utf8.ValidString(name):
		return apperr.New(apperr.BadUserInput, "filename is not valid UTF-8")
	case n > maxFilenameChars:
		return apperr.New(apperr.BadUserInput, "filename is %d characters; the limit is %d", n, maxFilenameChars)
	case strings.ContainsAny(name, `/\`) || strings.ContainsFunc(name, unicode.IsControl):
		return apperr.New(apperr.BadUserInput, "filename must not contain '/', '\\' or control characters")
	}
	return nil
}

// signedURL is the URL of path+id that allows purpose until expires.
func (s *Service) signedURL(purpose media.Purpose, path, id string, expires time.Time) string {
	q := url.Values{
		"expires":   {strconv.FormatInt(expires.Unix(), 10)},
		"signature": {s.media.Signer.Sign(purpose, id, expires)},
	}
	return s.media.BaseURL + path + id + "?" + q.Encode()
}

// verifyURL checks a signed URL's expires and signature for purpose on id:
// FORBIDDEN, saying whether it expired or is not valid.
func (s *Service) verifyURL(purpose media.Purpose, id, expires, signature string) error {
	if s.media.Storage == nil {
		return errMediaOff()
	}
	err := s.media.Signer.Verify(purpose, id, expires, signature, s.media.Now())
	switch {
	case errors.Is(err, media.ErrExpired) && purpose == media.PurposeUpload:
		return apperr.New(apperr.Forbidden, "this upload URL has expired; ask createUpload for a new one")
	case errors.Is(err, media.ErrExpired):
		return apperr.New(apperr.Forbidden, "this media URL has expired; query the message's media again for a new one")
	case err != nil:
		return apperr.New(apperr.Forbidden, "this URL's signature is not valid")
	}
	return nil
}

// UploadError is a refused upload whose bytes were over the declared size:
// errors.As finds in it the *apperr.Error the client sees, and errors.Is finds
// media.ErrTooLarge in it, so that HTTP can answer 413.
type UploadError struct {
	client *apperr.Error
	cause  error
}

// Error returns the client's message.
func (e *UploadError) Error() string { return e.client.Message }

// Unwrap returns the client's error and the check's.
func (e *UploadError) Unwrap() []error { return []error{e.client, e.cause} }

// ReceiveUpload stores the bytes of the upload id from body, through the
// URL's expires and signature; contentLength is the request's, -1 when
// unknown. The URL works once: a second use while the first runs, or once
// it succeeded, is CONFLICT; a failed use stores nothing and leaves the
// URL usable until it expires. FORBIDDEN for an expired or altered URL,
// NOT_FOUND for an upload that no longer exists, BAD_USER_INPUT when the
// bytes are not what createUpload declared: another size (an *UploadError
// wrapping media.ErrTooLarge when more arrived), or content that does not
// sniff as the declared type; also when the body ends early (the client
// went away).
func (s *Service) ReceiveUpload(ctx context.Context, id, expires, signature string, body io.Reader, contentLength int64) (*models.Media, error) {
	if err := s.verifyURL(media.PurposeUpload, id, expires, signature); err != nil {
		return nil, err
	}
	row, err := s.claimUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	stored, err := s.storeUpload(ctx, row, body, contentLength)
	if err != nil {
		// Leave the URL usable for a correct attempt.
		if rerr := s.setUploadState(ctx, id, models.MediaUploading, map[string]any{"state": models.MediaPending}); rerr != nil {
			s.log.ErrorContext(ctx, "release upload", "upload", id, "err", rerr)
		}
		return nil, err
	}
	return stored, nil
}

// claimUpload moves a PENDING upload to UPLOADING, so that only one PUT
// runs; CONFLICT when it is not PENDING, NOT_FOUND when it is gone.
func (s *Service) claimUpload(ctx context.Context, id string) (*models.Media, error) {
	var row models.Media
	err := s.store.Write(ctx, func(tx *gorm.DB) error {
		if err := tx.Take(&row, "id = ?", id).Error; err != nil {
			if isNotFound(err) {
				return apperr.New(apperr.NotFound, "upload not found")
			}
			return err
		}
		if row.State != models.MediaPending {
			if row.State == models.MediaUploading {
				return apperr.New(apperr.Conflict, "an upload to this URL is already running")
			}
			return apperr.New(apperr.Conflict, "this upload URL was already used")
		}
		return tx.Model(&models.Media{}).Where("id = ?", id).UpdateColumn("state", models.MediaUploading).Error
	})
	if err != nil {
		return nil, internal("claim upload", err)
	}
	return &row, nil
}

// storeUpload streams body through the checks into the storage and marks
// the upload STORED.
func (s *Service) storeUpload(ctx context.Context, row *models.Media, body io.Reader, contentLength int64) (*models.Media, error) {
	if contentLength >= 0 && contentLength != row.Size {
		cause := media.ErrTooSmall
		if contentLength > row.Size {
			cause = media.ErrTooLarge
		}
		return nil, uploadError(cause, row, contentLength)
	}
	check := media.NewCheck(body, row.ContentType, row.Size)
	defer check.Close()
	if _, err := s.media.Storage.Put(ctx, row.ID, check); err != nil {
		if ue := uploadError(err, row, check.Info().Size); ue != nil {
			return nil, ue
		}
		return nil, internal("store upload", err)
	}
	info := check.Info()
	at := now()
	changes := map[string]any{"state": models.MediaStored, "stored_at": at}
	if info.Width > 0 && info.Height > 0 {
		changes["width"], changes["height"] = info.Width, info.Height
		row.Width, row.Height = &info.Width, &info.Height
	}
	if err := s.setUploadState(ctx, row.ID, models.MediaUploading, changes); err != nil {
		// The row was swept meanwhile: drop the bytes too.
		if derr := s.media.Storage.Delete(context.WithoutCancel(ctx), row.ID); derr != nil {
			s.log.ErrorContext(ctx, "delete upload", "upload", row.ID, "err", derr)
		}
		return nil, err
	}
	row.State, row.StoredAt = models.MediaStored, &at
	return row, nil
}

// setUploadState applies changes to the upload id while it is in state
// from; NOT_FOUND when it is not.
func (s *Service) setUploadState(ctx context.Context, id string, from models.MediaState, changes map[string]any) error {
	err := s.store.Write(context.WithoutCancel(ctx), func(tx *gorm.DB) error {
		res := tx.Model(&models.Media{}).Where("id = ? AND state = ?", id, from).UpdateColumns(changes)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return apperr.New(apperr.NotFound, "upload not found")
		}
		return nil
	})
	return internal("update upload", err)
}

// uploadError is the client's error for a failed check of row's bytes
// (n of them seen), nil for other errors.
func uploadError(err error, row *models.Media, n int64) error {
	var msg string
	switch {
	case errors.Is(err, media.ErrTooLarge):
		msg = fmt.Sprintf("the upload is larger than the %d bytes declared; nothing was stored", row.Size)
	case errors.Is(err, media.ErrTooSmall):
		msg = fmt.Sprintf("the upload is %d bytes, not the %d bytes declared; nothing was stored", n, row.Size)
	case errors.Is(err, media.ErrTypeMismatch):
		msg = fmt.Sprintf("the content is not %s as declared; nothing was stored", row.ContentType)
	case errors.Is(err, media.ErrBadImage):
		msg = fmt.Sprintf("the content is not a valid %s image; nothing was stored", row.ContentType)
	case errors.Is(err, media.ErrInterrupted):
		msg = fmt.Sprintf("the upload ended after %d of %d bytes; nothing was stored", n, row.Size)
	default:
		return nil
	}
	return &UploadError{client: apperr.New(apperr.BadUserInput, "%s", msg), cause: err}
}

// MediaContent is an attachment opened for reading. Close it.
type MediaContent struct {
	Media   *models.Media
	Content io.ReadSeekCloser
	ModTime time.Time
}

// OpenMedia opens the attachment id through a download URL's expires and
// signature. FORBIDDEN for an expired or altered URL; NOT_FOUND once its
// message was deleted (or the attachment is not attached to a message).
func (s *Service) OpenMedia(ctx context.Context, id, expires, signature string) (*MediaContent, error) {
	if err := s.verifyURL(media.PurposeDownload, id, expires, signature); err != nil {
		return nil, err
	}
	var row models.Media
	err := s.store.DB(ctx).Take(&row, "id = ? AND state = ?", id, models.MediaAttached).Error
	if isNotFound(err) {
		return nil, apperr.New(apperr.NotFound, "media not found")
	}
	if err != nil {
		return nil, internal("load media", err)
	}
	f, mod, err := s.media.Storage.Open(ctx, id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, apperr.New(apperr.NotFound, "media not found")
	}
	if err != nil {
		return nil, internal("open media", err)
	}
	return &MediaContent{Media: &row, Content: f, ModTime: mod}, nil
}

// MessageMedia returns the attachments of m, in order, each with a
// download URL valid for MediaOptions.URLTTL. Messages reach members only,
// so these URLs do too. Only MEDIA messages have any: others cost no query.
func (s *Service) MessageMedia(ctx context.Context, m *models.Message) ([]*MediaView, error) {
	if s.media.Storage == nil || m.DeletedAt != nil || m.Type() != models.MessageMedia {
		return []*MediaView{}, nil
	}
	rows, err := s.loaders(ctx).mediaLoader().Load(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	exp := s.media.Now().Add(s.media.URLTTL).Truncate(time.Second).UTC()
	out := make([]*MediaView, len(rows))
	for i, r := range rows {
		out[i] = &MediaView{Media: r, URL: s.signedURL(media.PurposeDownload, MediaPathPrefix, r.ID, exp), ExpiresAt: exp}
	}
	return out, nil
}

// attachedMediaOf reads through db, in one query, the attached media of
// the messages ids, by message ID, in their order on each message.
func attachedMediaOf(db *gorm.DB, ids []string) (map[string][]*models.Media, error) {
	var rows []*models.Media
	if err := db.Where("message_id IN ? AND state = ?", ids, models.MediaAttached).Order("message_id, position").Find(&rows).Error; err != nil {
		return nil, err
	}
	byMessage := make(map[string][]*models.Media, len(ids))
	for _, r := range rows {
		byMessage[*r.MessageID] = append(byMessage[*r.MessageID], r)
	}
	return byMessage, nil
}

// mediaByMessages loads the attached media of messages, for a loader.
func (s *Service) mediaByMessages(ctx context.Context, ids []string) ([][]*models.Media, []error) {
	byMessage, err := attachedMediaOf(s.store.DB(ctx), ids)
	if err != nil {
		return nil, []error{internal("load media", err)}
	}
	out := make([][]*models.Media, len(ids))
	for i, id := range ids {
		if out[i] = byMessage[id]; out[i] == nil {
			out[i] = []*models.Media{}
		}
	}
	return out, nil
}

// checkMediaList validates sendMessage's media list: at most
// MaxMediaPerMessage ids, none twice.
func (s *Service) checkMediaList(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if s.media.Storage == nil {
		return errMediaOff()
	}
	if len(ids) > MaxMediaPerMessage {
		return apperr.New(apperr.BadUserInput, "media lists %d uploads; the limit is %d", len(ids), MaxMediaPerMessage)
	}
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return apperr.New(apperr.BadUserInput, "media lists upload %s twice", id)
		}
	}
	return nil
}

// loadSendMedia reads, in one query, the uploads that batch's sends
// attach, by ID; on PostgreSQL it locks them (in ID order), so that two
// sends racing for one upload attach it once. Nil when no send has media.
func loadSendMedia(tx *gorm.DB, batch []*sendRequest) (map[string]*models.Media, error) {
	var ids []string
	for _, r := range batch {
		ids = append(ids, r.media...)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	q := tx.Where("id IN ?", ids).Order("id")
	if tx.Dialector.Name() != "sqlite" {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var rows []*models.Media
	if err := q.Find(&rows).Error; err != nil {
		return nil, err
	}
	byID := make(map[string]*models.Media, len(rows))
	for _, m := range rows {
		byID[m.ID] = m
	}
	return byID, nil
}

// sendMediaRule is nil when r may attach its uploads, found in uploads and
// not taken by an earlier send of the batch (taken): each must be the
// sender's, made for the message's channel, and STORED.
func sendMediaRule(r *sendRequest, uploads map[string]*models.Media, taken map[string]bool) error {
	for _, id := range r.media {
		m := uploads[id]
		switch {
		case m == nil || m.UploaderID != r.v.UserID:
			return apperr.New(apperr.NotFound, "upload %s not found", id)
		case m.ChannelID != r.msg.ChannelID:
			return apperr.New(apperr.BadUserInput, "upload %s was made for another channel", id)
		case m.State == models.MediaPending || m.State == models.MediaUploading:
			return apperr.New(apperr.BadUserInput, "upload %s has not been uploaded yet", id)
		case m.State != models.MediaStored || taken[id]:
			return apperr.New(apperr.BadUserInput, "upload %s is already attached to a message", id)
		}
	}
	for _, id := range r.media {
		taken[id] = true
	}
	return nil
}

// attachMedia attaches each send's uploads to its message, in the order
// given, with one UPDATE per message that has any.
func attachMedia(tx *gorm.DB, runs [][]*sendRequest) error {
	for _, run := range runs {
		for _, r := range run {
			if len(r.media) == 0 {
				continue
			}
			var pos caseByID
			for i, id := range r.media {
				pos.when(id, i, "BIGINT")
			}
			err := tx.Model(&models.Media{}).Where("id IN ?", r.media).UpdateColumns(map[string]any{
				"state": models.MediaAttached, "message_id": r.msg.ID, "position": pos.expr(),
			}).Error
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// markMediaDeleted marks the attachments that where selects DELETED, in a
// write's transaction tx; the sweep (or purgeDeletedMedia right after the
// commit) removes their bytes and rows. It reports whether any were.
func markMediaDeleted(tx *gorm.DB, where string, args ...any) (bool, error) {
	res := tx.Model(&models.Media{}).Where(where, args...).Where("state <> ?", models.MediaDeleted).
		UpdateColumn("state", models.MediaDeleted)
	return res.RowsAffected > 0, res.Error
}

// SweepMedia removes what no one can reach any more: uploads that no
// message carries, made longer ago than MediaOptions.UnattachedTTL, and
// the attachments of deleted messages, channels and users. It first marks
// them DELETED (a state nothing leaves, so a send cannot attach one the
// sweep has taken), then deletes the bytes, then the rows: a sweep that
// dies midway is finished by the next, and several nodes may sweep at
// once. It returns how many it removed. The parley command runs it
// periodically (SweepMediaEvery).
func (s *Service) SweepMedia(ctx context.Context) (int, error) {
	if s.media.Storage == nil {
		return 0, nil
	}
	cutoff := s.media.Now().Add(-s.media.UnattachedTTL).UTC()
	unattached := []models.MediaState{models.MediaPending, models.MediaUploading, models.MediaStored}
	const batch = 500
	removed := 0
	for {
		var ids []string
		err := s.store.DB(ctx).Model(&models.Media{}).
			Where("state = ? OR (state IN ? AND created_at < ?)", models.MediaDeleted, unattached, cutoff).
			Order("id").Limit(batch).Pluck("id", &ids).Error
		if err != nil {
			return removed, internal("find media to sweep", err)
		}
		if len(ids) == 0 {
			return removed, nil
		}
		err = s.store.Write(ctx, func(tx *gorm.DB) error {
			return tx.Model(&models.Media{}).Where("id IN ? AND state IN ? AND created_at < ?", ids, unattached, cutoff).
				UpdateColumn("state", models.MediaDeleted).Error
		})
		if err != nil {
			return removed, internal("mark media swept", err)
		}
		n, err := s.purgeMedia(ctx, ids)
		removed += n
		if err != nil || len(ids) < batch {
			return removed, err
		}
	}
}

// purgeDeletedMedia removes, right after the commit of a write that marked
// them DELETED, the attachments that where selects; what fails here the
// sweep removes later.
func (s *Service) purgeDeletedMedia(ctx context.Context, where string, args ...any) {
	ctx = context.WithoutCancel(ctx)
	var ids []string
	err := s.store.DB(ctx).Model(&models.Media{}).Where(where, args...).Where("state = ?", models.MediaDeleted).Pluck("id", &ids).Error
	if err == nil {
		_, err = s.purgeMedia(ctx, ids)
	}
	if err != nil {
		s.log.WarnContext(ctx, "remove deleted media; the sweep will", "err", err)
	}
}

// purgeMedia deletes the bytes, then the rows, of those of the media ids
// that are DELETED, and returns how many.
func (s *Service) purgeMedia(ctx context.Context, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var gone []string
	err := s.store.DB(ctx).Model(&models.Media{}).Where("id IN ? AND state = ?", ids, models.MediaDeleted).Pluck("id", &gone).Error
	if err != nil {
		return 0, internal("find deleted media", err)
	}
	for _, id := range gone {
		if err := s.media.Storage.Delete(ctx, id); err != nil {
			return 0, internal("delete media bytes", err)
		}
	}
	err = s.store.Write(ctx, func(tx *gorm.DB) error {
		return tx.Where("id IN ? AND state = ?", gone, models.MediaDeleted).Delete(&models.Media{}).Error
	})
	if err != nil {
		return 0, internal("delete media rows", err)
	}
	return len(gone), nil
}

// SweepMediaEvery runs SweepMedia every interval until ctx ends, logging
// what it removed and its errors.
func (s *Service) SweepMediaEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.SweepMedia(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.WarnContext(ctx, "media sweep", "removed", n, "err", err)
		case n > 0:
			s.log.InfoContext(ctx, "media sweep", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
