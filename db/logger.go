package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"
	"gorm.io/gorm/utils"
)

// slowQuery is the duration above which a statement is logged at warn level.
const slowQuery = 200 * time.Millisecond

// gormLogger sends GORM's messages to a *slog.Logger.
//
// Failed statements are logged at debug level only, because the caller gets
// the error and decides whether it matters; a missing record is never logged.
// Statements slower than slowQuery are logged at warn level. With GORM's info
// level (gorm.DB.Debug) every statement is logged at debug level. SQL is
// logged with placeholders, never with its arguments, which may be secret.
type gormLogger struct {
	log   *slog.Logger
	level gormlogger.LogLevel
	// observer, shared by the copies LogMode makes, is told of every
	// statement (Store.ObserveQueries).
	observer *atomic.Pointer[QueryObserver]
}

var (
	_ gormlogger.Interface = (*gormLogger)(nil)
	_ gorm.ParamsFilter    = (*gormLogger)(nil)
)

func init() {
	// gorm.DB.Scan records its statement through gormlogger.Recorder, which
	// consults this package variable instead of the logger's ParamsFilter.
	// GORM provides it to be replaced; without this, Raw(…).Scan would log
	// its arguments.
	gormlogger.RecorderParamsFilter = dropParams
}

// dropParams returns sql without its arguments.
func dropParams(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

// newGormLogger returns a gormLogger at GORM's warn level.
func newGormLogger(log *slog.Logger) *gormLogger {
	return &gormLogger{log: log, level: gormlogger.Warn, observer: new(atomic.Pointer[QueryObserver])}
}

// LogMode returns a copy of l at the given GORM level.
func (l *gormLogger) LogMode(level gormlogger.LogLevel) gormlogger.Interface {
	c := *l
	c.level = level
	return &c
}

// Info logs a GORM message at info level.
func (l *gormLogger) Info(ctx context.Context, msg string, args ...any) {
	if l.level >= gormlogger.Info {
		l.emit(ctx, slog.LevelInfo, fmt.Sprintf(msg, args...))
	}
}

// Warn logs a GORM message at warn level.
func (l *gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	if l.level >= gormlogger.Warn {
		l.emit(ctx, slog.LevelWarn, fmt.Sprintf(msg, args...))
	}
}

// Error logs a GORM message at error level.
func (l *gormLogger) Error(ctx context.Context, msg string, args ...any) {
	if l.level >= gormlogger.Error {
		l.emit(ctx, slog.LevelError, fmt.Sprintf(msg, args...))
	}
}

// Trace logs one executed statement, if it failed, was slow or l is at
// GORM's info level.
func (l *gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (sql string, rowsAffected int64), err error) {
	if obs := l.observer.Load(); obs != nil {
		sql, _ := fc()
		failed := err != nil && !errors.Is(err, gorm.ErrRecordNotFound)
		(*obs)(ctx, StatementKind(sql), begin, failed)
	}
	if l.level <= gormlogger.Silent || errors.Is(err, gorm.ErrRecordNotFound) {
		return
	}
	elapsed := time.Since(begin)
	var (
		level slog.Level
		msg   string
	)
	switch {
	case err != nil && l.level >= gormlogger.Error:
		level, msg = slog.LevelDebug, "sql failed"
	case elapsed > slowQuery && l.level >= gormlogger.Warn:
		level, msg = slog.LevelWarn, "slow sql"
	case l.level >= gormlogger.Info:
		level, msg = slog.LevelDebug, "sql"
	default:
		return
	}
	if !l.log.Enabled(ctx, level) {
		return
	}
	sql, rows := fc()
	attrs := []any{slog.String("sql", sql), slog.Duration("elapsed", elapsed)}
	if rows >= 0 {
		attrs = append(attrs, slog.Int64("rows", rows))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	l.emit(ctx, level, msg, attrs...)
}

// QueryObserver is told of each statement run through GORM, after it
// ran: its kind (StatementKind), when it began and whether it failed (a
// missing record is no failure). It runs on the caller's goroutine and must
// be quick and safe for concurrent use.
type QueryObserver func(ctx context.Context, kind string, begin time.Time, failed bool)

// StatementKind returns the kind of a SQL statement, a small fixed set:
// select, insert, update, delete or other (a WITH query counts as a
// select).
func StatementKind(sql string) string {
	word, _, _ := strings.Cut(strings.TrimLeft(sql, " \t\r\n("), " ")
	switch k := strings.ToLower(word); k {
	case "select", "insert", "update", "delete":
		return k
	case "with":
		return "select"
	}
	return "other"
}

// ParamsFilter drops the arguments of statements, so that logged SQL keeps
// its placeholders.
func (l *gormLogger) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	return dropParams(ctx, sql, params...)
}

// emit logs a record whose source is the code that called GORM.
func (l *gormLogger) emit(ctx context.Context, level slog.Level, msg string, attrs ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.log.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, utils.CallerFrame().PC)
	r.Add(attrs...)
	// A handler's write error has nowhere better to go than the handler.
	_ = l.log.Handler().Handle(ctx, r)
}
