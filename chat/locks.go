package chat

import (
	"slices"

	"gorm.io/gorm"

	"github.com/parleychat/parley/models"
)

// Lock order on PostgreSQL: a transaction that writes both takes channel
// rows before membership rows, and several channels in ID order. A send
// batch locks its channels to take their indexes and then moves its
// senders' horizons and the unread mentions of those they mention; a
// deleted message's channel is counted before its members skip it. A
// transaction that took a membership first and then its channel (leaving
// counted off the channel's members, say) deadlocked against those as
// soon as the send touched that membership. SQLite has a single writer
// and no row locks.

// lockChannels locks the rows of channelIDs, in ID order, on PostgreSQL;
// it does nothing on SQLite or without channels.
func lockChannels(tx *gorm.DB, channelIDs ...string) error {
	if len(channelIDs) == 0 || tx.Dialector.Name() == "sqlite" {
		return nil
	}
	ids := slices.Sorted(slices.Values(channelIDs))
	var locked []string
	return forUpdate(tx.Model(&models.Channel{})).Where("id IN ?", slices.Compact(ids)).Order("id").Pluck("id", &locked).Error
}
