package db

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
)

// connStmtCacheSize bounds the statements one SQLite connection keeps
// prepared, and separately the queries it remembers having seen once. A
// send batch alone runs some ten statements, each in a variant per batch
// size (its IN lists), and River's queue some more.
const connStmtCacheSize = 256

// connStmtCache keeps a SQLite connection's repeated statements prepared.
//
// database/sql prepares every query with arguments, GORM's and River's
// (which runs on the *sql.Tx of the write its jobs belong to) alike, and
// closes the statement when the query is done: SQLite would then compile
// the query again at each execution (compiling River's job insert was two
// thirds of its cost in a send batch). This cache serves the second and
// later prepares of a query on the connection from the statement compiled
// the first time it was prepared again: a query seen once is prepared and
// closed as before, so that one-off SQL (an IN list of a new length) does
// not push the statements that repeat out of the cache. GORM's own
// PrepareStmt cannot do this: it binds a statement first prepared in a
// transaction to that transaction, so each later transaction prepares it
// again.
//
// A cached statement is lent to one caller at a time; a prepare of the
// same query while it is lent gets a statement of its own. The least
// recently used statements beyond connStmtCacheSize are closed, those
// lent when they come back. database/sql uses a driver connection from
// one goroutine at a time, statement closes included, so the cache has
// no lock.
type connStmtCache struct {
	entries map[string]*list.Element // query → element of lru
	lru     list.List                // *connStmt, most recently used first
	seen    map[string]struct{}
}

// connStmt is one statement of a connStmtCache.
type connStmt struct {
	query   string
	stmt    *sqliteStmt
	lent    bool
	evicted bool
}

// lentStmt is a cached statement lent to a caller: closing it gives it
// back to the cache.
type lentStmt struct {
	*sqliteStmt
	entry *connStmt
}

// resetter is the statement reset of github.com/ncruces/go-sqlite3.
type resetter interface{ Reset() error }

// Close implements driver.Stmt: the statement goes back to the cache,
// reset, or is closed when the cache dropped it meanwhile.
func (s *lentStmt) Close() error {
	e := s.entry
	e.lent = false
	if e.evicted {
		return e.stmt.Close()
	}
	if r, ok := e.stmt.Stmt.(resetter); ok {
		return r.Reset()
	}
	return nil
}

// prepare returns a statement of query: the cached one when it is not
// lent, else one that prepare compiles, kept when query was seen before.
func (c *connStmtCache) prepare(ctx context.Context, query string, compile func(context.Context, string) (*sqliteStmt, error)) (driver.Stmt, error) {
	if el, ok := c.entries[query]; ok {
		e := el.Value.(*connStmt)
		if !e.lent {
			e.lent = true
			c.lru.MoveToFront(el)
			return &lentStmt{sqliteStmt: e.stmt, entry: e}, nil
		}
		return compile(ctx, query)
	}
	st, err := compile(ctx, query)
	if err != nil {
		return nil, err
	}
	if _, ok := c.seen[query]; !ok {
		if c.seen == nil || len(c.seen) >= connStmtCacheSize {
			c.seen = make(map[string]struct{}, connStmtCacheSize)
		}
		c.seen[query] = struct{}{}
		return st, nil
	}
	delete(c.seen, query)
	// Room first, so that a statement whose close fails leaves the new one
	// out of the cache rather than cached and closed.
	var errs []error
	for c.lru.Len() >= connStmtCacheSize {
		old := c.lru.Remove(c.lru.Back()).(*connStmt)
		delete(c.entries, old.query)
		if old.lent {
			old.evicted = true
		} else {
			errs = append(errs, old.stmt.Close())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	if c.entries == nil {
		c.entries = make(map[string]*list.Element, connStmtCacheSize)
	}
	e := &connStmt{query: query, stmt: st, lent: true}
	c.entries[query] = c.lru.PushFront(e)
	return &lentStmt{sqliteStmt: st, entry: e}, nil
}

// close closes every cached statement that is not lent; the lent ones are
// closed when they come back.
func (c *connStmtCache) close() error {
	var errs []error
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*connStmt)
		if e.lent {
			e.evicted = true
		} else {
			errs = append(errs, e.stmt.Close())
		}
	}
	c.lru.Init()
	c.entries = nil
	return errors.Join(errs...)
}

// queries returns the cached statements' queries, most recently used
// first.
func (c *connStmtCache) queries() []string {
	out := make([]string, 0, c.lru.Len())
	for el := c.lru.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*connStmt).query)
	}
	return out
}
