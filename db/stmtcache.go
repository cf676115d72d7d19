package db

import (
	"container/list"
	"context"
	"database/sql"
	"errors"
	"sync"

	"gorm.io/gorm"
)

// stmtCacheSize bounds the statements a stmtCache keeps prepared, and
// separately the statements it has seen once.
const stmtCacheSize = 256

// stmtCache is GORM's connection pool on SQLite: it keeps the statements
// that run more than once prepared, so that SQLite compiles each of them
// once per connection instead of at every execution, in transactions too.
//
// A statement is prepared on its second execution (GORM writes some SQL
// once, such as IN lists of a new length, and preparing those would only
// add work), on the *sql.DB; database/sql then prepares it on each
// connection that runs it and keeps it there, and a transaction uses it
// through sql.Tx.StmtContext. The least recently used statements beyond
// stmtCacheSize are closed once no call uses them. GORM's own PrepareStmt
// cannot do this: it binds a statement first prepared in a transaction to
// that transaction, so each later transaction prepares it again.
//
// A stmtCache is safe for concurrent use.
type stmtCache struct {
	db *sql.DB

	mu sync.Mutex
	// entries maps a query to its element in prepared or seen.
	entries map[string]*list.Element
	// prepared holds the *cachedStmt with a statement, seen those run once,
	// each most recently used first.
	prepared, seen list.List
	closed         bool
}

// cachedStmt is a query of a stmtCache.
type cachedStmt struct {
	query string
	// stmt is the prepared statement, nil while the query is in seen.
	stmt *sql.Stmt
	// refs counts the calls using stmt; evicted is set when the cache drops
	// it, and the last call closes it.
	refs    int
	evicted bool
	// preparing is set while a call prepares the query; the others run it
	// unprepared meanwhile.
	preparing bool
}

var (
	_ gorm.ConnPool         = (*stmtCache)(nil)
	_ gorm.ConnPoolBeginner = (*stmtCache)(nil)
	_ gorm.GetDBConnector   = (*stmtCache)(nil)
	_ gorm.Tx               = (*stmtCacheTx)(nil)
)

// newStmtCache returns a stmtCache on db.
func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, entries: map[string]*list.Element{}}
}

// acquire returns the prepared statement of query and the function that
// releases it, or nil when query is to run unprepared: the first time it
// is seen, while another call prepares it, or when preparing it failed (the
// unprepared run then reports the error).
func (c *stmtCache) acquire(ctx context.Context, query string) (*sql.Stmt, func()) {
	c.mu.Lock()
	el, ok := c.entries[query]
	if !ok {
		if !c.closed {
			c.entries[query] = c.seen.PushFront(&cachedStmt{query: query})
			c.trim(&c.seen)
		}
		c.mu.Unlock()
		return nil, nil
	}
	e := el.Value.(*cachedStmt)
	if e.stmt != nil {
		c.prepared.MoveToFront(el)
		e.refs++
		c.mu.Unlock()
		return e.stmt, func() { c.release(e) }
	}
	if e.preparing {
		c.mu.Unlock()
		return nil, nil
	}
	e.preparing = true
	c.mu.Unlock()

	st, err := c.db.PrepareContext(ctx, query)

	c.mu.Lock()
	defer c.mu.Unlock()
	e.preparing = false
	if err != nil {
		return nil, nil
	}
	e.stmt = st
	e.refs++
	if e.evicted {
		// Dropped from seen meanwhile: the statement serves this call,
		// whose release closes it.
		return st, func() { c.release(e) }
	}
	c.seen.Remove(el)
	c.entries[query] = c.prepared.PushFront(e)
	c.trim(&c.prepared)
	return st, func() { c.release(e) }
}

// trim drops the least recently used entries of l beyond stmtCacheSize.
// c.mu must be held.
func (c *stmtCache) trim(l *list.List) {
	for l.Len() > stmtCacheSize {
		c.evict(l, l.Back())
	}
}

// evict drops el from l, closing its statement unless a call uses it (the
// last one closes it). c.mu must be held.
func (c *stmtCache) evict(l *list.List, el *list.Element) {
	e := l.Remove(el).(*cachedStmt)
	delete(c.entries, e.query)
	e.evicted = true
	if e.stmt != nil && e.refs == 0 {
		// Closing waits for nothing: a statement whose rows are open
		// is closed when they are.
		_ = e.stmt.Close()
	}
}

// release ends a call's use of e's statement.
func (c *stmtCache) release(e *cachedStmt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	if e.evicted && e.refs == 0 && e.stmt != nil {
		_ = e.stmt.Close()
	}
}

// close closes every kept statement; later calls run unprepared.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for c.prepared.Len() > 0 {
		c.evict(&c.prepared, c.prepared.Back())
	}
	for c.seen.Len() > 0 {
		c.evict(&c.seen, c.seen.Back())
	}
}

// PrepareContext implements gorm.ConnPool: the caller owns the statement.
func (c *stmtCache) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return c.db.PrepareContext(ctx, query)
}

// ExecContext implements gorm.ConnPool.
func (c *stmtCache) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, release := c.acquire(ctx, query)
	if st == nil {
		return c.db.ExecContext(ctx, query, args...)
	}
	defer release()
	return st.ExecContext(ctx, args...)
}

// QueryContext implements gorm.ConnPool.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, release := c.acquire(ctx, query)
	if st == nil {
		return c.db.QueryContext(ctx, query, args...)
	}
	defer release()
	return st.QueryContext(ctx, args...)
}

// QueryRowContext implements gorm.ConnPool.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, release := c.acquire(ctx, query)
	if st == nil {
		return c.db.QueryRowContext(ctx, query, args...)
	}
	defer release()
	return st.QueryRowContext(ctx, args...)
}

// BeginTx implements gorm.ConnPoolBeginner.
func (c *stmtCache) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := c.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &stmtCacheTx{Tx: tx, cache: c}, nil
}

// GetDBConn implements gorm.GetDBConnector.
func (c *stmtCache) GetDBConn() (*sql.DB, error) {
	return c.db, nil
}

// stmtCacheTx is a transaction of a stmtCache, running the cache's
// statements on its connection.
type stmtCacheTx struct {
	*sql.Tx
	cache *stmtCache
}

// ExecContext implements gorm.ConnPool.
func (t *stmtCacheTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, release := t.cache.acquire(ctx, query)
	if st == nil {
		return t.Tx.ExecContext(ctx, query, args...)
	}
	defer release()
	return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// QueryContext implements gorm.ConnPool.
func (t *stmtCacheTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, release := t.cache.acquire(ctx, query)
	if st == nil {
		return t.Tx.QueryContext(ctx, query, args...)
	}
	defer release()
	return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

// QueryRowContext implements gorm.ConnPool.
func (t *stmtCacheTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, release := t.cache.acquire(ctx, query)
	if st == nil {
		return t.Tx.QueryRowContext(ctx, query, args...)
	}
	defer release()
	return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

// GetDBConn implements gorm.GetDBConnector.
func (t *stmtCacheTx) GetDBConn() (*sql.DB, error) {
	return t.cache.db, nil
}

// sqlTxOf returns the *sql.Tx under a GORM transaction's connection pool.
func sqlTxOf(pool gorm.ConnPool) (*sql.Tx, error) {
	switch p := pool.(type) {
	case *sql.Tx:
		return p, nil
	case *stmtCacheTx:
		return p.Tx, nil
	}
	return nil, errors.New("not inside a transaction")
}
