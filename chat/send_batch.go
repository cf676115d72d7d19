package chat

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/delivery"
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
	// media are the IDs of the uploads to attach to msg.
	media []string
	// mentions are the identities the message mentions.
	mentions []string
	// err is why this send failed, set before done is closed.
	err error
	// existing is the stored message this send repeats (the same client
	// message id), and dup the earlier send of the same batch that it
	// repeats; either way nothing is written for it.
	existing *models.Message
	dup      *sendRequest
	done     chan struct{}
}

// writes reports whether the batch writes r's message: r is refused by no
// rule and repeats no other send.
func (r *sendRequest) writes() bool { return r.err == nil && r.existing == nil && r.dup == nil }

// send stores msg (see insertMessages) in a batch with concurrent sends and
// publishes it once the batch is committed. It returns when msg is
// committed or has failed; cancelling ctx does not abandon a send already
// queued.
func (b *sendBatcher) send(ctx context.Context, s *Service, v viewer, msg *models.Message, media, mentions []string) error {
	r := &sendRequest{ctx: ctx, v: v, msg: msg, media: media, mentions: mentions, done: make(chan struct{})}
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
// The batch is sorted by channel, which groups each channel's sends into
// one run (see insertMessages).
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
	var (
		activated []*models.Channel
		added     []*event
	)
	err := s.store.Write(ctx, func(tx *gorm.DB) (err error) {
		if activated, err = insertMessages(tx, batch); err != nil {
			return err
		}
		added = added[:0]
		for _, r := range batch {
			if r.writes() {
				added = append(added, &event{Kind: evMessageAdded, Message: r.msg})
			}
		}
		return s.enqueueSent(tx, added, activated)
	})
	for _, r := range batch {
		if err != nil && r.err == nil {
			r.err = err
		}
	}
	if err != nil {
		return
	}
	for _, r := range batch {
		switch {
		case r.existing != nil:
			*r.msg = *r.existing
		case r.dup != nil:
			if r.err = r.dup.err; r.err == nil {
				*r.msg = *r.dup.msg
			}
		}
	}
	for _, ev := range added {
		s.publish(ctx, channelTopic(ev.Message.ChannelID), ev)
	}
	for _, r := range batch {
		if r.err == nil {
			s.endTyping(r.ctx, r.msg.ChannelID, r.v.UserID)
		}
	}
	for _, ch := range activated {
		s.publish(ctx, channelTopic(ch.ID), &event{Kind: evChannelUpdated, Channel: ch, Reasons: []string{ReasonState}})
	}
}

// enqueueSent queues, in the send batch's transaction tx, one push job for
// all its new messages and the webhooks of the messages and of the
// channels the batch made ACTIVE.
func (s *Service) enqueueSent(tx *gorm.DB, added []*event, activated []*models.Channel) error {
	var jobs delivery.Jobs
	if s.pushesEnabled() {
		for _, ev := range added {
			jobs.Pushes = append(jobs.Pushes, ev.Message.ID)
		}
	}
	var hooks []*event
	if s.wantsWebhook(delivery.MessageCreated) {
		hooks = append(hooks, added...)
	}
	if s.wantsWebhook(delivery.ChannelUpdated) {
		for _, ch := range activated {
			hooks = append(hooks, &event{Kind: evChannelUpdated, Channel: ch, Reasons: []string{ReasonState}})
		}
	}
	if len(hooks) > 0 {
		hookJobs, err := s.webhooksOf(tx, hooks)
		if err != nil {
			return err
		}
		jobs.Webhooks = hookJobs.Webhooks
	}
	return s.enqueue(tx, jobs)
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
// in arrival order within one, through tx, in a fixed number of statements
// whatever the batch holds: the senders' memberships with their users and
// channels in one query (see loadSenders), every channel's counter takes
// its run of indexes in one UPDATE, and the messages, their mentions and
// the senders' read horizons are written in one statement on PostgreSQL,
// three on SQLite (see storeSent). It fills in each message's Index and
// its Author and Channel snapshots, the channel as that message left it. A send that the
// rules refuse (see sendRule) gets its error in r.err and nothing is
// written for it. It returns the channels that the batch made ACTIVE from
// INACTIVE. The error returned fails the transaction.
//
// The reads come first: on PostgreSQL the UPDATEs take the channels' row
// locks, and concurrent senders then queue only behind the writes and the
// commit. Membership is not locked, here or in loadAccess, so on PostgreSQL
// a member removed while this transaction waits for a lock may still post.
func insertMessages(tx *gorm.DB, batch []*sendRequest) ([]*models.Channel, error) {
	uploads, err := loadSendMedia(tx, batch)
	if err != nil {
		return nil, err
	}
	memberOf, authorOf, channelOf, err := loadSenders(tx, batch)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{} // uploads attached by earlier sends of the batch
	var runs [][]*sendRequest  // the allowed sends, one run per channel
	for group := range channelGroups(batch) {
		channelID := group[0].msg.ChannelID
		run := make([]*sendRequest, 0, len(group))
		for _, r := range group {
			if err := sendRule(r.v, channelOf[channelID], memberOf[[2]string{channelID, r.v.UserID}]); err != nil {
				r.err = err
				continue
			}
			if err := sendMediaRule(r, uploads, taken); err != nil {
				r.err = err
				continue
			}
			if authorOf[r.v.UserID] == nil {
				return nil, fmt.Errorf("author %s of a message has no user row", r.v.UserID)
			}
			run = append(run, r)
		}
		if len(run) > 0 {
			runs = append(runs, run)
		}
	}
	if len(runs) == 0 {
		return nil, nil
	}
	if err := resolveMentions(tx, runs); err != nil {
		return nil, err
	}
	if err := lockSendChannels(tx, runs); err != nil {
		return nil, err
	}
	if err := findRepeats(tx, runs); err != nil {
		return nil, err
	}
	if runs = writtenRuns(runs); len(runs) == 0 {
		return nil, nil
	}
	at := now()
	channels, err := takeIndexes(tx, runs, at)
	if err != nil {
		return nil, err
	}
	if err := refuseVanished(tx, runs, channels); err != nil {
		return nil, err
	}
	var (
		msgs     []*models.Message
		mentions []*models.MessageMention
	)
	horizon := map[string]*models.Message{} // each sending member's last message
	var activated []*models.Channel
	for _, run := range runs {
		channelID := run[0].msg.ChannelID
		ch := channels[channelID]
		if ch == nil {
			continue
		}
		if ch.State == models.StateActive && ch.UpdatedAt.Equal(at) {
			activated = append(activated, ch)
		}
		for i, r := range run {
			behind := len(run) - 1 - i // messages after this one in the run
			snap := *ch
			snap.NextMessageIndex -= behind
			snap.MessagesCount -= behind
			snap.CountedMessages -= behind
			snap.LastMessageID = &r.msg.ID
			snap.LastActivityUs = r.msg.CreatedAt.UnixMicro()
			r.msg.Index, r.msg.Ordinal = snap.NextMessageIndex-1, snap.CountedMessages-1
			r.msg.Author, r.msg.Channel = authorOf[r.v.UserID], &snap
			me := memberOf[[2]string{channelID, r.v.UserID}]
			if r.msg.SenderDisplayName == nil {
				r.msg.SenderDisplayName = defaultDisplayName(me, r.msg.Author)
			}
			msgs = append(msgs, r.msg)
			for _, u := range r.msg.MentionIDs {
				mentions = append(mentions, &models.MessageMention{MessageID: r.msg.ID, UserID: u, ChannelID: channelID, Index: r.msg.Index})
			}
			if me != nil {
				// An admin who is not a member has no horizon.
				horizon[me.ID] = r.msg
			}
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	if err := storeSent(tx, msgs, mentions, horizon); err != nil {
		return nil, err
	}
	return activated, attachMedia(tx, runs)
}

// storeSent writes a send batch's rows through tx, whose transaction any
// error must fail: its messages (see insertRows), their mentions (see
// insertMentions), its senders' read horizons (see moveReadHorizons,
// with the batch's last message as the read time) and the unread mentions
// of the others it mentions (see addUnreadMentions).
//
// On SQLite these are a statement each. On PostgreSQL they are one: the
// inserts run as data-modifying WITH clauses of the last statement, which
// saves a batch a round trip to the database, two with mentions. A batch's
// statements run one after another, and on PostgreSQL their round trips,
// not the CPU, bound a node's writes (BENCHMARKS.md, round 10). GORM
// builds and binds each statement as it would run it alone (a dry run);
// they are joined with their placeholders renumbered (see
// shiftPlaceholders), not bound a second time: GORM's subquery binding
// did that, 5 % of the server's CPU in a send-heavy run. Nothing is read
// back: a sent message has its type, origin and priority set (see
// newMessage), the only columns with database defaults, which a lone
// INSERT would return.
func storeSent(tx *gorm.DB, msgs []*models.Message, mentions []*models.MessageMention, horizon map[string]*models.Message) error {
	writes := []func(*gorm.DB) *gorm.DB{func(q *gorm.DB) *gorm.DB { return insertRows(q, msgs) }}
	if len(mentions) > 0 {
		writes = append(writes, func(q *gorm.DB) *gorm.DB { return insertMentions(q, mentions) })
	}
	senders, others := unreadMentionsOf(mentions, horizon)
	if len(horizon) > 0 {
		writes = append(writes, func(q *gorm.DB) *gorm.DB { return moveReadHorizons(q, horizon, senders, msgs[len(msgs)-1].CreatedAt) })
	}
	if len(others) > 0 {
		writes = append(writes, func(q *gorm.DB) *gorm.DB { return addUnreadMentions(q, others) })
	}
	if tx.Dialector.Name() == "sqlite" || len(writes) == 1 {
		for _, write := range writes {
			if err := write(tx).Error; err != nil {
				return err
			}
		}
		return nil
	}
	var (
		sql  strings.Builder
		args []any
	)
	for i, write := range writes {
		built := write(tx.Session(&gorm.Session{DryRun: true}))
		if built.Error != nil {
			return built.Error
		}
		switch {
		case i == 0:
			sql.WriteString("WITH w0 AS (")
		case i < len(writes)-1:
			fmt.Fprintf(&sql, "), w%d AS (", i)
		default:
			sql.WriteString(") ")
		}
		shiftPlaceholders(&sql, built.Statement.SQL.String(), len(args))
		args = append(args, built.Statement.Vars...)
	}
	// The statement has no "?" left for GORM to bind: it passes args on
	// as they are, bound already by each dry run.
	return tx.Exec(sql.String(), args...).Error
}

// shiftPlaceholders writes stmt, a statement GORM built for PostgreSQL, to
// sql with each of its placeholders $n renumbered $(n+by), so that it can
// follow statements with by arguments in one statement. GORM's statements
// hold no "$" but in placeholders: every value is an argument.
func shiftPlaceholders(sql *strings.Builder, stmt string, by int) {
	for {
		i := strings.IndexByte(stmt, '$')
		if i < 0 {
			sql.WriteString(stmt)
			return
		}
		j := i + 1
		for j < len(stmt) && stmt[j] >= '0' && stmt[j] <= '9' {
			j++
		}
		sql.WriteString(stmt[:i+1])
		if n, err := strconv.Atoi(stmt[i+1 : j]); err == nil {
			sql.WriteString(strconv.Itoa(n + by))
		}
		stmt = stmt[j:]
	}
}

// insertRows inserts rows, a slice of models, in one statement through q,
// and returns q's result. A send batch's transaction fails on its error.
//
// On SQLite it inserts with OR FAIL rather than the default ABORT: a
// multi-row statement that may abort must first copy every page it touches
// into a statement journal, to undo its own rows and keep the transaction
// (measured: 7 % of the send path's CPU). A failed send batch rolls back its
// whole transaction anyway, so the rows an OR FAIL statement leaves behind
// never commit.
func insertRows(q *gorm.DB, rows any) *gorm.DB {
	if q.Dialector.Name() == "sqlite" {
		q = q.Clauses(clause.Insert{Modifier: "OR FAIL"})
	}
	return q.Create(rows)
}

// insertMentions inserts the batch's mention rows, at least one, in one
// statement through q, and returns q's result.
//
// On PostgreSQL the rows go in as one JSON parameter, one to bind instead
// of four per row. SQLite inserts them as insertRows does.
func insertMentions(q *gorm.DB, mentions []*models.MessageMention) *gorm.DB {
	if q.Dialector.Name() == "sqlite" {
		return insertRows(q, mentions)
	}
	type row struct {
		MessageID string `json:"m"`
		UserID    string `json:"u"`
		ChannelID string `json:"c"`
		Index     int    `json:"i"`
	}
	rows := make([]row, len(mentions))
	for i, m := range mentions {
		rows[i] = row{m.MessageID, m.UserID, m.ChannelID, m.Index}
	}
	param, err := json.Marshal(rows)
	if err != nil {
		q = q.Session(&gorm.Session{})
		_ = q.AddError(err) // returned through q.Error
		return q
	}
	return q.Exec(`INSERT INTO message_mentions (message_id, user_id, channel_id, idx)
		SELECT k.m, k.u, k.c, k.i FROM jsonb_to_recordset(CAST(? AS jsonb)) AS k(m text, u text, c text, i bigint)`, string(param))
}

// refuseVanished gives the sends of every run whose channel takeIndexes did
// not update their rule error: the channel was deleted, or CLOSED, after
// loadSenders read it. It reads those channels' states in one query, only
// when there are any.
func refuseVanished(tx *gorm.DB, runs [][]*sendRequest, channels map[string]*models.Channel) error {
	var gone []string
	for _, run := range runs {
		if id := run[0].msg.ChannelID; channels[id] == nil {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	var closed []string
	err := tx.Model(&models.Channel{}).Where("id IN ? AND state = ?", gone, models.StateClosed).Pluck("id", &closed).Error
	if err != nil {
		return err
	}
	for _, run := range runs {
		id := run[0].msg.ChannelID
		if channels[id] != nil {
			continue
		}
		var why error = errChannelNotFound()
		if slices.Contains(closed, id) {
			why = errClosed("write in it")
		}
		for _, r := range run {
			r.err = why
		}
	}
	return nil
}

// takeIndexes adds each run's length to its channel's message counters,
// records its last message and makes an INACTIVE channel ACTIVE (setting
// its updatedAt to at, by which the caller tells), in one UPDATE …
// RETURNING, and returns the channels as that UPDATE left them, by ID; a
// channel that no longer exists, or is now CLOSED, is missing (on
// PostgreSQL the condition is checked again on the row once it is locked).
// With several channels, or client message ids, the caller has locked
// their rows already (lockSendChannels); SQLite has a single writer and no
// row locks.
func takeIndexes(tx *gorm.DB, runs [][]*sendRequest, at time.Time) (map[string]*models.Channel, error) {
	ids := make([]string, len(runs))
	var added, lastID, lastActivity caseByID
	for i, run := range runs {
		id, last := run[0].msg.ChannelID, run[len(run)-1].msg
		ids[i] = id
		added.when(id, len(run), "BIGINT")
		lastID.when(id, last.ID, "VARCHAR(36)")
		lastActivity.when(id, last.CreatedAt.UnixMicro(), "BIGINT")
	}
	var rows []*models.Channel
	// SET expressions read the row as it was, so state and updated_at
	// change together.
	err := tx.Model(&rows).Clauses(clause.Returning{}).Where("id IN ? AND state <> ?", ids, models.StateClosed).UpdateColumns(map[string]any{
		"next_message_index": gorm.Expr("next_message_index + ?", added.expr()),
		"messages_count":     gorm.Expr("messages_count + ?", added.expr()),
		"counted_messages":   gorm.Expr("counted_messages + ?", added.expr()),
		"last_message_id":    lastID.expr(),
		"last_activity_us":   lastActivity.expr(),
		"state":              gorm.Expr("CASE WHEN state = ? THEN CAST(? AS VARCHAR(16)) ELSE state END", models.StateInactive, models.StateActive),
		"updated_at":         gorm.Expr("CASE WHEN state = ? THEN ? ELSE updated_at END", models.StateInactive, at),
	}).Error
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*models.Channel, len(rows))
	for _, ch := range rows {
		byID[ch.ID] = ch
	}
	return byID, nil
}

// moveReadHorizons moves each member's read horizon forward to the index of
// their message in horizon, by member ID, at least one, in one UPDATE
// through q, and returns q's result. The read time is at, the batch's last
// message. Their unread counters follow (see chat/unread.go): a sender's
// newest message is the newest of their channel but for the rest of the
// batch, so nothing after it is their own or deleted, and their unread
// mentions are the batch's after it, mentionsAfter by member ID.
func moveReadHorizons(q *gorm.DB, horizon map[string]*models.Message, mentionsAfter map[string]int, at time.Time) *gorm.DB {
	ids := slices.Sorted(maps.Keys(horizon))
	var index, ordinal, mentions caseByID
	for _, id := range ids {
		index.when(id, horizon[id].Index, "BIGINT")
		ordinal.when(id, horizon[id].Ordinal+1, "BIGINT")
		if n := mentionsAfter[id]; n > 0 {
			mentions.when(id, n, "BIGINT")
		}
	}
	return q.Model(&models.Member{}).
		Where("id IN ?", ids).
		Where("last_read_index IS NULL OR last_read_index < ?", index.expr()).
		UpdateColumns(map[string]any{
			"last_read_index": index.expr(), "last_read_at": at,
			"read_ordinal": ordinal.expr(), "skipped_unread": 0, "mentions_unread": mentions.exprOr("0"),
		})
}

// addUnreadMentions adds to the unread mentions of each membership in
// counts, by (channel ID, user ID), its count, in one UPDATE through q,
// and returns q's result. None of them may be one moveReadHorizons moves
// in the same statement.
func addUnreadMentions(q *gorm.DB, counts map[[2]string]int) *gorm.DB {
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
	pairs := make([][]any, len(keys))
	var add strings.Builder
	args := make([]any, 0, 3*len(keys))
	add.WriteString("mentions_unread + CASE")
	for i, k := range keys {
		pairs[i] = []any{k[0], k[1]}
		add.WriteString(" WHEN channel_id = ? AND user_id = ? THEN CAST(? AS BIGINT)")
		args = append(args, k[0], k[1], counts[k])
	}
	add.WriteString(" END")
	return q.Model(&models.Member{}).Where("(channel_id, user_id) IN ?", pairs).
		UpdateColumn("mentions_unread", gorm.Expr(add.String(), args...))
}

// unreadMentionsOf splits a send batch's mentions by whom they add unread
// mentions to: the senders, by member ID, count those after their own
// newest message in horizon; everyone else counts them all, by (channel
// ID, user ID).
func unreadMentionsOf(mentions []*models.MessageMention, horizon map[string]*models.Message) (senders map[string]int, others map[[2]string]int) {
	if len(mentions) == 0 {
		return nil, nil
	}
	sender := make(map[[2]string]string, len(horizon))
	for id, msg := range horizon {
		sender[[2]string{msg.ChannelID, *msg.AuthorID}] = id
	}
	senders, others = map[string]int{}, map[[2]string]int{}
	for _, x := range mentions {
		k := [2]string{x.ChannelID, x.UserID}
		id, ok := sender[k]
		switch {
		case !ok:
			others[k]++
		case x.Index > horizon[id].Index:
			senders[id]++
		}
	}
	return senders, others
}

// caseByID builds a CASE expression that gives each row, by its id, a value
// of its own: one statement updates many rows with different values.
type caseByID struct {
	sql  strings.Builder
	args []any
}

// when gives the row id the value v, cast to the SQL type typ (PostgreSQL
// cannot infer the type of a parameter in a CASE branch).
func (c *caseByID) when(id string, v any, typ string) {
	if c.sql.Len() == 0 {
		c.sql.WriteString("CASE id")
	}
	c.sql.WriteString(" WHEN ? THEN CAST(? AS " + typ + ")")
	c.args = append(c.args, id, v)
}

// expr is the CASE expression for the rows given so far.
func (c *caseByID) expr() clause.Expr {
	return gorm.Expr(c.sql.String()+" END", c.args...)
}

// exprOr is expr with the SQL fallback for the other rows, or fallback
// alone when no row was given.
func (c *caseByID) exprOr(fallback string) clause.Expr {
	if c.sql.Len() == 0 {
		return gorm.Expr(fallback)
	}
	return gorm.Expr(c.sql.String()+" ELSE "+fallback+" END", c.args...)
}

// sendRule is nil when v may send a message to ch (nil when it does not
// exist) as the member me (nil for none), and otherwise the error that
// refuses it: NOT_FOUND or FORBIDDEN as loadAccess and requireWrite say.
func sendRule(v viewer, ch *models.Channel, me *models.Member) error {
	if ch == nil {
		return errChannelNotFound()
	}
	a, err := accessTo(v, ch, me)
	if err != nil {
		return err
	}
	return a.requireWrite()
}

// senderRow is a membership read by loadSenders with its user and the
// columns of its channel that the send rules read.
type senderRow struct {
	models.Member         `gorm:"embedded"`
	SendChannelType       models.ChannelType
	SendChannelUniqueName *string
	SendChannelState      models.ChannelState
	Author                models.User `gorm:"embedded;embeddedPrefix:send_author_"`
}

// loadSenders reads the memberships of batch's senders in their channels,
// by channel and user ID, the senders' user rows, by ID, and the columns
// of the batch's channels that the rules read, by ID. The memberships come
// with their users and their channels' columns in one query; the users and
// channels of senders who are not members (an admin, or a send the rules
// refuse) cost a query each, only when there are any.
func loadSenders(tx *gorm.DB, batch []*sendRequest) (map[[2]string]*models.Member, map[string]*models.User, map[string]*models.Channel, error) {
	var pairs [][]any
	var userIDs, channelIDs []string
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
		if !slices.Contains(channelIDs, r.msg.ChannelID) {
			channelIDs = append(channelIDs, r.msg.ChannelID)
		}
	}
	var rows []*senderRow
	err := tx.Table("members").
		Select(db.Columns(tx, &models.Member{}, "members")+
			", channels.type AS send_channel_type, channels.unique_name AS send_channel_unique_name, channels.state AS send_channel_state, "+
			db.AliasedColumns(tx, &models.User{}, "users", "send_author_")).
		Joins("JOIN channels ON channels.id = members.channel_id").
		Joins("JOIN users ON users.id = members.user_id").
		Where("(members.channel_id, members.user_id) IN ?", pairs).
		Scan(&rows).Error
	if err != nil {
		return nil, nil, nil, err
	}
	memberOf := make(map[[2]string]*models.Member, len(rows))
	authorOf := make(map[string]*models.User, len(userIDs))
	channelOf := make(map[string]*models.Channel, len(channelIDs))
	for _, row := range rows {
		m := &row.Member
		memberOf[[2]string{m.ChannelID, m.UserID}] = m
		if authorOf[m.UserID] == nil {
			authorOf[m.UserID] = &row.Author
		}
		if channelOf[m.ChannelID] == nil {
			channelOf[m.ChannelID] = &models.Channel{ID: m.ChannelID, Type: row.SendChannelType, UniqueName: row.SendChannelUniqueName, State: row.SendChannelState}
		}
	}
	if missing := slices.DeleteFunc(userIDs, func(id string) bool { return authorOf[id] != nil }); len(missing) > 0 {
		var authors []*models.User
		if err := tx.Where("id IN ?", missing).Find(&authors).Error; err != nil {
			return nil, nil, nil, err
		}
		for _, u := range authors {
			authorOf[u.ID] = u
		}
	}
	if missing := slices.DeleteFunc(channelIDs, func(id string) bool { return channelOf[id] != nil }); len(missing) > 0 {
		var channels []*models.Channel
		if err := tx.Select("id", "type", "unique_name", "state").Where("id IN ?", missing).Find(&channels).Error; err != nil {
			return nil, nil, nil, err
		}
		for _, c := range channels {
			channelOf[c.ID] = c
		}
	}
	return memberOf, authorOf, channelOf, nil
}

// defaultDisplayName is the name a message shows its author by when the
// sender names none: the member's display name, else the user's friendly
// name, else nil.
func defaultDisplayName(me *models.Member, author *models.User) *string {
	switch {
	case me != nil && me.DisplayName != nil:
		return me.DisplayName
	case author != nil:
		return author.FriendlyName
	}
	return nil
}

// resolveMentions sets each send's MentionIDs to the users its mentions
// name, in one query for the batch that looks each distinct (channel,
// identity) pair up once; a send that mentions anyone who is not a joined
// member of its channel gets BAD_USER_INPUT in r.err.
func resolveMentions(tx *gorm.DB, runs [][]*sendRequest) error {
	var keys []mentionKey
	seen := map[mentionKey]bool{}
	for _, run := range runs {
		for _, r := range run {
			for _, identity := range r.mentions {
				k := mentionKey{r.msg.ChannelID, identity}
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	rows, err := joinedMentions(tx, keys)
	if err != nil {
		return err
	}
	userOf := make(map[mentionKey]string, len(rows))
	for _, row := range rows {
		userOf[mentionKey{row.ChannelID, row.Identity}] = row.UserID
	}
	for _, run := range runs {
		for _, r := range run {
			for _, identity := range r.mentions {
				id, ok := userOf[mentionKey{r.msg.ChannelID, identity}]
				if !ok {
					r.err = apperr.New(apperr.BadUserInput, "mentions: %q is not a member of this channel", identity)
					break
				}
				r.msg.MentionIDs = append(r.msg.MentionIDs, id)
			}
		}
	}
	return nil
}

// mentionKey is a mention to resolve: an identity in a channel.
type mentionKey struct {
	Channel  string `json:"c"`
	Identity string `json:"i"`
}

// mentionRow is a mentionKey resolved to the user it names.
type mentionRow struct {
	ChannelID string
	Identity  string
	UserID    string
}

// joinedMentions reads, in one query, the keys whose identity is a joined
// member of the key's channel, with that member's user ID.
//
// On PostgreSQL the keys go in as one JSON parameter, as in storedRepeats:
// one statement text, planned once per connection, and one parameter to
// bind instead of two per key. Each key probes the users' and then the
// members' indexes in LATERAL subqueries that OFFSET 0 keeps from being
// flattened: joined plainly, the plan depended on the tables' statistics,
// and on a database not yet analyzed it hashed a scan of every member and
// probed the users once per key and member (256 probes for 16 keys in a
// channel of 16), the costliest statement of a send batch with mentions
// (0.31 ms). SQLite takes a row-value IN list, which it probes once per
// row.
func joinedMentions(tx *gorm.DB, keys []mentionKey) ([]mentionRow, error) {
	var rows []mentionRow
	if tx.Dialector.Name() == "sqlite" {
		pairs := make([][]any, len(keys))
		for i, k := range keys {
			pairs[i] = []any{k.Channel, k.Identity}
		}
		err := tx.Table("members").Select("members.channel_id AS channel_id, users.identity AS identity, users.id AS user_id").
			Joins("JOIN users ON users.id = members.user_id").
			Where("members.status = ? AND (members.channel_id, users.identity) IN ?", models.MemberJoined, pairs).
			Scan(&rows).Error
		return rows, err
	}
	param, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	err = tx.Raw(`SELECT k.c AS channel_id, k.i AS identity, u.id AS user_id
		FROM jsonb_to_recordset(CAST(? AS jsonb)) AS k(c text, i text)
		CROSS JOIN LATERAL (SELECT id FROM users WHERE identity = k.i OFFSET 0) u
		CROSS JOIN LATERAL (SELECT 1 FROM members
			WHERE channel_id = k.c AND user_id = u.id AND status = ? OFFSET 0) m`, string(param), models.MemberJoined).Scan(&rows).Error
	return rows, err
}

// lockSendChannels locks, on PostgreSQL, the rows of every channel of
// runs in one statement, in ID order, when the batch has a client message
// id or spans channels; a single channel without one is locked by the
// counters' UPDATE itself (takeIndexes). With a client message id the lock
// comes before findRepeats reads, so that a concurrent batch with the same
// id has committed, and its message is found, before this one looks. With
// several channels, taking all of them at once in ID order means that two
// batches, on this node or another, cannot deadlock: locking first only
// the channels with client ids and then the rest would let a batch hold
// channel b while it waits for a, against another that holds a and waits
// for b.
func lockSendChannels(tx *gorm.DB, runs [][]*sendRequest) error {
	ids := make([]string, len(runs))
	clientIDs := false
	for i, run := range runs {
		ids[i] = run[0].msg.ChannelID
		clientIDs = clientIDs || slices.ContainsFunc(run, func(r *sendRequest) bool { return r.err == nil && r.msg.ClientMessageID != nil })
	}
	if len(ids) == 1 && !clientIDs {
		return nil
	}
	return lockChannels(tx, ids...)
}

// findRepeats marks the sends of runs that repeat a client message id:
// r.existing for one already stored, r.dup for one sent earlier in the
// batch. The caller has locked the channels (lockSendChannels).
func findRepeats(tx *gorm.DB, runs [][]*sendRequest) error {
	var keys []repeatKey
	for _, run := range runs {
		for _, r := range run {
			if r.err == nil && r.msg.ClientMessageID != nil {
				keys = append(keys, repeatKey{r.msg.ChannelID, r.v.UserID, *r.msg.ClientMessageID})
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	stored, err := storedRepeats(tx, keys)
	if err != nil {
		return err
	}
	storedAs := make(map[repeatKey]*models.Message, len(stored))
	for _, m := range stored {
		storedAs[repeatKey{m.ChannelID, *m.AuthorID, *m.ClientMessageID}] = m
	}
	first := map[repeatKey]*sendRequest{}
	for _, run := range runs {
		for _, r := range run {
			if r.err != nil || r.msg.ClientMessageID == nil {
				continue
			}
			k := repeatKey{r.msg.ChannelID, r.v.UserID, *r.msg.ClientMessageID}
			if r.existing = storedAs[k]; r.existing != nil {
				continue
			}
			if r.dup = first[k]; r.dup == nil {
				first[k] = r
			}
		}
	}
	return nil
}

// repeatKey is what a repeated send repeats: its channel, author and client
// message id.
type repeatKey struct {
	Channel string `json:"c"`
	Author  string `json:"a"`
	Client  string `json:"m"`
}

// storedRepeats reads the stored messages that have one of keys, in one
// query that probes idx_messages_client_id once per key.
//
// On PostgreSQL the keys go in as one JSON parameter, so that the statement
// is the same for every batch size and the connection plans it once, and
// each key looks its message up in a LATERAL subquery that the planner
// cannot turn into a scan of the channel. A row-value IN list is planned
// there as a scan of the channel's whole part of the index with the list as
// a filter (measured: 1 ms per batch after 5,000 messages with client ids,
// growing with the channel, under its row lock), and a UNION of exact
// lookups costs 1-3 ms of planning per batch. SQLite probes the index once
// per row of an IN list.
func storedRepeats(tx *gorm.DB, keys []repeatKey) ([]*models.Message, error) {
	var stored []*models.Message
	if tx.Dialector.Name() == "sqlite" {
		tuples := make([][]any, len(keys))
		for i, k := range keys {
			tuples[i] = []any{k.Channel, k.Author, k.Client}
		}
		err := tx.Where("client_message_id IS NOT NULL AND (channel_id, author_id, client_message_id) IN ?", tuples).Find(&stored).Error
		return stored, err
	}
	param, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	err = tx.Raw(`SELECT `+db.Columns(tx, &models.Message{}, "m")+` FROM jsonb_to_recordset(CAST(? AS jsonb)) AS k(c text, a text, m text)
		CROSS JOIN LATERAL (SELECT * FROM messages
			WHERE channel_id = k.c AND author_id = k.a AND client_message_id = k.m LIMIT 1) m`, string(param)).Scan(&stored).Error
	return stored, err
}

// writtenRuns returns runs without the sends that write nothing (see
// sendRequest.writes), and without the runs left empty.
func writtenRuns(runs [][]*sendRequest) [][]*sendRequest {
	out := runs[:0]
	for _, run := range runs {
		if run = slices.DeleteFunc(run, func(r *sendRequest) bool { return !r.writes() }); len(run) > 0 {
			out = append(out, run)
		}
	}
	return out
}
