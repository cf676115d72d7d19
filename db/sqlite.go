package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	ncdriver "github.com/ncruces/go-sqlite3/driver"
)

// sqliteTimeLayout is how time values are stored in SQLite: the layout
// Parley's earlier SQLite driver (glebarez/go-sqlite) wrote, so that
// databases it made keep one format in every column. For UTC times, which
// are all Parley writes, text comparison of this layout orders times
// correctly (RFC 3339 with a trimmed fraction and a "Z" does not), which
// the queries comparing or ordering by time columns rely on.
const sqliteTimeLayout = "2006-01-02 15:04:05.999999999-07:00"

// sqliteTimeParam is the driver's DSN parameter that makes sqliteTimeLayout
// the layout it decodes from DATETIME and TIMESTAMP columns, in one parse
// where its automatic detection tries several layouts in turn.
var sqliteTimeParam = "_timefmt=" + url.QueryEscape(sqliteTimeLayout)

// sqliteDSN returns the data source name of the SQLite file at path with
// the query params and sqliteTimeParam: a "file:" URI, with the characters
// that a URI path cannot hold as they are percent-encoded, which SQLite
// decodes.
func sqliteDSN(path, params string) string {
	var b strings.Builder
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		// An empty authority, so that a path starting with "//" is not
		// read as a host.
		b.WriteString("//")
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(path); i++ {
		c := path[i]
		if isURIPathByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	b.WriteByte('?')
	b.WriteString(params)
	b.WriteByte('&')
	b.WriteString(sqliteTimeParam)
	return b.String()
}

// isURIPathByte reports whether c may stand unescaped in the path of a
// SQLite URI.
func isURIPathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~/!$&'()*+,;=:@", c) >= 0
}

// openSQLitePool returns a connection pool on the SQLite file at path, each
// connection opened with the query params (pragmas and transaction mode,
// see sqliteParams). It connects on first use.
func openSQLitePool(path, params string) (*sql.DB, error) {
	c, err := newSQLiteConnector(path, params)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// newSQLiteConnector returns the connector of openSQLitePool.
func newSQLiteConnector(path, params string) (driver.Connector, error) {
	c, err := (&ncdriver.SQLite{}).OpenConnector(sqliteDSN(path, params))
	if err != nil {
		return nil, err
	}
	return sqliteConnector{c}, nil
}

// sqliteConnector opens connections of github.com/ncruces/go-sqlite3 that
// store and read time values as Parley's earlier driver did: written in
// sqliteTimeLayout, read back in UTC when their offset is zero.
//
// The driver decodes the values of columns declared as DATE, TIME,
// DATETIME or TIMESTAMP in sqliteTimeLayout (sqliteTimeParam); sqliteRows
// decodes those in the other formats SQLite knows, such as the ones River,
// goose and CURRENT_TIMESTAMP write ("2006-01-02 15:04:05.000", without an
// offset: UTC).
type sqliteConnector struct {
	driver.Connector
}

// Connect implements driver.Connector.
func (c sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	nc, ok := conn.(ncdriver.Conn)
	if !ok {
		return nil, errors.Join(fmt.Errorf("sqlite driver returned a %T", conn), conn.Close())
	}
	return &sqliteConn{Conn: nc}, nil
}

// sqliteConn is a connection of sqliteConnector, which keeps its repeated
// statements prepared (see connStmtCache).
type sqliteConn struct {
	ncdriver.Conn
	stmts connStmtCache
}

var (
	_ driver.ConnBeginTx        = (*sqliteConn)(nil)
	_ driver.ConnPrepareContext = (*sqliteConn)(nil)
	_ driver.ExecerContext      = (*sqliteConn)(nil)
	_ driver.NamedValueChecker  = (*sqliteConn)(nil)
)

// Prepare implements driver.Conn.
func (c *sqliteConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext implements driver.ConnPrepareContext: a query prepared
// before on this connection gets its cached statement.
func (c *sqliteConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.stmts.prepare(ctx, query, c.compile)
}

// compile prepares query on the connection, uncached.
func (c *sqliteConn) compile(ctx context.Context, query string) (*sqliteStmt, error) {
	st, err := c.Conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &sqliteStmt{st}, nil
}

// Close implements driver.Conn: the cached statements, then the
// connection.
func (c *sqliteConn) Close() error {
	return errors.Join(c.stmts.close(), c.Conn.Close())
}

// ExecContext implements driver.ExecerContext: the driver runs statements
// without arguments directly, and has database/sql prepare the others.
func (c *sqliteConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := c.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

// CheckNamedValue implements driver.NamedValueChecker.
func (c *sqliteConn) CheckNamedValue(nv *driver.NamedValue) error { return checkSQLiteValue(nv) }

// sqliteStmt is a prepared statement of a sqliteConn.
type sqliteStmt struct {
	driver.Stmt
}

var (
	_ driver.StmtExecContext   = (*sqliteStmt)(nil)
	_ driver.StmtQueryContext  = (*sqliteStmt)(nil)
	_ driver.NamedValueChecker = (*sqliteStmt)(nil)
)

// ExecContext implements driver.StmtExecContext.
func (s *sqliteStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

// QueryContext implements driver.StmtQueryContext.
func (s *sqliteStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	return &sqliteRows{rows}, nil
}

// CheckNamedValue implements driver.NamedValueChecker.
func (s *sqliteStmt) CheckNamedValue(nv *driver.NamedValue) error { return checkSQLiteValue(nv) }

// checkSQLiteValue converts an argument to a value the driver binds:
// database/sql's default conversion (driver.Valuer, pointers, integer and
// float kinds), then time values to text in sqliteTimeLayout.
func checkSQLiteValue(nv *driver.NamedValue) error {
	switch v := nv.Value.(type) {
	case nil, int64, float64, bool, string, []byte:
		return nil
	case time.Time:
		nv.Value = v.Format(sqliteTimeLayout)
		return nil
	}
	v, err := driver.DefaultParameterConverter.ConvertValue(nv.Value)
	if err != nil {
		return err
	}
	if t, ok := v.(time.Time); ok {
		v = t.Format(sqliteTimeLayout)
	}
	nv.Value = v
	return nil
}

// sqliteRows are the rows of a sqliteStmt: time values with a zero offset
// come back in UTC rather than in a zone of the same offset, and those of a
// time column not in sqliteTimeLayout as times too, not as text.
type sqliteRows struct {
	driver.Rows
}

var (
	_ driver.RowsColumnTypeDatabaseTypeName = (*sqliteRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*sqliteRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*sqliteRows)(nil)
)

// Next implements driver.Rows.
func (r *sqliteRows) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return r.explain(err, len(dest))
	}
	for i, v := range dest {
		switch v := v.(type) {
		case time.Time:
			dest[i] = inUTC(v)
		case string:
			if looksLikeDate(v) && r.isTimeColumn(i) {
				if t, err := sqlite3.TimeFormatAuto.Decode(v); err == nil {
					dest[i] = inUTC(t)
				}
			}
		}
	}
	return nil
}

// errSchemaChanged is the error of a row whose columns are not those the
// query announced: see sqliteRows.explain.
var errSchemaChanged = errors.New("the database schema changed after the query was prepared; run it again")

// explain returns err of Next with the reason when the statement has
// columns other than the announced columns: SQLite expands "SELECT *"
// with the schema the connection last read, and rebuilds the statement at
// its first step when another connection changed the schema meanwhile; the
// driver then reports SQLITE_MISUSE. The rebuilt statement is current, so
// the query succeeds when it runs again.
func (r *sqliteRows) explain(err error, announced int) error {
	if !errors.Is(err, sqlite3.MISUSE) {
		return err
	}
	if c, ok := r.Rows.(interface{ ColumnCount() int }); ok && c.ColumnCount() != announced {
		return fmt.Errorf("%w (%d columns, %d announced): %w", errSchemaChanged, c.ColumnCount(), announced, err)
	}
	return err
}

// isTimeColumn reports whether column i is declared as a time, for which
// the driver decodes text in sqliteTimeLayout only.
func (r *sqliteRows) isTimeColumn(i int) bool {
	switch r.ColumnTypeDatabaseTypeName(i) {
	case "DATE", "TIME", "DATETIME", "TIMESTAMP":
		return true
	}
	return false
}

// looksLikeDate reports whether s starts like a date, YYYY-MM-DD.
func looksLikeDate(s string) bool {
	return len(s) >= len("2006-01-02") && s[4] == '-' && s[7] == '-'
}

// inUTC returns t in UTC if its offset is zero, else unchanged.
func inUTC(t time.Time) time.Time {
	if _, offset := t.Zone(); offset == 0 && t.Location() != time.UTC {
		return t.UTC()
	}
	return t
}

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (r *sqliteRows) ColumnTypeDatabaseTypeName(i int) string {
	return r.Rows.(driver.RowsColumnTypeDatabaseTypeName).ColumnTypeDatabaseTypeName(i)
}

// ColumnTypeNullable implements driver.RowsColumnTypeNullable.
func (r *sqliteRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	return r.Rows.(driver.RowsColumnTypeNullable).ColumnTypeNullable(i)
}

// ColumnTypeScanType implements driver.RowsColumnTypeScanType.
func (r *sqliteRows) ColumnTypeScanType(i int) reflect.Type {
	return r.Rows.(driver.RowsColumnTypeScanType).ColumnTypeScanType(i)
}
