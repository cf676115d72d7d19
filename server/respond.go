package server

import (
	"encoding/json"
	"fmt"
	"net/http"
)

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, body)
}

// writeGraphQLError answers with a GraphQL-shaped error body, so that
// GraphQL clients show the message.
func writeGraphQLError(w http.ResponseWriter, status int, code, format string, args ...any) {
	body := map[string]any{"errors": []any{map[string]any{
		"message":    fmt.Sprintf(format, args...),
		"extensions": map[string]any{"code": code},
	}}}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
