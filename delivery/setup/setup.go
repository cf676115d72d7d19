// Package setup builds Parley's delivery from its settings: the push
// providers that are configured (a provider without configuration is off,
// and says so once in the log), the webhook sender, the pre-send hook and
// the queue that runs them. The server and the test servers share it.
package setup

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/delivery/push"
	"github.com/parleychat/parley/delivery/push/apns"
	"github.com/parleychat/parley/delivery/push/fcm"
	"github.com/parleychat/parley/delivery/queue"
	"github.com/parleychat/parley/delivery/webhook"
	"github.com/parleychat/parley/models"
)

// Config is the delivery's settings.
type Config struct {
	// FCM is off while its CredentialsFile is empty.
	FCM fcm.Config
	// APNs is off while its KeyFile is empty.
	APNs apns.Config
	// WebhookURL turns webhooks on; WebhookSecret (whsec_<base64>)
	// signs them and the pre-send calls. WebhookEvents are the types
	// delivered; nil means all.
	WebhookURL    string
	WebhookSecret string
	WebhookEvents []string
	// PreSendURL turns the pre-send hook on; see webhook.PreSendConfig.
	PreSendURL        string
	PreSendTimeout    time.Duration
	PreSendFailClosed bool
	// MaxAttempts, JobTimeout, Workers and FetchPollInterval tune the
	// queue; see queue.Config.
	MaxAttempts       int
	JobTimeout        time.Duration
	Workers           int
	InsertOnly        bool
	FetchPollInterval time.Duration
	StatsInterval     time.Duration
	// Logger receives the delivery's log; nil discards it.
	Logger *slog.Logger
}

// Setup is the delivery's parts, built and checked; Queue makes the queue.
type Setup struct {
	cfg       Config
	providers map[models.PushProvider]push.Provider
	webhooks  *webhook.Sender
	// PreSend is the pre-send hook, nil when it is off.
	PreSend *webhook.PreSend
}

// New checks cfg and builds the providers and hooks it configures. It
// reads the credential files, so that a bad one stops the server at start.
func New(cfg Config) (*Setup, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Setup{cfg: cfg, providers: map[models.PushProvider]push.Provider{}}
	if cfg.FCM.CredentialsFile == "" {
		log.Info("FCM push is off: PARLEY_FCM_CREDENTIALS is unset")
	} else {
		p, err := fcm.New(cfg.FCM)
		if err != nil {
			return nil, fmt.Errorf("PARLEY_FCM_CREDENTIALS: %w", err)
		}
		s.providers[models.PushFCM] = p
	}
	if cfg.APNs.KeyFile == "" {
		log.Info("APNs push is off: PARLEY_APNS_KEY is unset")
	} else {
		p, err := apns.New(cfg.APNs)
		if err != nil {
			return nil, fmt.Errorf("PARLEY_APNS_KEY: %w", err)
		}
		s.providers[models.PushAPNS] = p
	}
	var signer *webhook.Signer
	if cfg.WebhookURL != "" || cfg.PreSendURL != "" {
		if cfg.WebhookSecret == "" {
			return nil, errors.New("PARLEY_WEBHOOK_SECRET is required with PARLEY_WEBHOOK_URL or PARLEY_PRESEND_URL: every call is signed")
		}
		var err error
		if signer, err = webhook.NewSigner(cfg.WebhookSecret); err != nil {
			return nil, fmt.Errorf("PARLEY_WEBHOOK_SECRET: %w", err)
		}
	}
	if cfg.WebhookURL == "" {
		log.Info("webhooks are off: PARLEY_WEBHOOK_URL is unset")
	} else {
		s.webhooks = webhook.NewSender(cfg.WebhookURL, signer)
	}
	if cfg.PreSendURL != "" {
		s.PreSend = webhook.NewPreSend(webhook.PreSendConfig{
			URL: cfg.PreSendURL, Signer: signer, Timeout: cfg.PreSendTimeout, FailClosed: cfg.PreSendFailClosed, Logger: log,
		})
	}
	return s, nil
}

// Delivers reports whether anything is to be delivered: a push provider or
// webhooks. Without, no queue is needed.
func (s *Setup) Delivers() bool { return len(s.providers) > 0 || s.webhooks != nil }

// Queue returns the delivery queue on db, the pool for River's own
// statements (db.Store.QueueDB); sqlite says which database it is, and
// listener, on PostgreSQL, is the pool for LISTEN (nil polls).
func (s *Setup) Queue(db *sql.DB, sqlite bool, listener *pgxpool.Pool) (*queue.Queue, error) {
	cfg := queue.Config{
		DB: db, SQLite: sqlite, Listener: listener, Providers: s.providers,
		WebhookEvents: s.cfg.WebhookEvents, MaxAttempts: s.cfg.MaxAttempts, JobTimeout: s.cfg.JobTimeout,
		Workers: s.cfg.Workers, InsertOnly: s.cfg.InsertOnly, FetchPollInterval: s.cfg.FetchPollInterval, StatsInterval: s.cfg.StatsInterval, Logger: s.cfg.Logger,
	}
	if s.webhooks != nil {
		cfg.Webhooks = s.webhooks
	}
	return queue.New(cfg)
}
