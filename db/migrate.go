package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// migrateLockKey is the PostgreSQL advisory lock that serialises Migrate
// calls of all Parley processes sharing a database ("parley" in ASCII).
const migrateLockKey int64 = 0x7061726c6579

// Migrate creates or updates the tables of models with GORM's AutoMigrate.
// Each model is a pointer to a struct, as for gorm.DB.AutoMigrate.
//
// Migrate is safe for concurrent use, also by several processes: the whole
// migration is one transaction, serialised by an advisory lock on PostgreSQL
// and by SQLite's write lock on SQLite. On SQLite it follows SQLite's
// procedure for schema changes: foreign key enforcement is off while GORM
// rebuilds a table (so dropping the old copy deletes nothing through ON
// DELETE CASCADE), and if the schema changed, PRAGMA foreign_key_check must
// pass before the transaction commits.
func (s *Store) Migrate(ctx context.Context, models ...any) error {
	if len(models) == 0 {
		return nil
	}
	var err error
	if s.dialect == DialectSQLite {
		err = s.migrateSQLite(ctx, models)
	} else {
		err = s.Write(ctx, func(tx *gorm.DB) error {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrateLockKey).Error; err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
			return tx.AutoMigrate(models...)
		})
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", modelNames(models), err)
	}
	return nil
}

// modelNames lists the types of models, for error messages.
func modelNames(models []any) string {
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = fmt.Sprintf("%T", m)
	}
	return strings.Join(names, ", ")
}

// migrateSQLite runs AutoMigrate on SQLite on one pinned connection with
// foreign keys off, inside one immediate transaction.
func (s *Store) migrateSQLite(ctx context.Context, models []any) error {
	unlock, err := s.lockWriters(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	// PRAGMA foreign_keys applies to one connection and is ignored inside a
	// transaction, so it is set on a pinned connection before BEGIN.
	return s.gorm.WithContext(ctx).Connection(func(conn *gorm.DB) (err error) {
		if err := conn.Exec("PRAGMA foreign_keys = OFF").Error; err != nil {
			return fmt.Errorf("disable foreign keys: %w", err)
		}
		defer func() {
			// Restore enforcement even if ctx has ended; a connection that
			// cannot be restored must not go back to the pool.
			restore := conn.WithContext(context.WithoutCancel(ctx)).Exec("PRAGMA foreign_keys = ON").Error
			if restore != nil {
				err = errors.Join(err, fmt.Errorf("enable foreign keys: %w", restore))
				if pinned, ok := conn.Statement.ConnPool.(*sql.Conn); ok {
					discard(pinned)
				}
			}
		}()
		return conn.Transaction(func(tx *gorm.DB) error {
			before, err := schemaVersion(tx)
			if err != nil {
				return err
			}
			if err := tx.AutoMigrate(models...); err != nil {
				return err
			}
			after, err := schemaVersion(tx)
			if err != nil {
				return err
			}
			if after == before {
				return nil
			}
			return checkForeignKeys(tx)
		})
	})
}

// discard makes database/sql close conn instead of returning it to the pool.
func discard(conn *sql.Conn) {
	// Raw hands back the ErrBadConn returned here; that error is the point.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// schemaVersion returns SQLite's schema cookie, which every schema change
// increments.
func schemaVersion(tx *gorm.DB) (int64, error) {
	var v int64
	if err := tx.Raw("PRAGMA schema_version").Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// fkViolation is one row of PRAGMA foreign_key_check.
type fkViolation struct {
	Table  string
	Rowid  *int64
	Parent string
	Fkid   int64
}

// checkForeignKeys fails if any row of the database breaks a foreign key.
func checkForeignKeys(tx *gorm.DB) error {
	var violations []fkViolation
	if err := tx.Raw("PRAGMA foreign_key_check").Scan(&violations).Error; err != nil {
		return fmt.Errorf("check foreign keys: %w", err)
	}
	if len(violations) == 0 {
		return nil
	}
	v := violations[0]
	row := "a row without rowid"
	if v.Rowid != nil {
		row = fmt.Sprintf("rowid %d", *v.Rowid)
	}
	return fmt.Errorf("check foreign keys: %d rows break a foreign key, the first %s of %s referencing %s", len(violations), row, v.Table, v.Parent)
}
