package db

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// columnLists caches Columns' and AliasedColumns' answers by model type,
// table and prefix.
var columnLists sync.Map // columnsKey → string

// columnsKey is a key of columnLists.
type columnsKey struct {
	model  reflect.Type
	table  string
	prefix string
}

// Columns returns the columns GORM maps model's fields to, each qualified
// by table ("m.id, m.channel_id, …"), for a query that selects a model's
// row through an alias or beside other values. Name them rather than write
// "table.*": a connection expands "*" with the schema it held when it
// prepared the statement, so after another node's migration adds a column,
// SQLite rebuilds the statement with more columns than it announced and
// PostgreSQL refuses the cached plan ("cached plan must not change result
// type"); named columns answer the same after the migration. Open sets
// GORM's QueryFields for the same reason. It is safe for concurrent use,
// and panics when model is not a GORM model, which is a programming error.
func Columns(g *gorm.DB, model any, table string) string {
	return columns(g, model, table, "")
}

// AliasedColumns is Columns with each column named prefix and its name
// ("u.id AS author_id, …"), for a model's row selected beside another
// model's: scan it into a field tagged
// `gorm:"embedded;embeddedPrefix:<prefix>"`. It is safe for concurrent
// use, and panics as Columns does.
func AliasedColumns(g *gorm.DB, model any, table, prefix string) string {
	return columns(g, model, table, prefix)
}

// columns is Columns, with each column aliased prefix and its name when
// prefix is not empty.
func columns(g *gorm.DB, model any, table, prefix string) string {
	key := columnsKey{reflect.TypeOf(model), table, prefix}
	if list, ok := columnLists.Load(key); ok {
		return list.(string)
	}
	stmt := &gorm.Statement{DB: g}
	if err := stmt.Parse(model); err != nil {
		panic(fmt.Sprintf("db.Columns(%T): %v", model, err))
	}
	cols := make([]string, len(stmt.Schema.DBNames))
	for i, name := range stmt.Schema.DBNames {
		cols[i] = table + "." + name
		if prefix != "" {
			cols[i] += " AS " + prefix + name
		}
	}
	list := strings.Join(cols, ", ")
	columnLists.Store(key, list)
	return list
}
