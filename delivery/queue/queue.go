// Package queue runs Parley's deliveries (push notifications and webhooks)
// as jobs of River, a durable job queue on the application's own database:
// a job is inserted in the transaction of the write that causes it (see
// EnqueueTx), so it exists exactly when that write committed, and every
// node working the queue takes each job once (PostgreSQL's FOR UPDATE SKIP
// LOCKED; SQLite serves one process). A node that dies while delivering
// leaves its job running; after JobTimeout and a margin, River's rescuer
// on another node makes it available again, so a delivery happens at least
// once.
//
// A failed delivery is retried by a follow-up job scheduled with
// exponential backoff, jitter and the receiver's Retry-After (see
// delivery.Backoff), carrying only the devices still to reach, up to
// MaxAttempts attempts in all; then it is given up and logged.
package queue

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/models"
)

// Defaults of Config.
const (
	DefaultMaxAttempts   = 10
	DefaultJobTimeout    = time.Minute
	DefaultWorkers       = 16
	DefaultStatsInterval = time.Minute
)

// sendConcurrency is how many pushes a node sends at once per worker: a
// node sends at most Workers × sendConcurrency pushes at a time, and one
// job, which holds the pushes of a whole send batch, may take whatever of
// that the node's other jobs leave.
const sendConcurrency = 8

// WebhookSender delivers one webhook; see webhook.Sender.
type WebhookSender interface {
	// Send delivers w; its error is a *delivery.TransientError when a
	// later attempt may succeed.
	Send(ctx context.Context, w *delivery.Webhook) error
}

// Config configures a Queue.
type Config struct {
	// DB is the pool River uses for its own statements (db.Store's
	// QueueDB); SQLite says which database it is.
	DB     *sql.DB
	SQLite bool
	// Listener, on PostgreSQL, is a pool for LISTEN, through which a
	// committed job wakes the nodes at once; nil polls every
	// FetchPollInterval.
	Listener *pgxpool.Pool
	// Providers are the push services configured, by provider; a
	// registration of another provider is skipped.
	Providers map[models.PushProvider]push.Provider
	// Webhooks delivers webhooks; nil turns them off. WebhookEvents are
	// the event types delivered (nil: all).
	Webhooks      WebhookSender
	WebhookEvents []string
	// MaxAttempts bounds the attempts of one delivery (DefaultMaxAttempts
	// when zero).
	MaxAttempts int
	// JobTimeout bounds one attempt (DefaultJobTimeout when zero); a job
	// left running by a dead node is rescued twice that long after it
	// started.
	JobTimeout time.Duration
	// Workers is how many jobs a node works at once (DefaultWorkers when
	// zero).
	Workers int
	// InsertOnly makes a node that only inserts jobs: Start works none,
	// and other nodes deliver.
	InsertOnly bool
	// FetchPollInterval is how often a node looks for jobs without a
	// notification (River's default when zero).
	FetchPollInterval time.Duration
	// StatsInterval is how often the queue's depth and counters are
	// logged, when they changed (DefaultStatsInterval when zero).
	StatsInterval time.Duration
	// Logger receives River's log and the queue's; nil discards them.
	Logger *slog.Logger
}

// Queue inserts and works delivery jobs. It is safe for concurrent use.
type Queue struct {
	cfg    Config
	source delivery.PushSource
	client *river.Client[*sql.Tx]
	log    *slog.Logger
	events map[string]bool
	counts counters
	// sends bounds the pushes being sent at once, by all jobs.
	sends chan struct{}
	// stop ends the stats loop; done is closed when it has ended.
	stop context.CancelFunc
	done chan struct{}
}

// counters are the queue's totals since start.
type counters struct {
	enqueued, attempts, sent, failed, retried, givenUp, pruned atomic.Int64
}

// Stats are a queue's depth, from the database (every node's jobs), and
// this node's counts since it started.
type Stats struct {
	// Available jobs wait for a worker; Scheduled ones for their time
	// (retries); Running ones are being worked, on any node.
	Available, Scheduled, Running int64
	// Enqueued counts jobs inserted; Attempts deliveries tried (one per
	// device or webhook); Sent those that succeeded; Failed those that
	// failed; Retried the follow-up jobs scheduled; GivenUp deliveries
	// abandoned after MaxAttempts or a final error; Pruned registrations
	// removed.
	Enqueued, Attempts, Sent, Failed, Retried, GivenUp, Pruned int64
}

// New returns a Queue that can insert jobs; Start makes it work them.
func New(cfg Config) (*Queue, error) {
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts)
	cfg.JobTimeout = cmp.Or(cfg.JobTimeout, DefaultJobTimeout)
	cfg.Workers = cmp.Or(cfg.Workers, DefaultWorkers)
	cfg.StatsInterval = cmp.Or(cfg.StatsInterval, DefaultStatsInterval)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{cfg: cfg, log: log, sends: make(chan struct{}, cfg.Workers*sendConcurrency)}
	if cfg.Webhooks != nil {
		q.events = map[string]bool{}
		events := cfg.WebhookEvents
		if events == nil {
			events = delivery.WebhookEvents
		}
		for _, e := range events {
			q.events[e] = true
		}
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &pushWorker{q: q})
	river.AddWorker(workers, &singlePushWorker{q: q})
	river.AddWorker(workers, &webhookWorker{q: q})
	var driver riverdriver.Driver[*sql.Tx]
	switch {
	case cfg.SQLite:
		driver = riversqlite.New(cfg.DB)
	case cfg.Listener != nil:
		driver = riverdatabasesql.NewWithPgxListener(cfg.DB, cfg.Listener)
	default:
		driver = riverdatabasesql.New(cfg.DB)
	}
	client, err := river.NewClient(driver, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers:              workers,
		MaxAttempts:          cfg.MaxAttempts,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: 2 * cfg.JobTimeout,
		FetchPollInterval:    cfg.FetchPollInterval,
		// A delivered job is of no use: keep the table small.
		CompletedJobRetentionPeriod: time.Minute,
		DiscardedJobRetentionPeriod: 24 * time.Hour,
		ErrorHandler:                errorHandler{q},
		Logger:                      log,
	})
	if err != nil {
		return nil, fmt.Errorf("delivery queue: %w", err)
	}
	q.client = client
	return q, nil
}

// PushEnabled reports whether any push provider is configured.
func (q *Queue) PushEnabled() bool { return len(q.cfg.Providers) > 0 }

// WantsWebhook reports whether webhooks of type typ are delivered.
func (q *Queue) WantsWebhook(typ string) bool { return q.events[typ] }

// EnqueueTx inserts jobs in tx, the transaction of the write that causes
// them: one push job for all of jobs.Pushes, whose recipients are found
// when it runs (a send batch's messages share a job), and one job per
// webhook. Pushes are skipped without a provider, webhooks of types not
// delivered too.
func (q *Queue) EnqueueTx(ctx context.Context, tx *sql.Tx, jobs delivery.Jobs) error {
	params := make([]river.InsertManyParams, 0, 1+len(jobs.Webhooks))
	if q.PushEnabled() && len(jobs.Pushes) > 0 {
		params = append(params, river.InsertManyParams{Args: pushArgs{MessageIDs: jobs.Pushes, Try: 1}})
	}
	for _, w := range jobs.Webhooks {
		if q.WantsWebhook(w.Type) {
			params = append(params, river.InsertManyParams{Args: webhookArgs{Webhook: w, Try: 1}})
		}
	}
	if len(params) == 0 {
		return nil
	}
	if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("enqueue deliveries: %w", err)
	}
	q.counts.enqueued.Add(int64(len(params)))
	return nil
}

// Start starts working jobs, finding the recipients of pushes through
// source, and logging the queue's stats; ctx bounds the start only. Call
// it once.
func (q *Queue) Start(ctx context.Context, source delivery.PushSource) error {
	q.source = source
	if !q.cfg.InsertOnly {
		if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("start delivery queue: %w", err)
		}
	}
	statsCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	q.stop, q.done = stop, make(chan struct{})
	go q.logStats(statsCtx)
	return nil
}

// Stop stops fetching jobs and waits, as long as ctx allows, for the jobs
// being worked to finish; then it cancels them. A job cancelled so is
// retried, here or on another node.
func (q *Queue) Stop(ctx context.Context) error {
	if q.stop != nil {
		q.stop()
		<-q.done
	}
	if q.cfg.InsertOnly {
		return nil
	}
	err := q.client.Stop(ctx)
	if ctx.Err() != nil {
		err = q.client.StopAndCancel(context.WithoutCancel(ctx))
	}
	if err != nil {
		return fmt.Errorf("stop delivery queue: %w", err)
	}
	return nil
}

// Stats returns the queue's depth and this node's counts.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	s := Stats{
		Enqueued: q.counts.enqueued.Load(), Attempts: q.counts.attempts.Load(), Sent: q.counts.sent.Load(),
		Failed: q.counts.failed.Load(), Retried: q.counts.retried.Load(), GivenUp: q.counts.givenUp.Load(),
		Pruned: q.counts.pruned.Load(),
	}
	rows, err := q.cfg.DB.QueryContext(ctx,
		"SELECT state, count(*) FROM river_job WHERE state IN ('available', 'scheduled', 'retryable', 'running') GROUP BY state")
	if err != nil {
		return s, fmt.Errorf("count delivery jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return s, fmt.Errorf("count delivery jobs: %w", err)
		}
		switch state {
		case "available":
			s.Available += n
		case "running":
			s.Running += n
		default:
			s.Scheduled += n
		}
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("count delivery jobs: %w", err)
	}
	return s, nil
}

// logStats logs Stats every StatsInterval while they change, until ctx
// ends.
func (q *Queue) logStats(ctx context.Context) {
	defer close(q.done)
	t := time.NewTicker(q.cfg.StatsInterval)
	defer t.Stop()
	var last Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, err := q.Stats(ctx)
		if err != nil {
			if ctx.Err() == nil {
				q.log.WarnContext(ctx, "delivery queue stats", "err", err)
			}
			continue
		}
		if s == last {
			continue
		}
		last = s
		q.log.InfoContext(ctx, "delivery queue",
			"available", s.Available, "scheduled", s.Scheduled, "running", s.Running,
			"enqueued", s.Enqueued, "attempts", s.Attempts, "sent", s.Sent, "failed", s.Failed,
			"retried", s.Retried, "given_up", s.GivenUp, "pruned", s.Pruned)
	}
}

// retryLater schedules a follow-up of a delivery that failed on attempt
// try, or gives it up after the last attempt. what names it in logs.
func (q *Queue) retryLater(ctx context.Context, try int, retryAfter time.Duration, next river.JobArgs, what string, err error) error {
	if try >= q.cfg.MaxAttempts {
		q.counts.givenUp.Add(1)
		q.log.WarnContext(ctx, "delivery given up", "what", what, "attempts", try, "err", err)
		return nil
	}
	delay := delivery.Backoff(try, retryAfter, func(d time.Duration) time.Duration {
		if d <= 0 {
			return 0
		}
		return rand.N(d)
	})
	if _, ierr := q.client.Insert(ctx, next, &river.InsertOpts{ScheduledAt: time.Now().Add(delay)}); ierr != nil {
		// River retries this job, which delivers again.
		return fmt.Errorf("schedule retry of %s: %w", what, ierr)
	}
	q.counts.retried.Add(1)
	q.log.InfoContext(ctx, "delivery failed; retry scheduled", "what", what, "attempt", try, "retry_in", delay.Round(time.Millisecond), "err", err)
	return nil
}

// pushArgs is a push job: its first try pushes each of MessageIDs (the
// messages of one send batch) to every device of its recipients; a retry
// carries in Left only the devices still to reach, by message ID. It has a
// kind of its own, not that of singlePushArgs: a node of an older binary
// has no worker for it and fails it, and River retries it until a node
// that knows it takes it, instead of completing it without a push.
type pushArgs struct {
	MessageIDs []string            `json:"messageIds,omitempty"`
	Left       map[string][]string `json:"left,omitempty"`
	Try        int                 `json:"try"`
}

// Kind implements river.JobArgs.
func (pushArgs) Kind() string { return "parley.push.batch" }

// singlePushArgs is the push job of older binaries, one message per job:
// to every device on a first try, to Devices only on a retry. Jobs of this
// kind still queued are worked as they were.
type singlePushArgs struct {
	MessageID string   `json:"messageId"`
	Devices   []string `json:"devices,omitempty"`
	Try       int      `json:"try"`
}

// Kind implements river.JobArgs.
func (singlePushArgs) Kind() string { return "parley.push" }

// pushWorker works push jobs.
type pushWorker struct {
	river.WorkerDefaults[pushArgs]
	q *Queue
}

// Work sends the pushes of the job's messages.
func (w *pushWorker) Work(ctx context.Context, job *river.Job[pushArgs]) error {
	args := job.Args
	ids := slices.Clone(args.MessageIDs)
	for id := range args.Left {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return w.q.workPushes(ctx, slices.Compact(ids), args.Left, args.Try)
}

// singlePushWorker works the push jobs of older binaries.
type singlePushWorker struct {
	river.WorkerDefaults[singlePushArgs]
	q *Queue
}

// Work sends the pushes of the job's message.
func (w *singlePushWorker) Work(ctx context.Context, job *river.Job[singlePushArgs]) error {
	args := job.Args
	only := map[string][]string{}
	if args.Devices != nil {
		only[args.MessageID] = args.Devices
	}
	return w.q.workPushes(ctx, []string{args.MessageID}, only, args.Try)
}

// workPushes sends the pushes of messages ids, loaded together, to every
// device of their recipients or, for the messages in only, to the devices
// listed there; it prunes dead tokens and schedules one retry job (a
// pushArgs) for the devices, by message, that failed transiently.
func (q *Queue) workPushes(ctx context.Context, ids []string, only map[string][]string, try int) error {
	byMessage, err := q.source.MessagePushes(ctx, ids)
	if err != nil {
		return fmt.Errorf("pushes of %d messages: %w", len(ids), err)
	}
	var pushes []*delivery.Push
	for _, id := range ids {
		devices, some := only[id]
		for i := range byMessage[id] {
			p := &byMessage[id][i]
			if (!some || slices.Contains(devices, p.Device.RegistrationID)) && q.cfg.Providers[p.Device.Provider] != nil {
				pushes = append(pushes, p)
			}
		}
	}
	var (
		mu         sync.Mutex
		dead       []string
		again      = map[string][]string{} // by message ID
		retryAfter time.Duration
		lastErr    error
		wg         sync.WaitGroup
	)
	for _, p := range pushes {
		select {
		case q.sends <- struct{}{}:
		case <-ctx.Done():
			// River retries the whole job: its pushes sent already are
			// sent again, under the same collapse keys.
			wg.Wait()
			return fmt.Errorf("push of %d messages: %w", len(ids), ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-q.sends }()
			q.counts.attempts.Add(1)
			err := q.cfg.Providers[p.Device.Provider].Send(ctx, p)
			if err == nil {
				q.counts.sent.Add(1)
				return
			}
			q.counts.failed.Add(1)
			mu.Lock()
			defer mu.Unlock()
			var transient *delivery.TransientError
			switch {
			case errors.Is(err, push.ErrInvalidToken):
				dead = append(dead, p.Device.RegistrationID)
			case errors.As(err, &transient):
				again[p.CollapseID] = append(again[p.CollapseID], p.Device.RegistrationID)
				retryAfter = max(retryAfter, transient.RetryAfter)
				lastErr = err
			default:
				q.counts.givenUp.Add(1)
				q.log.WarnContext(ctx, "push refused", "message", p.CollapseID, "provider", p.Device.Provider, "err", err)
			}
		})
	}
	wg.Wait()
	if len(dead) > 0 {
		// A device dead for one message of the batch is dead for all.
		slices.Sort(dead)
		dead = slices.Compact(dead)
		if err := q.source.PruneDevices(ctx, dead); err != nil {
			return fmt.Errorf("prune %d registrations: %w", len(dead), err)
		}
		q.counts.pruned.Add(int64(len(dead)))
	}
	if len(again) == 0 {
		return nil
	}
	devices := 0
	for _, d := range again {
		devices += len(d)
	}
	next := pushArgs{Left: again, Try: try + 1}
	what := fmt.Sprintf("push of %d messages to %d devices", len(again), devices)
	return q.retryLater(ctx, try, retryAfter, next, what, lastErr)
}

// webhookArgs is a webhook job.
type webhookArgs struct {
	Webhook delivery.Webhook `json:"webhook"`
	Try     int              `json:"try"`
}

// Kind implements river.JobArgs.
func (webhookArgs) Kind() string { return "parley.webhook" }

// webhookWorker works webhook jobs.
type webhookWorker struct {
	river.WorkerDefaults[webhookArgs]
	q *Queue
}

// Work posts the webhook and schedules a retry when it fails.
func (w *webhookWorker) Work(ctx context.Context, job *river.Job[webhookArgs]) error {
	q, args := w.q, job.Args
	if q.cfg.Webhooks == nil {
		// Webhooks were turned off since the job was queued.
		return nil
	}
	q.counts.attempts.Add(1)
	err := q.cfg.Webhooks.Send(ctx, &args.Webhook)
	if err == nil {
		q.counts.sent.Add(1)
		return nil
	}
	q.counts.failed.Add(1)
	var retryAfter time.Duration
	if transient, ok := errors.AsType[*delivery.TransientError](err); ok {
		retryAfter = transient.RetryAfter
	}
	next := webhookArgs{Webhook: args.Webhook, Try: args.Try + 1}
	return q.retryLater(ctx, args.Try, retryAfter, next, "webhook "+args.Webhook.Type+" "+args.Webhook.ID, err)
}

// errorHandler logs the errors and panics of jobs, which River retries.
type errorHandler struct{ q *Queue }

// HandleError implements river.ErrorHandler.
func (h errorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	h.q.log.WarnContext(ctx, "delivery job failed", "kind", job.Kind, "job", job.ID, "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "err", err)
	if job.Attempt >= job.MaxAttempts {
		h.q.counts.givenUp.Add(1)
	}
	return nil
}

// HandlePanic implements river.ErrorHandler.
func (h errorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	h.q.log.ErrorContext(ctx, "delivery job panicked", "kind", job.Kind, "job", job.ID, "attempt", job.Attempt, "panic", panicVal, "stack", trace)
	return nil
}
