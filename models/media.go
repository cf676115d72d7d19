package models

import "time"

// MediaState is where an attachment is in its life: PENDING until its
// bytes arrive (UPLOADING while they do), STORED once they have, ATTACHED
// once a message carries it, DELETED once that message was deleted (its
// bytes are removed next).
type MediaState string

// The media states.
const (
	MediaPending   MediaState = "PENDING"
	MediaUploading MediaState = "UPLOADING"
	MediaStored    MediaState = "STORED"
	MediaAttached  MediaState = "ATTACHED"
	MediaDeleted   MediaState = "DELETED"
)

// Media is an attachment: made by createUpload for one channel and one
// uploader, filled by the upload of its bytes to its signed URL, and
// attached to at most one message. Its bytes are in the media storage
// under its ID.
type Media struct {
	ID         string `gorm:"primaryKey;size:36"`
	ChannelID  string `gorm:"size:36;not null;index:idx_media_channel"`
	UploaderID string `gorm:"size:36;not null;index:idx_media_uploader"`
	// MessageID is the message it is attached to; Position its place
	// among that message's media, from 0.
	MessageID   *string `gorm:"size:36;index:idx_media_message,priority:1"`
	Position    int     `gorm:"not null;default:0;index:idx_media_message,priority:2"`
	Filename    string  `gorm:"size:256;not null"`
	ContentType string  `gorm:"size:256;not null"`
	Size        int64   `gorm:"not null"`
	Width       *int
	Height      *int
	State       MediaState `gorm:"size:16;not null;index:idx_media_state_created,priority:1"`
	CreatedAt   time.Time  `gorm:"not null;index:idx_media_state_created,priority:2"`
	// UploadExpiresAt is when the upload URL stops working.
	UploadExpiresAt time.Time `gorm:"not null"`
	StoredAt        *time.Time
}

// TableName is media.
func (Media) TableName() string { return "media" }
