package db_test

import (
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/parleytest"
)

func TestImportMessages(t *testing.T) {
	parleytest.ForEachBackend(t, func(t *testing.T, b parleytest.Backend) {
		store := openStore(t, b.NewURL(t))
		if _, err := store.MigrateUp(t.Context()); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		ch := &models.Channel{ID: "channel-1", Type: models.ChannelPublic, CreatedAt: now, UpdatedAt: now}
		if err := store.Write(t.Context(), func(tx *gorm.DB) error { return tx.Create(ch).Error }); err != nil {
			t.Fatal(err)
		}
		messages := func(from, to int) []*models.Message {
			var out []*models.Message
			for i := from; i < to; i++ {
				out = append(out, &models.Message{ID: fmt.Sprintf("m-%d", i), ChannelID: ch.ID, Index: i, Body: "x", CreatedAt: now.Add(time.Duration(i) * time.Millisecond)})
			}
			return out
		}
		for _, run := range [][2]int{{0, 250}, {250, 260}} {
			if err := store.ImportMessages(t.Context(), ch.ID, messages(run[0], run[1]), 100); err != nil {
				t.Fatalf("import %v: %v", run, err)
			}
		}
		checkImported(t, store, ch.ID, 260)

		// Into a channel that does not exist: an error, and nothing stored.
		if err := store.ImportMessages(t.Context(), "no-channel", []*models.Message{{ID: "orphan", ChannelID: "no-channel", Body: "x", CreatedAt: now}}, 100); err == nil {
			t.Fatal("import into a missing channel succeeded")
		}
		var orphans int64
		if err := store.DB(t.Context()).Model(&models.Message{}).Where("id = ?", "orphan").Count(&orphans).Error; err != nil || orphans != 0 {
			t.Fatalf("orphan rows %d, %v", orphans, err)
		}
	})
}

// checkImported checks that channelID holds n messages and counters that
// say so.
func checkImported(t *testing.T, store *db.Store, channelID string, n int) {
	t.Helper()
	var count int64
	if err := store.DB(t.Context()).Model(&models.Message{}).Where("channel_id = ?", channelID).Count(&count).Error; err != nil {
		t.Fatal(err)
	}
	var ch models.Channel
	if err := store.DB(t.Context()).Take(&ch, "id = ?", channelID).Error; err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf("m-%d", n-1)
	if count != int64(n) || ch.NextMessageIndex != n || ch.MessagesCount != n || ch.LastMessageID == nil || *ch.LastMessageID != last {
		t.Fatalf("%d rows, channel %+v; want %d rows, counters at %d, last message %s", count, ch, n, n, last)
	}
}
