package main

import (
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// post sends one GraphQL document as token and returns the status and the
// first error's code ("" when none).
func post(t *testing.T, base, token, query string) (int, string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query})
	if err != nil {
		t.Fatal(err)
	}
	status, resp := postGraphQL(t, base, token, string(body))
	var out struct {
		Errors []struct {
			Extensions struct{ Code string }
		}
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatalf("decode %s: %v", resp, err)
	}
	if len(out.Errors) == 0 {
		return status, ""
	}
	return status, out.Errors[0].Extensions.Code
}

// TestQueryLimitsFromEnvironment: PARLEY_MAX_QUERY_FIELDS and
// PARLEY_MAX_QUERY_FRAGMENTS reach the server.
func TestQueryLimitsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":               "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
		"PARLEY_JWT_SECRET":          strings.Repeat("s", 32),
		"PARLEY_MAX_QUERY_FIELDS":    "4",
		"PARLEY_MAX_QUERY_FRAGMENTS": "1",
	}
	token := mintToken(t, env, "--identity", "alice")
	base, _, _ := startServe(t, env)
	for _, c := range []struct{ query, code string }{
		{`{ me { id identity friendlyName } }`, ""},
		{`{ me { id identity friendlyName createdAt } }`, "BAD_USER_INPUT"},
		{`{ me { ...A } } fragment A on User { id }`, ""},
		{`{ me { ...A } } fragment A on User { id ...B } fragment B on User { id }`, "BAD_USER_INPUT"},
	} {
		if _, code := post(t, base, token, c.query); code != c.code {
			t.Errorf("%s: code %q, want %q", c.query, code, c.code)
		}
	}
}

// TestInvalidHardeningVariables: each variable of the limits stops the
// server at start when set to something it cannot use.
func TestInvalidHardeningVariables(t *testing.T) {
	for name, value := range map[string]string{
		"PARLEY_MAX_QUERY_FIELDS":    "0",
		"PARLEY_MAX_QUERY_FRAGMENTS": "many",
		"PARLEY_REQUEST_TIMEOUT":     "-1s",
	} {
		env := map[string]string{name: value, "DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db")}
		err := run(t.Context(), []string{"serve"}, envOf(env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: error %v, want it to name the variable", name, value, err)
		}
	}
}

// TestRateLimitsFromEnvironment: the rate variables reach the server, and
// PARLEY_RATE_LIMITS=off turns them all off.
func TestRateLimitsFromEnvironment(t *testing.T) {
	const create = `mutation { createChannel(input: {type: PUBLIC}) { id } }`
	for _, c := range []struct {
		env    map[string]string
		status []int // of three mutations
	}{
		{map[string]string{"PARLEY_RATE_MUTATIONS": "1/h", "PARLEY_RATE_MUTATIONS_BURST": "2"}, []int{200, 200, 429}},
		{map[string]string{"PARLEY_RATE_MUTATIONS": "1/h", "PARLEY_RATE_MUTATIONS_BURST": "1"}, []int{200, 429, 429}},
		{map[string]string{"PARLEY_RATE_MUTATIONS": "1/h", "PARLEY_RATE_MUTATIONS_BURST": "1", "PARLEY_RATE_LIMITS": "off"}, []int{200, 200, 200}},
		{map[string]string{"PARLEY_RATE_MUTATIONS": "off", "PARLEY_RATE_MUTATIONS_BURST": "1"}, []int{200, 200, 200}},
	} {
		env := map[string]string{
			"DATABASE_URL":      "sqlite://" + filepath.Join(t.TempDir(), "p.db"),
			"PARLEY_JWT_SECRET": strings.Repeat("s", 32),
		}
		for k, v := range c.env {
			env[k] = v
		}
		token := mintToken(t, env, "--identity", "alice")
		base, _, stop := startServe(t, env)
		for i, want := range c.status {
			if status, code := post(t, base, token, create); status != want || (want == 429) != (code == "RATE_LIMITED") {
				t.Errorf("%v: mutation %d: %d %s, want %d", c.env, i+1, status, code, want)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	for name, value := range map[string]string{
		"PARLEY_RATE_LIMITS":            "maybe",
		"PARLEY_RATE_MUTATIONS":         "20",
		"PARLEY_RATE_TYPING":            "1/never",
		"PARLEY_RATE_CONNECTIONS":       "0/s",
		"PARLEY_RATE_CONNECTIONS_BURST": "0",
		"PARLEY_RATE_OPEN_CONNECTIONS":  "-5",
	} {
		env := map[string]string{name: value, "DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "p.db")}
		err := run(t.Context(), []string{"serve"}, envOf(env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: error %v, want it to name the variable", name, value, err)
		}
	}
}
