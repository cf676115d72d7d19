// Package hostile builds the GraphQL documents of a denial-of-service probe
// against Parley (issue 9): small documents whose naive handling costs time
// exponential or quadratic in their size. The server's tests check that
// each is refused cheaply, parley-bench's hostile scenario measures the
// server CPU each costs, and the HTTP handler's fuzz test starts from them.
// The package is pure: it only builds strings, and is safe for concurrent
// use.
package hostile

import (
	"fmt"
	"strings"
)

// Document is one hostile document.
type Document struct {
	// Name says what the document does, e.g. "fragment-doubling".
	Name string
	// Scale is how many times the document it is: 1 is the
	// issue's own, 10 ten times as large.
	Scale int
	// Query is the GraphQL document.
	Query string
}

// Documents returns every hostile document at scale (1 for the issue's
// own; 10 for ten times as large).
func Documents(scale int) []Document {
	return []Document{
		{Name: "fragment-doubling", Scale: scale, Query: FragmentDoubling(40 * scale)},
		{Name: "conflicting-fields", Scale: scale, Query: ConflictingFields(499 * scale)},
		{Name: "fragment-cycle", Scale: scale, Query: FragmentCycle(800 * scale)},
	}
}

// FragmentDoubling is `{ me { ...Fn } }` where fragment Fi spreads F(i-1)
// twice: expanding the spreads visits 2^n selections.
func FragmentDoubling(n int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "{me{...F%d}} fragment F0 on User{id friendlyName}", n)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&sb, " fragment F%d on User{...F%d ...F%d}", i, i-1, i-1)
	}
	return sb.String()
}

// ConflictingFields selects user n times under one response name with n
// different arguments: validation compares every pair, n(n-1)/2 conflicts.
func ConflictingFields(n int) string {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range n {
		fmt.Fprintf(&sb, ` user(identity:"a%d"){id}`, i)
	}
	sb.WriteString("}")
	return sb.String()
}

// FragmentCycle is n fragments, each spreading the next, the last the
// first.
func FragmentCycle(n int) string {
	var sb strings.Builder
	sb.WriteString("{me{...C0}}")
	for i := range n {
		fmt.Fprintf(&sb, " fragment C%d on User{...C%d}", i, (i+1)%n)
	}
	return sb.String()
}

// SameField selects __typename n times: valid, and the most validation
// work a document of n fields causes, since validation compares the
// fields of one response name pairwise.
func SameField(n int) string {
	return "{" + strings.Repeat(" __typename", n) + " }"
}
