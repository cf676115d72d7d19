// Package chat holds every rule of Parley: who may read or write a channel,
// history visibility, message indexes and read state. Service has one method
// per use case; resolvers and subscriptions call it and add no rules of their
// own. Errors a client can act on are *apperr.Error values.
package chat

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/parleychat/parley/apperr"
	"github.com/parleychat/parley/auth"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/hub"
	"github.com/parleychat/parley/models"
	"github.com/parleychat/parley/presence"
	"github.com/parleychat/parley/pubsub"
	"github.com/parleychat/parley/ratelimit"
)

// Limits bound what a client may write or ask for in one call.
type Limits struct {
	// MaxBodyBytes caps a message body, in bytes.
	MaxBodyBytes int
	// MaxAttributesBytes caps encoded attributes of any entity.
	MaxAttributesBytes int
	// MaxNameChars caps friendly and unique names, in characters.
	MaxNameChars int
	// MaxPageSize caps first and last in lists.
	MaxPageSize int
	// DefaultPageSize is used when a list gets neither first nor last.
	DefaultPageSize int
	// MaxInitialMembers caps createChannel's members list.
	MaxInitialMembers int
}

// DefaultLimits are the limits used where Options leaves them zero.
var DefaultLimits = Limits{
	MaxBodyBytes:       4 << 10,
	MaxAttributesBytes: 16 << 10,
	MaxNameChars:       256,
	MaxPageSize:        100,
	DefaultPageSize:    50,
	MaxInitialMembers:  100,
}

// DefaultTypingTimeout is Options.TypingTimeout's default.
const DefaultTypingTimeout = 5 * time.Second

// Options configure a Service.
type Options struct {
	// Limits; zero fields take DefaultLimits.
	Limits Limits
	// Logger receives internal errors; nil discards them.
	Logger *slog.Logger
	// Broker carries live events; nil publishes nothing.
	Broker pubsub.Broker
	// Hub is the node's realtime engine, on Broker, where subscriptions
	// are registered; nil refuses subscriptions.
	Hub *hub.Hub
	// Presence counts users' live connections; nil means nobody is online.
	Presence presence.Tracker
	// TypingTimeout is how long after a user's last startTyping typingEnded
	// fires; zero means DefaultTypingTimeout.
	TypingTimeout time.Duration
	// Verifier checks the tokens of refreshSession; nil refuses it.
	Verifier *auth.Verifier
	// Delivery queues push notifications and webhooks in the
	// transactions of the writes that cause them; nil queues nothing.
	Delivery Delivery
	// PreSend, when not nil, is asked about every message a user sends
	// before it is written.
	PreSend PreSendHook
	// PushAlways pushes a new message to every recipient with a
	// registration; otherwise (PARLEY_PUSH_WHEN=offline) only to those
	// with no live connection on any node.
	PushAlways bool
	// SystemMessages writes a SYSTEM message into a channel's history
	// when its friendlyName, state or photo changes and when members join,
	// leave, are added, invited or removed.
	SystemMessages bool
	// RateLimits limits startTyping per user and channel: the calls over
	// the limit succeed and do nothing. Nil limits nothing.
	RateLimits *ratelimit.Limits
	// Media configures attachments: storage, URL signing and limits.
	Media MediaOptions
	// ExpiryWarning is how long before a token expires sessionEvents
	// sends EXPIRING; zero means DefaultExpiryWarning.
	ExpiryWarning time.Duration
}

// Service implements Parley's use cases. It is safe for concurrent use.
type Service struct {
	store    *db.Store
	limits   Limits
	log      *slog.Logger
	users    userCache
	broker   pubsub.Broker
	hub      *hub.Hub
	presence presence.Tracker
	typing   *typingTimers
	sends    sendBatcher
	verifier *auth.Verifier
	delivery Delivery
	presend  PreSendHook
	// pushAlways is Options.PushAlways.
	pushAlways bool
	rates      *ratelimit.Limits
	// media is Options.Media with its defaults.
	media MediaOptions
	// expiryWarning is Options.ExpiryWarning.
	expiryWarning time.Duration
	// systemMessages is Options.SystemMessages.
	systemMessages bool
}

// New returns a Service on store.
func New(store *db.Store, opts Options) *Service {
	l := opts.Limits
	d := DefaultLimits
	for _, f := range []struct{ v, def *int }{
		{&l.MaxBodyBytes, &d.MaxBodyBytes},
		{&l.MaxAttributesBytes, &d.MaxAttributesBytes},
		{&l.MaxNameChars, &d.MaxNameChars},
		{&l.MaxPageSize, &d.MaxPageSize},
		{&l.DefaultPageSize, &d.DefaultPageSize},
		{&l.MaxInitialMembers, &d.MaxInitialMembers},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if l.DefaultPageSize > l.MaxPageSize {
		l.DefaultPageSize = l.MaxPageSize
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	typingTimeout := opts.TypingTimeout
	if typingTimeout <= 0 {
		typingTimeout = DefaultTypingTimeout
	}
	s := &Service{
		store: store, limits: l, log: logger, users: userCache{ids: map[string]cachedUser{}},
		broker: opts.Broker, hub: opts.Hub, presence: opts.Presence, typing: newTypingTimers(typingTimeout), verifier: opts.Verifier,
		delivery: opts.Delivery, presend: opts.PreSend, pushAlways: opts.PushAlways,
		rates: opts.RateLimits, media: opts.Media.withDefaults(), expiryWarning: opts.ExpiryWarning,
		systemMessages: opts.SystemMessages,
	}
	if s.expiryWarning <= 0 {
		s.expiryWarning = DefaultExpiryWarning
	}
	if s.presence != nil {
		s.presence.Watch(s.presenceLapsed)
	}
	return s
}

// Limits returns the limits in force.
func (s *Service) Limits() Limits { return s.limits }

// Optional is a field of a patch: Set says whether the client sent it, so an
// explicit null (Set with a zero Value) differs from an omitted field.
type Optional[T any] struct {
	Set   bool
	Value T
}

// viewer is the authenticated caller as the rules see them.
type viewer struct {
	UserID   string
	Identity string
	// grants, when not nil, are the only channels the caller's token may
	// use (see auth.Grants).
	grants *auth.Grants
	// admin is a token of the application's backend: it acts on any
	// channel as its OWNER and may use the admin API.
	admin bool
}

// userCacheCap bounds the identity → user id cache; it is cleared when full.
const userCacheCap = 100_000

// userCacheTTL is how long an entry is trusted: a user deleted on another
// node (deleteUser) is forgotten here within it.
const userCacheTTL = time.Minute

// userCache maps identities to user ids, which never change while the user
// exists.
type userCache struct {
	mu  sync.RWMutex
	ids map[string]cachedUser
}

// cachedUser is a user id and when it was read.
type cachedUser struct {
	id string
	at time.Time
}

func (c *userCache) get(identity string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	u, ok := c.ids[identity]
	if !ok || time.Since(u.at) > userCacheTTL {
		return "", false
	}
	return u.id, true
}

// forget drops identity, whose user was deleted.
func (c *userCache) forget(identity string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ids, identity)
}

func (c *userCache) put(identity, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) >= userCacheCap {
		clear(c.ids)
	}
	c.ids[identity] = cachedUser{id: id, at: time.Now()}
}

// viewer returns the caller, creating their user on first sight.
// UNAUTHENTICATED when the context carries no principal.
func (s *Service) viewer(ctx context.Context) (viewer, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return viewer{}, apperr.New(apperr.Unauthenticated, "authentication required: send Authorization: Bearer <token>")
	}
	if id, ok := s.users.get(p.Identity); ok {
		return viewer{UserID: id, Identity: p.Identity, grants: p.Grants, admin: p.Admin}, nil
	}
	var u models.User
	err := s.store.DB(ctx).Take(&u, "identity = ?", p.Identity).Error
	if isNotFound(err) {
		var name *string
		if p.Name != "" {
			n := truncateChars(p.Name, s.limits.MaxNameChars)
			name = &n
		}
		err = s.store.Write(ctx, func(tx *gorm.DB) error {
			created, err := ensureUser(tx, p.Identity, name)
			if err == nil {
				u = *created
			}
			return err
		})
	}
	if err != nil {
		return viewer{}, internal("resolve caller", err)
	}
	s.users.put(p.Identity, u.ID)
	return viewer{UserID: u.ID, Identity: p.Identity, grants: p.Grants, admin: p.Admin}, nil
}

// now is the service clock, at the precision both databases keep.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// newID returns a time-ordered unique id.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// internal marks an unexpected error as internal, naming what was being
// done. Its text never reaches the client: the error presenter shows
// INTERNAL. Errors fit for clients pass through.
func internal(doing string, err error) error { return apperr.Wrap(doing, err) }

// errNoVerifier is why a Service without Options.Verifier refuses
// refreshSession.
var errNoVerifier = errors.New("no token verifier configured")

// isNotFound reports whether err is GORM's record-not-found.
func isNotFound(err error) bool { return errors.Is(err, gorm.ErrRecordNotFound) }

// isDuplicate reports whether err is a unique-constraint violation.
func isDuplicate(err error) bool { return errors.Is(err, gorm.ErrDuplicatedKey) }

// Ping reports whether the database answers, for readiness checks.
func (s *Service) Ping(ctx context.Context) error { return s.store.Ping(ctx) }
