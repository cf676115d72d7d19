package chat

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/models"
)

// maxSendBatch caps the sends that share one transaction, which bounds how
// long a batch holds its channels' row locks on PostgreSQL.
const maxSendBatch = 64

// sendBatcher combines concurrent sends into shared transactions (group
// commit). Every message in a channel takes the channel row's counter, so
// sends to one channel are serialised whatever happens; what batching saves
// is the per-transaction cost: BEGIN, COMMIT (on PostgreSQL a WAL flush with
// the row lock held; on SQLite a WAL append of every page the send
// touched), and one trip through the store's writer queue per send.
//
// There is no timer and no goroutine of its own: the first sender to find
// no batch running writes the batch with its own message and whatever
// queued meanwhile; sends that arrive during that write form the next
// batch, which a new goroutine writes. An idle sender therefore pays no
// extra latency, and a busy server gets batches as large as the load.
//
// Its zero value is ready to use.
type sendBatcher struct {
	mu      sync.Mutex // guards the fields below
	pending []*sendRequest
	writing bool // a batch is being written; pending waits for it
}

// sendRequest is one SendMessage waiting in a batch.
type sendRequest struct {
	ctx context.Context
	v   viewer
	msg *models.Message
	// err is why this send failed, set before done is closed.
	err  error
	done chan struct{}
}

// send stores msg (see insertMessages) in a batch with concurrent sends and
// publishes it once the batch is committed. It returns when msg is
// committed or has failed; cancelling ctx does not abandon a send already
// queued.
func (b *sendBatcher) send(ctx context.Context, s *Service, v viewer, msg *models.Message) error {
	r := &sendRequest{ctx: ctx, v: v, msg: msg, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	lead := !b.writing
	b.writing = true
	b.mu.Unlock()
	if lead {
		b.writeBatches(s)
	}
	<-r.done
	return r.err
}

// writeBatches writes one batch of the pending sends and, when more are
// pending by then, hands the next batch to a new goroutine, so that the
// caller can return.
func (b *sendBatcher) writeBatches(s *Service) {
	// Let the goroutines that are ready to send join this batch first. On
	// SQLite the write is CPU-bound; with one core it would otherwise finish
	// before any other request reached the queue, and every batch would be
	// a single send (measured: 1.0 sends per batch without this yield, 8.2
	// with it, at 16 concurrent writers).
	runtime.Gosched()
	b.mu.Lock()
	n := min(len(b.pending), maxSendBatch)
	batch := slices.Clone(b.pending[:n])
	b.pending = slices.Delete(b.pending, 0, n)
	b.mu.Unlock()

	s.writeSendBatch(batch)

	b.mu.Lock()
	more := len(b.pending) > 0
	b.writing = more
	b.mu.Unlock()
	if more {
		go b.writeBatches(s)
	}
}

// writeSendBatch stores batch in one transaction, publishes the messages
// committed, in index order, and then releases every request.
//
// A rule error (*apperr.Error, found before any write of that send) fails
// only its send. Any other error fails the whole transaction and every send
// in it: on PostgreSQL a failed statement aborts the transaction anyway.
// Sends are written in channel order, so that two batches, on this node or
// another, always take their row locks in the same order and cannot
// deadlock.
func (s *Service) writeSendBatch(batch []*sendRequest) {
	defer func() {
		// A panic must not strand the senders, nor crash the process
		// from a batch goroutine that no request handler recovers.
		if p := recover(); p != nil {
			s.log.Error("send batch panicked", "panic", p, "stack", string(debug.Stack()))
			for _, r := range batch {
				r.err = fmt.Errorf("send batch panicked: %v", p)
			}
		}
		for _, r := range batch {
			close(r.done)
		}
	}()
	slices.SortStableFunc(batch, func(a, b *sendRequest) int { return cmp.Compare(a.msg.ChannelID, b.msg.ChannelID) })
	// The batch outlives any one sender's request; it keeps the first
	// sender's context values (for logs) without its cancellation.
	ctx := context.WithoutCancel(batch[0].ctx)
	err := s.store.Write(ctx, func(tx *gorm.DB) error { return insertMessages(tx, batch) })
	for _, r := range batch {
		switch {
		case err != nil && r.err == nil:
			r.err = err
		case r.err == nil:
			s.publish(r.ctx, channelTopic(r.msg.ChannelID), &event{Kind: evMessageAdded, Message: r.msg})
			s.endTyping(r.ctx, r.msg.Channel, r.msg.Author)
		}
	}
}

// channelGroups yields the runs of batch, sorted by channel, that share a
// channel.
func channelGroups(batch []*sendRequest) iter.Seq[[]*sendRequest] {
	return func(yield func([]*sendRequest) bool) {
		for len(batch) > 0 {
			n := 1
			for n < len(batch) && batch[n].msg.ChannelID == batch[0].msg.ChannelID {
				n++
			}
			if !yield(batch[:n]) {
				return
			}
			batch = batch[n:]
		}
	}
}

// insertMessages stores the messages of batch, sends sorted by channel and
// in arrival order within one, through tx. Each channel's run of sends takes
// its indexes from the channel row's counter in one UPDATE; all messages go
// in one INSERT; each author's read horizon moves to their last message in
// each channel. It fills in each message's Index and its Author and Channel
// snapshots, the channel as that message left it. A send whose author is
// not a member gets its rule error in r.err and nothing is written for it.
// The error returned fails the transaction.
//
// The reads come first: on PostgreSQL the UPDATEs take the channels' row
// locks, and concurrent senders then queue only behind the writes and the
// commit. Membership is not locked, here or in loadAccess, so on PostgreSQL
// a member removed while this transaction waits for a lock may still post.
func insertMessages(tx *gorm.DB, batch []*sendRequest) error {
	memberOf, authorOf, err := loadSenders(tx, batch)
	if err != nil {
		return err
	}
	var msgs []*models.Message
	horizon := map[string]*models.Message{} // each sending member's last message
	for group := range channelGroups(batch) {
		channelID := group[0].msg.ChannelID
		sends := make([]*sendRequest, 0, len(group))
		for _, r := range group {
			me := memberOf[[2]string{channelID, r.v.UserID}]
			if me == nil {
				r.err = errNotMember(tx, channelID)
				if apperr.CodeOf(r.err) == apperr.Internal {
					return r.err
				}
				continue
			}
			if authorOf[r.v.UserID] == nil {
				return fmt.Errorf("author %s of a message has no user row", r.v.UserID)
			}
			sends = append(sends, r)
			horizon[me.ID] = r.msg
		}
		if len(sends) == 0 {
			continue
		}
		// RETURNING gives the counters as this UPDATE left them: the last
		// message's snapshot, from which the others' are derived.
		last := sends[len(sends)-1].msg
		var ch models.Channel
		res := tx.Model(&ch).Clauses(clause.Returning{}).Where("id = ?", channelID).UpdateColumns(map[string]any{
			"next_message_index": gorm.Expr("next_message_index + ?", len(sends)),
			"messages_count":     gorm.Expr("messages_count + ?", len(sends)),
			"last_message_id":    last.ID,
			"last_activity_us":   last.CreatedAt.UnixMicro(),
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			// Deleted after the memberships were read.
			for _, r := range sends {
				r.err = errChannelNotFound()
				delete(horizon, memberOf[[2]string{channelID, r.v.UserID}].ID)
			}
			continue
		}
		for i, r := range sends {
			behind := len(sends) - 1 - i // messages after this one in the run
			snap := ch
			snap.NextMessageIndex -= behind
			snap.MessagesCount -= behind
			snap.LastMessageID = &r.msg.ID
			snap.LastActivityUs = r.msg.CreatedAt.UnixMicro()
			r.msg.Index = snap.NextMessageIndex - 1
			r.msg.Author, r.msg.Channel = authorOf[r.v.UserID], &snap
			msgs = append(msgs, r.msg)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := tx.Create(msgs).Error; err != nil {
		return err
	}
	return moveReadHorizons(tx, horizon, msgs[len(msgs)-1].CreatedAt)
}

// moveReadHorizons moves each member's read horizon forward to the index of
// their message in horizon, by member ID, in one UPDATE: sending members
// are written while the batch holds its channels' row locks, so a
// statement per member would hold them for a round trip each. The read
// time is at, the batch's last message.
func moveReadHorizons(tx *gorm.DB, horizon map[string]*models.Message, at time.Time) error {
	ids := slices.Sorted(maps.Keys(horizon))
	var sql strings.Builder
	args := make([]any, 0, 2*len(ids))
	sql.WriteString("CASE id")
	for _, id := range ids {
		// The cast gives PostgreSQL the parameter's type.
		sql.WriteString(" WHEN ? THEN CAST(? AS BIGINT)")
		args = append(args, id, horizon[id].Index)
	}
	sql.WriteString(" END")
	index := gorm.Expr(sql.String(), args...)
	return tx.Model(&models.Member{}).
		Where("id IN ?", ids).
		Where("last_read_index IS NULL OR last_read_index < ?", index).
		UpdateColumns(map[string]any{"last_read_index": index, "last_read_at": at}).Error
}

// loadSenders reads, in one query each, the memberships of batch's senders
// in their channels, by channel and user ID, and the senders' user rows, by
// ID.
func loadSenders(tx *gorm.DB, batch []*sendRequest) (map[[2]string]*models.Member, map[string]*models.User, error) {
	var pairs [][]any
	var userIDs []string
	seen := map[[2]string]bool{}
	for _, r := range batch {
		key := [2]string{r.msg.ChannelID, r.v.UserID}
		if seen[key] {
			continue
		}
		seen[key] = true
		pairs = append(pairs, []any{key[0], key[1]})
		if !slices.Contains(userIDs, r.v.UserID) {
			userIDs = append(userIDs, r.v.UserID)
		}
	}
	var members []*models.Member
	if err := tx.Where("(channel_id, user_id) IN ?", pairs).Find(&members).Error; err != nil {
		return nil, nil, err
	}
	memberOf := make(map[[2]string]*models.Member, len(members))
	for _, m := range members {
		memberOf[[2]string{m.ChannelID, m.UserID}] = m
	}
	var authors []*models.User
	if err := tx.Where("id IN ?", userIDs).Find(&authors).Error; err != nil {
		return nil, nil, err
	}
	authorOf := make(map[string]*models.User, len(authors))
	for _, u := range authors {
		authorOf[u.ID] = u
	}
	return memberOf, authorOf, nil
}
