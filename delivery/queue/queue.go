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

// sendConcurrency bounds the devices one push job sends to at once.
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
	q := &Queue{cfg: cfg, log: log}
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
// them: one job per pushed message (its recipients are found when it runs)
// and one per webhook. Pushes are skipped without a provider, webhooks of
// types not delivered too.
func (q *Queue) EnqueueTx(ctx context.Context, tx *sql.Tx, jobs delivery.Jobs) error {
	params := make([]river.InsertManyParams, 0, len(jobs.Pushes)+len(jobs.Webhooks))
	if q.PushEnabled() {
		for _, id := range jobs.Pushes {
			params = append(params, river.InsertManyParams{Args: pushArgs{MessageID: id, Try: 1}})
		}
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

// pushArgs is a push job: the pushes of one message, to every device of
// its recipients on the first try, then to Devices (registration IDs).
type pushArgs struct {
	MessageID string   `json:"messageId"`
	Try       int      `json:"try"`
	Devices   []string `json:"devices,omitempty"`
}

// Kind implements river.JobArgs.
func (pushArgs) Kind() string { return "parley.push" }

// pushWorker works push jobs.
type pushWorker struct {
	river.WorkerDefaults[pushArgs]
	q *Queue
}

// Work sends the message's pushes, prunes dead tokens and schedules a
// retry for the devices that failed transiently.
func (w *pushWorker) Work(ctx context.Context, job *river.Job[pushArgs]) error {
	q, args := w.q, job.Args
	pushes, err := q.source.MessagePushes(ctx, args.MessageID)
	if err != nil {
		return fmt.Errorf("pushes of message %s: %w", args.MessageID, err)
	}
	if args.Devices != nil {
		pushes = slices.DeleteFunc(pushes, func(p delivery.Push) bool { return !slices.Contains(args.Devices, p.Device.RegistrationID) })
	}
	var (
		mu         sync.Mutex
		dead       []string
		again      []string
		retryAfter time.Duration
		lastErr    error
		wg         sync.WaitGroup
		sem        = make(chan struct{}, sendConcurrency)
	)
	for i := range pushes {
		p := &pushes[i]
		provider := q.cfg.Providers[p.Device.Provider]
		if provider == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			q.counts.attempts.Add(1)
			err := provider.Send(ctx, p)
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
				again = append(again, p.Device.RegistrationID)
				retryAfter = max(retryAfter, transient.RetryAfter)
				lastErr = err
			default:
				q.counts.givenUp.Add(1)
				q.log.WarnContext(ctx, "push refused", "message", args.MessageID, "provider", p.Device.Provider, "err", err)
			}
		})
	}
	wg.Wait()
	if len(dead) > 0 {
		if err := q.source.PruneDevices(ctx, dead); err != nil {
			return fmt.Errorf("prune %d registrations: %w", len(dead), err)
		}
		q.counts.pruned.Add(int64(len(dead)))
	}
	if len(again) == 0 {
		return nil
	}
	next := pushArgs{MessageID: args.MessageID, Try: args.Try + 1, Devices: again}
	return q.retryLater(ctx, args.Try, retryAfter, next, fmt.Sprintf("push of message %s to %d devices", args.MessageID, len(again)), lastErr)
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
