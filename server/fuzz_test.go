package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/bench/hostile"
	"github.com/parleychat/parley/parleytest"
	"github.com/parleychat/parley/server"
)

// Fuzz modes: how FuzzHTTPHandler sends its input.
const (
	fuzzJSON  = iota // POST {"query": doc, "variables": vars}, header as Accept
	fuzzRaw          // POST doc as the body, header as Content-Type
	fuzzGET          // GET ?query=doc&variables=vars, header as Authorization
	fuzzModes        // how many there are
)

// FuzzHTTPHandler sends documents, variables and headers to the real
// handler, over plain HTTP POST and GET (streams are left out: a
// subscription would wait for events), and checks what every answer must
// be, whatever the input:
//   - no 5xx;
//   - a GraphQL-shaped JSON body, in which every error has extensions.code,
//     at most 21 errors, none with a message over 1 KB;
//   - the analysis of the document before validation visits at most a few
//     times the selections written in it (bounded work, counted rather
//     than timed).
//
// The seeds are the documents and requests of the issue 9 probe. Plain
// go test runs the seeds; .ci/run fuzzes for 20 s; see the README for
// longer runs.
func FuzzHTTPHandler(f *testing.F) {
	for _, scale := range []int{1, 10} {
		for _, d := range hostile.Documents(scale) {
			f.Add(d.Query, "", "", uint8(fuzzJSON))
		}
	}
	for _, seed := range []struct {
		doc, vars, header string
		mode              uint8
	}{
		{`{ me { id identity } }`, `{}`, "application/json", fuzzJSON},
		{`query($c: ID!) { messages(channelId: $c, last: 100) { edges { node { id body } } } }`, `{"c": "x"}`, "", fuzzJSON},
		{`mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }`, `{"in": {"channelId": "x", "body": "a\u0000b"}}`, "", fuzzJSON},
		{`mutation { createChannel(input: {type: PUBLIC, uniqueName: "z"}) { id } }`, `[1, 2]`, "", fuzzJSON},
		{`{ user(identity: "\u0000") { id } }`, ``, "application/graphql-response+json", fuzzJSON},
		{`{ __schema { types { name } } }`, ``, "", fuzzJSON},
		{`{"query": "{ me { id } }"`, ``, "application/json", fuzzRaw},
		{`[{"query": "{ me { id } }"}, {"query": "{ me { id } }"}]`, ``, "application/json", fuzzRaw},
		{`{"query": "{ me { id } }", "variables": [1, 2]}`, ``, "application/json", fuzzRaw},
		{`{"query": "{ me { id } }"}`, ``, "text/plain", fuzzRaw},
		{`query=%7B+me+%7B+id+%7D+%7D`, ``, "application/x-www-form-urlencoded", fuzzRaw},
		{`{ me { id } }`, `[1]`, "Bearer not-a-token", fuzzGET},
		{`mutation { startTyping(channelId: "x") }`, ``, "", fuzzGET},
		{"{ user(identity: \"\xff\") { id } }", ``, "", fuzzGET},
	} {
		f.Add(seed.doc, seed.vars, seed.header, seed.mode)
	}

	srv := parleytest.NewServer(f, parleytest.Backends()[0], parleytest.Options{})
	token := "Bearer " + srv.Token("fuzzer")
	client := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, doc, vars, header string, mode uint8) {
		var req *http.Request
		var err error
		switch mode % fuzzModes {
		case fuzzJSON:
			params := map[string]any{"query": doc}
			if json.Valid([]byte(vars)) {
				params["variables"] = json.RawMessage(vars)
			}
			body, merr := json.Marshal(params)
			if merr != nil {
				t.Skip() // not a request a client could encode
			}
			req, err = http.NewRequest(http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", token)
				setHeader(req, "Accept", header)
			}
		case fuzzRaw:
			req, err = http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(doc))
			if err == nil {
				req.Header.Set("Authorization", token)
				setHeader(req, "Content-Type", header)
			}
		case fuzzGET:
			q := url.Values{"query": {doc}}
			if vars != "" {
				q.Set("variables", vars)
			}
			req, err = http.NewRequest(http.MethodGet, srv.URL+"/graphql?"+q.Encode(), nil)
			if err == nil {
				setHeader(req, "Authorization", header)
			}
		}
		if err != nil {
			t.Skip()
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("no answer (%v) to %s %q", err, req.Method, doc)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("read answer: %v", err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d: %.500s", resp.StatusCode, body)
		}
		var answer struct {
			Errors []parleytest.Error `json:"errors"`
		}
		if err := json.Unmarshal(body, &answer); err != nil {
			t.Fatalf("status %d, the answer is not JSON: %.500s", resp.StatusCode, body)
		}
		if resp.StatusCode != http.StatusOK && len(answer.Errors) == 0 {
			t.Fatalf("status %d without errors: %.500s", resp.StatusCode, body)
		}
		if len(answer.Errors) > 21 {
			t.Fatalf("%d errors", len(answer.Errors))
		}
		for _, e := range answer.Errors {
			if e.Code() == "" {
				t.Fatalf("an error without a code: %+v", e)
			}
			if len(e.Message) > 1024 {
				t.Fatalf("a message of %d bytes: %.200s…", len(e.Message), e.Message)
			}
		}

		var variables map[string]any
		_ = json.Unmarshal([]byte(vars), &variables) // absent when not an object
		if visits, written, ok := server.DocumentWork(doc, variables, server.Limits{}); ok && visits > 6*written+10 {
			t.Fatalf("the analysis visited %d selections of a document of %d", visits, written)
		}
	})
}

// setHeader sets a fuzzed header value when net/http would send it: no
// control characters but tab.
func setHeader(req *http.Request, name, value string) {
	if value == "" || strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return
	}
	req.Header.Set(name, value)
}
