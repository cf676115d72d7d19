package chat

import (
	"context"
	"sync"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/parleychat/parley/models"
)

// Loaders batch the lookups that list fields make per row, so a page of N
// rows costs one query per related entity instead of N. They cache for their
// lifetime: make one set per request (or per subscription event), never
// share them longer. Each loader is built on first use: a subscription event
// whose selection needs none costs no loader at all.
type Loaders struct {
	s *Service

	// wait is how long each loader gathers keys before it queries.
	wait time.Duration

	mu            sync.Mutex // guards the loaders below
	users         *dataloadgen.Loader[string, *models.User]
	channels      *dataloadgen.Loader[string, *models.Channel]
	messages      *dataloadgen.Loader[string, *models.Message]
	myMemberships *dataloadgen.Loader[string, *models.Member]
	online        *dataloadgen.Loader[string, bool]
	notifiable    *dataloadgen.Loader[string, bool]
	grantChannels *dataloadgen.Loader[string, *models.Channel]
	media         *dataloadgen.Loader[string, []*models.Media]
	// unreadOf holds the caller's unread counts by channel, read with
	// their memberships.
	unreadOf map[string]Unread
	mentions *dataloadgen.Loader[string, []string]
	members  *dataloadgen.Loader[string, *models.Member]

	// summaryOnce reads the caller's unread summary once: summary or
	// summaryErr.
	summaryOnce sync.Once
	summary     *UnreadSummary
	summaryErr  error
}

type loadersKey struct{}

// loaderWait is how long a loader gathers keys before it queries.
const loaderWait = 2 * time.Millisecond

// NewLoaders returns fresh loaders on this service, for a query's or a
// mutation's execution: each loader gathers keys for loaderWait, so that
// the fields of a list's items, resolved concurrently, share one query.
func (s *Service) NewLoaders() *Loaders {
	return &Loaders{s: s, wait: loaderWait}
}

// NewEventLoaders returns fresh loaders for the execution of one
// subscription event, which the hub runs in its dispatch goroutine, one
// subscriber group after another: they query at once instead of waiting
// loaderWait, which a per-viewer subscription (unreadChanged, a channel's
// unreadCount) would otherwise pay once per subscriber, holding up every
// other delivery of the node. An event's payload is one object, so there
// is little to gather.
func (s *Service) NewEventLoaders() *Loaders {
	return &Loaders{s: s}
}

// lazyLoader returns *p, first building it on fetch when it is nil. l.mu
// guards *p.
func lazyLoader[V any](l *Loaders, p **dataloadgen.Loader[string, V], fetch func(context.Context, []string) ([]V, []error)) *dataloadgen.Loader[string, V] {
	l.mu.Lock()
	defer l.mu.Unlock()
	if *p == nil {
		*p = dataloadgen.NewLoader(fetch, dataloadgen.WithWait(l.wait))
	}
	return *p
}

func (l *Loaders) userLoader() *dataloadgen.Loader[string, *models.User] {
	return lazyLoader(l, &l.users, l.s.usersByIDs)
}

func (l *Loaders) channelLoader() *dataloadgen.Loader[string, *models.Channel] {
	return lazyLoader(l, &l.channels, l.s.channelsByIDs)
}

func (l *Loaders) messageLoader() *dataloadgen.Loader[string, *models.Message] {
	return lazyLoader(l, &l.messages, l.s.messagesByIDs)
}

func (l *Loaders) myMembershipLoader() *dataloadgen.Loader[string, *models.Member] {
	return lazyLoader(l, &l.myMemberships, l.fetchMyMemberships)
}

// fetchMyMemberships loads the caller's memberships of channelIDs with
// their unread counts in one query, keeping the counts for Unread.
func (l *Loaders) fetchMyMemberships(ctx context.Context, channelIDs []string) ([]*models.Member, []error) {
	rows, unread, err := l.s.myMemberships(ctx, channelIDs)
	if err != nil {
		return nil, []error{err}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unreadOf == nil {
		l.unreadOf = make(map[string]Unread, len(unread))
	}
	for id, u := range unread {
		l.unreadOf[id] = u
	}
	return rows, nil
}

// unread returns the caller's unread counts in channelID, loaded with
// their membership (zero when they have not joined).
func (l *Loaders) unread(ctx context.Context, channelID string) (Unread, error) {
	me, err := l.myMembershipLoader().Load(ctx, channelID)
	if err != nil || !me.Joined() {
		return Unread{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unreadOf[channelID], nil
}

// unreadSummary returns the caller's unread summary, read on first use.
func (l *Loaders) unreadSummary(ctx context.Context) (*UnreadSummary, error) {
	l.summaryOnce.Do(func() { l.summary, l.summaryErr = l.s.unreadSummary(ctx) })
	return l.summary, l.summaryErr
}

func (l *Loaders) onlineLoader() *dataloadgen.Loader[string, bool] {
	return lazyLoader(l, &l.online, l.s.onlineByIDs)
}

func (l *Loaders) notifiableLoader() *dataloadgen.Loader[string, bool] {
	return lazyLoader(l, &l.notifiable, l.s.notifiableByIDs)
}

func (l *Loaders) grantChannelLoader() *dataloadgen.Loader[string, *models.Channel] {
	return lazyLoader(l, &l.grantChannels, l.s.grantChannels)
}

func (l *Loaders) mediaLoader() *dataloadgen.Loader[string, []*models.Media] {
	return lazyLoader(l, &l.media, l.s.mediaByMessages)
}

func (l *Loaders) mentionLoader() *dataloadgen.Loader[string, []string] {
	return lazyLoader(l, &l.mentions, l.s.mentionsByMessage)
}

func (l *Loaders) memberLoader() *dataloadgen.Loader[string, *models.Member] {
	return lazyLoader(l, &l.members, l.s.membersByKey)
}

// WithLoaders returns a context carrying l.
func WithLoaders(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, loadersKey{}, l)
}

// loaders returns the context's loaders, or fresh ones for a context that
// has none (they then batch nothing but stay correct, so they do not wait
// for keys).
func (s *Service) loaders(ctx context.Context) *Loaders {
	if l, ok := ctx.Value(loadersKey{}).(*Loaders); ok {
		return l
	}
	return s.NewEventLoaders()
}

// UserByID returns a user, or nil when there is none. Users are visible to
// every authenticated caller; callers reach them through rows they could see.
func (s *Service) UserByID(ctx context.Context, id *string) (*models.User, error) {
	if id == nil {
		return nil, nil
	}
	return s.loaders(ctx).userLoader().Load(ctx, *id)
}

// Author returns a message's author, from the snapshot a live event carries
// or else through the loader.
func (s *Service) Author(ctx context.Context, m *models.Message) (*models.User, error) {
	if m.Author != nil {
		return m.Author, nil
	}
	return s.UserByID(ctx, m.AuthorID)
}

// MessageChannel returns a message's channel, from the snapshot a live
// event carries or else through the loader.
func (s *Service) MessageChannel(ctx context.Context, m *models.Message) (*models.Channel, error) {
	if m.Channel != nil {
		return m.Channel, nil
	}
	return s.ChannelOf(ctx, m.ChannelID)
}

// ChannelOf returns the channel of a member or message the caller could
// already see.
func (s *Service) ChannelOf(ctx context.Context, channelID string) (*models.Channel, error) {
	return s.loaders(ctx).channelLoader().Load(ctx, channelID)
}

// MyMembership returns the caller's membership of ch, or nil.
func (s *Service) MyMembership(ctx context.Context, ch *models.Channel) (*models.Member, error) {
	return s.loaders(ctx).myMembershipLoader().Load(ctx, ch.ID)
}

// LastMessage returns a channel's newest message for a joined member, and
// nil for others (a public channel's messages are for its members only) and
// when it is before the member's shared history.
func (s *Service) LastMessage(ctx context.Context, ch *models.Channel) (*models.Message, error) {
	if ch.LastMessageID == nil {
		return nil, nil
	}
	me, err := s.MyMembership(ctx, ch)
	if err != nil || !me.Joined() {
		return nil, err
	}
	m, err := s.loaders(ctx).messageLoader().Load(ctx, *ch.LastMessageID)
	if err != nil || m == nil || m.Index < me.HistoryStart {
		return nil, err
	}
	return m, nil
}

// ChannelStatus is the caller's relation to ch: JOINED, INVITED or
// NOT_PARTICIPATING.
func (s *Service) ChannelStatus(ctx context.Context, ch *models.Channel) (models.ChannelStatus, error) {
	me, err := s.MyMembership(ctx, ch)
	switch {
	case err != nil:
		return "", err
	case me == nil:
		return models.StatusNotParticipating, nil
	case me.Joined():
		return models.StatusJoined, nil
	default:
		return models.StatusInvited, nil
	}
}
