package db

import (
	"fmt"
	"reflect"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// columnLists caches Columns' answers by model type and table.
var columnLists sync.Map // columnsKey → string

// columnsKey is a key of columnLists.
type columnsKey struct {
	model reflect.Type
	table string
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
	key := columnsKey{reflect.TypeOf(model), table}
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
	}
	list := strings.Join(cols, ", ")
	columnLists.Store(key, list)
	return list
}
