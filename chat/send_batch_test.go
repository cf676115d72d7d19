package chat

import (
	"strings"
	"testing"
)

// TestShiftPlaceholders: every $n of a statement moves past the arguments
// of the statements before it, two-digit ones too, and the rest is kept.
func TestShiftPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		stmt string
		by   int
		want string
	}{
		{`UPDATE "members" SET "x"=$1 WHERE id IN ($2,$3)`, 0, `UPDATE "members" SET "x"=$1 WHERE id IN ($2,$3)`},
		{`INSERT INTO t (a,b) VALUES ($1,$2),($9,$10)`, 17, `INSERT INTO t (a,b) VALUES ($18,$19),($26,$27)`},
		{`SELECT CAST($1 AS jsonb)`, 99, `SELECT CAST($100 AS jsonb)`},
		{`no placeholders`, 5, `no placeholders`},
	} {
		var sql strings.Builder
		sql.WriteString("> ")
		shiftPlaceholders(&sql, tc.stmt, tc.by)
		if got := sql.String(); got != "> "+tc.want {
			t.Errorf("shiftPlaceholders(%q, %d) wrote %q; want %q", tc.stmt, tc.by, got, "> "+tc.want)
		}
	}
}
