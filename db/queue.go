package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/gorm"
)

// queuePoolConns caps the SQLite connections of QueueDB: its writers queue
// behind Write's anyway, so a few serve the job queue's concurrent readers.
const queuePoolConns = 4

// SQLTx returns the database/sql transaction under tx, a transaction that
// Write passed to its function, so that a library taking a *sql.Tx (the job
// queue) writes in the same transaction. It fails when tx is not inside a
// transaction.
func SQLTx(tx *gorm.DB) (*sql.Tx, error) {
	sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return nil, fmt.Errorf("not inside a transaction: the connection pool is a %T", tx.Statement.ConnPool)
	}
	return sqlTx, nil
}

// QueueDB returns the connection pool for a job queue's own statements (its
// polling, locking and bookkeeping), on the Store's database. On PostgreSQL
// it is the Store's pool. On SQLite it is a pool of its own, opened on first
// use and closed by Close, whose transactions and statements queue behind
// Write's writers and Write's behind them, on the same Go-side lock: a
// queue polling under a steady load of sends never waits on SQLite's busy
// handler, and never starves.
//
// A transaction of this pool must not call Write, and a Write must not use
// this pool (a job inserted in a Write goes through that Write's
// transaction, see SQLTx): either would wait for itself. It is safe for
// concurrent use.
func (s *Store) QueueDB() (*sql.DB, error) {
	if s.dialect != DialectSQLite {
		return s.sqlDB, nil
	}
	s.queueOnce.Do(func() {
		conns, err := newSQLiteConnector(s.target, sqliteParams)
		if err != nil {
			s.queueErr = fmt.Errorf("open queue pool: %w", err)
			return
		}
		q := sql.OpenDB(&queuedConnector{Connector: conns, slot: s.writeSlot})
		q.SetMaxOpenConns(queuePoolConns)
		q.SetMaxIdleConns(queuePoolConns)
		q.SetConnMaxIdleTime(connMaxIdleTime)
		s.queueDB.Store(q)
	})
	return s.queueDB.Load(), s.queueErr
}

// ListenerPool opens a pgx pool of one connection on the Store's PostgreSQL
// database (the same URL, search_path included), for a job queue's LISTEN;
// the caller closes it. It fails on SQLite.
func (s *Store) ListenerPool(ctx context.Context) (*pgxpool.Pool, error) {
	if s.dialect != DialectPostgres {
		return nil, errors.New("a listener pool needs PostgreSQL")
	}
	cfg, err := pgxpool.ParseConfig(s.rawURL)
	if err != nil {
		return nil, fmt.Errorf("listener pool for %s: %w", s.target, err)
	}
	cfg.MaxConns = 1
	cfg.MinConns = 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("listener pool for %s: %w", s.target, err)
	}
	return pool, nil
}

// queuedConnector opens SQLite connections whose transactions and
// statements outside a transaction hold slot, the Store's writer lock,
// while they run.
type queuedConnector struct {
	driver.Connector
	slot chan struct{}
}

// Connect implements driver.Connector.
func (c *queuedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &queuedConn{Conn: conn, slot: c.slot}, nil
}

// queuedConn is a SQLite connection that takes the writer lock for each
// transaction, from BEGIN to COMMIT or ROLLBACK, and for each statement run
// outside one, until its rows are closed. database/sql never uses one
// connection from two goroutines at once, so inTx needs no lock.
type queuedConn struct {
	driver.Conn
	slot chan struct{}
	inTx bool
}

var (
	_ driver.ConnBeginTx        = (*queuedConn)(nil)
	_ driver.ConnPrepareContext = (*queuedConn)(nil)
	_ driver.ExecerContext      = (*queuedConn)(nil)
	_ driver.QueryerContext     = (*queuedConn)(nil)
	_ driver.Pinger             = (*queuedConn)(nil)
	_ driver.NamedValueChecker  = (*queuedConn)(nil)
)

// lock takes the writer lock unless the connection is in a transaction,
// which holds it already, and returns its release.
func (c *queuedConn) lock(ctx context.Context) (func(), error) {
	if c.inTx {
		return func() {}, nil
	}
	select {
	case c.slot <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-c.slot }) }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for sqlite writer lock: %w", context.Cause(ctx))
	}
}

// Begin implements driver.Conn.
func (c *queuedConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx implements driver.ConnBeginTx: the transaction holds the writer
// lock until it ends.
func (c *queuedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	unlock, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	var tx driver.Tx
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.Conn.Begin()
	}
	if err != nil {
		unlock()
		return nil, err
	}
	c.inTx = true
	return &queuedTx{Tx: tx, end: func() { c.inTx = false; unlock() }}, nil
}

// PrepareContext implements driver.ConnPrepareContext.
func (c *queuedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var (
		st  driver.Stmt
		err error
	)
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &queuedStmt{Stmt: st, conn: c}, nil
}

// Prepare implements driver.Conn.
func (c *queuedConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// ExecContext implements driver.ExecerContext.
func (c *queuedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.Conn.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return e.ExecContext(ctx, query, args)
}

// QueryContext implements driver.QueryerContext: outside a transaction the
// lock is held until the rows are closed, since a statement such as UPDATE
// … RETURNING writes while it is read.
func (c *queuedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	unlock, err := c.lock(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != nil {
		unlock()
		return nil, err
	}
	return &queuedRows{Rows: rows, unlock: unlock}, nil
}

// Ping implements driver.Pinger.
func (c *queuedConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// CheckNamedValue implements driver.NamedValueChecker with the driver's
// own conversion when it has one.
func (c *queuedConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// queuedTx releases the writer lock when the transaction ends.
type queuedTx struct {
	driver.Tx
	end func()
}

// Commit implements driver.Tx.
func (t *queuedTx) Commit() error {
	defer t.end()
	return t.Tx.Commit()
}

// Rollback implements driver.Tx.
func (t *queuedTx) Rollback() error {
	defer t.end()
	return t.Tx.Rollback()
}

// queuedStmt is a prepared statement of a queuedConn: run outside a
// transaction, it holds the writer lock as the connection's statements do.
type queuedStmt struct {
	driver.Stmt
	conn *queuedConn
}

// ExecContext implements driver.StmtExecContext.
func (s *queuedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	unlock, err := s.conn.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	values, err := namedToValues(args)
	if err != nil {
		return nil, err
	}
	return s.Stmt.Exec(values)
}

// QueryContext implements driver.StmtQueryContext.
func (s *queuedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	unlock, err := s.conn.lock(ctx)
	if err != nil {
		return nil, err
	}
	var rows driver.Rows
	if q, ok := s.Stmt.(driver.StmtQueryContext); ok {
		rows, err = q.QueryContext(ctx, args)
	} else {
		var values []driver.Value
		if values, err = namedToValues(args); err == nil {
			rows, err = s.Stmt.Query(values)
		}
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return &queuedRows{Rows: rows, unlock: unlock}, nil
}

// namedToValues drops the names of positional arguments.
func namedToValues(args []driver.NamedValue) ([]driver.Value, error) {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		if a.Name != "" {
			return nil, errors.New("named arguments need a driver with context support")
		}
		out[i] = a.Value
	}
	return out, nil
}

// queuedRows releases the writer lock when closed.
type queuedRows struct {
	driver.Rows
	unlock func()
}

// Close implements driver.Rows.
func (r *queuedRows) Close() error {
	defer r.unlock()
	return r.Rows.Close()
}

// ColumnTypeDatabaseTypeName implements
// driver.RowsColumnTypeDatabaseTypeName when the driver's rows do.
func (r *queuedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}
