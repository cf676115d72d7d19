package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/parleychat/parley/apperr"
)

// Media types of GraphQL over HTTP.
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// allowedMethods are the methods /graphql serves (a WebSocket upgrade is
// a GET; PUT and DELETE serve single-connection event streams).
const allowedMethods = "GET, POST, PUT, DELETE, OPTIONS"

// errSubscriptionTransport is the error of a subscription over plain HTTP.
var errSubscriptionTransport = apperr.New(apperr.BadRequest,
	"subscriptions need a streaming transport: a WebSocket to /graphql (subprotocol graphql-transport-ws or graphql-ws), or server-sent events (POST with Accept: text/event-stream)")

// httpTransport serves GraphQL over plain HTTP, one operation per request,
// and refuses every other request to /graphql (not WebSocket, SSE or
// OPTIONS) with a coded error that never repeats the request:
//
//   - POST with a JSON body {"query", "operationName", "variables",
//     "extensions"}; any other content type gets 415 UNSUPPORTED_MEDIA_TYPE,
//     a body that is not such an object 400 BAD_REQUEST. A JSON array
//     (a batch) is refused: batching is not supported.
//   - GET with the same parameters in the URL, for queries; a mutation gets
//     405 METHOD_NOT_ALLOWED.
//   - a subscription, over either, gets 400 BAD_REQUEST naming the
//     transports that carry subscriptions.
//   - any other method (PUT and DELETE go to the SSE transport): 405
//     METHOD_NOT_ALLOWED.
//
// Parsing, validation and execution run under a context that ends when the
// client goes away or after timeout. The answer is application/json unless
// the client asks for application/graphql-response+json (which gets 400
// instead of 422 for documents refused before execution). A request
// refused whole by a rate limit gets 429 with Retry-After.
type httpTransport struct {
	timeout time.Duration
	log     *slog.Logger
}

var _ graphql.Transport = httpTransport{}

// Supports takes every request that is not a WebSocket upgrade; the
// transports before it take SSE and OPTIONS.
func (httpTransport) Supports(r *http.Request) bool { return r.Header.Get("Upgrade") == "" }

// Do serves one request.
func (t httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	var params *graphql.RawParams
	var aerr *apperr.Error
	status := http.StatusBadRequest
	switch r.Method {
	case http.MethodPost:
		params, status, aerr = postParams(r)
	case http.MethodGet:
		params, aerr = getParams(r.URL.RawQuery)
	default:
		w.Header().Set("Allow", allowedMethods)
		status, aerr = http.StatusMethodNotAllowed, apperr.New(apperr.MethodNotAllowed, "/graphql takes GET, POST, PUT, DELETE and OPTIONS, not %s", r.Method)
	}
	if aerr != nil {
		apperr.WriteHTTP(w, status, aerr)
		return
	}
	params.Headers = r.Header
	ctx, cancel := context.WithTimeoutCause(r.Context(), t.timeout, &timeoutError{after: t.timeout})
	defer cancel()

	media := responseMedia(r.Header.Get("Accept"))
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		t.write(ctx, w, media, refusedStatus(media, errs), resp)
		return
	}
	if rc.Operation.Operation == ast.Subscription {
		apperr.WriteHTTP(w, http.StatusBadRequest, errSubscriptionTransport)
		return
	}
	if r.Method == http.MethodGet && rc.Operation.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		apperr.WriteHTTP(w, http.StatusMethodNotAllowed, apperr.New(apperr.MethodNotAllowed, "a %s needs POST (or a WebSocket); GET runs queries only", rc.Operation.Operation))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	resp := responses(ctx)
	status = http.StatusOK
	if wait, limited := rateLimited(resp); limited {
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", strconv.FormatInt(wait, 10))
	}
	t.write(ctx, w, media, status, resp)
}

func (t httpTransport) write(ctx context.Context, w http.ResponseWriter, media string, status int, resp *graphql.Response) {
	body, err := json.Marshal(resp)
	if err != nil {
		t.log.ErrorContext(ctx, "encode response", "err", err)
		apperr.WriteHTTP(w, http.StatusInternalServerError, apperr.New(apperr.Internal, "internal error"))
		return
	}
	w.Header().Set("Content-Type", media)
	w.WriteHeader(status)
	// A failed write means the client has gone.
	_, _ = w.Write(body)
}

// postParams reads a POST request's parameters from its JSON body, which
// limitBody has read whole.
func postParams(r *http.Request) (*graphql.RawParams, int, *apperr.Error) {
	media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || media != mediaJSON {
		return nil, http.StatusUnsupportedMediaType, apperr.New(apperr.UnsupportedMediaType, "the request body must be application/json")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, http.StatusBadRequest, apperr.New(apperr.BadRequest, "could not read the request body")
	}
	p, aerr := decodeBody(body)
	return p, http.StatusBadRequest, aerr
}

// decodeBody decodes a POST body: one JSON object whose query and
// operationName are strings and whose variables and extensions are
// objects, any of them absent or null. Other members are ignored.
func decodeBody(body []byte) (*graphql.RawParams, *apperr.Error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, apperr.New(apperr.BadRequest, "the request body is empty; send a JSON object with a query")
	case trimmed[0] == '[':
		return nil, apperr.New(apperr.BadRequest, "batching is not supported: send one operation per request, not a JSON array")
	case trimmed[0] != '{':
		return nil, apperr.New(apperr.BadRequest, "the request body must be a JSON object with a query")
	}
	var raw struct {
		Query         json.RawMessage `json:"query"`
		OperationName json.RawMessage `json:"operationName"`
		Variables     json.RawMessage `json:"variables"`
		Extensions    json.RawMessage `json:"extensions"`
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(&raw); err != nil {
		return nil, bodyJSONError("the request body", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, apperr.New(apperr.BadRequest, "the request body holds more than one JSON value")
	}
	p := &graphql.RawParams{}
	if err := decodeMember(raw.Query, "query", "a string", &p.Query); err != nil {
		return nil, err
	}
	if err := decodeMember(raw.OperationName, "operationName", "a string", &p.OperationName); err != nil {
		return nil, err
	}
	if err := decodeMember(raw.Variables, "variables", "a JSON object", &p.Variables); err != nil {
		return nil, err
	}
	if err := decodeMember(raw.Extensions, "extensions", "a JSON object", &p.Extensions); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeMember decodes one request parameter into dst (a *string or a
// *map[string]any); absent and null leave it zero. Numbers stay
// json.Number, as gqlgen's transports keep them.
func decodeMember[T any](raw json.RawMessage, name, want string, dst *T) *apperr.Error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return apperr.New(apperr.BadRequest, "%s must be %s", name, want)
	}
	return nil
}

// bodyJSONError describes a JSON syntax error without quoting the input.
func bodyJSONError(what string, err error) *apperr.Error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return apperr.New(apperr.BadRequest, "%s is not valid JSON (at byte %d)", what, se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return apperr.New(apperr.BadRequest, "%s is not valid JSON (it ends early)", what)
	}
	return apperr.New(apperr.BadRequest, "%s is not a JSON object of the GraphQL request parameters", what)
}

// getParams reads a GET request's parameters from its URL query.
func getParams(rawQuery string) (*graphql.RawParams, *apperr.Error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, apperr.New(apperr.BadRequest, "the URL query does not parse")
	}
	p := &graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName")}
	for _, v := range []struct {
		name string
		dst  *map[string]any
	}{{"variables", &p.Variables}, {"extensions", &p.Extensions}} {
		s := q.Get(v.name)
		if s == "" {
			continue
		}
		if err := decodeMember(json.RawMessage(s), v.name, "a JSON object", v.dst); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// responseMedia is the first media type of accept that Parley answers
// with, as gqlgen's transports choose it: application/json when accept is
// empty or takes anything.
func responseMedia(accept string) string {
	if accept == "" {
		return mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		media, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch media {
		case "*/*", "application/*", mediaJSON:
			return mediaJSON
		case mediaGraphQLResponse:
			return mediaGraphQLResponse
		}
	}
	return mediaGraphQLResponse
}

// refusedStatus is the status of an operation refused before it ran:
// application/graphql-response+json answers 400 (the GraphQL over HTTP
// specification); application/json answers 422 to a document that does
// not parse or validate, as gqlgen does, 429 to a rate limit, and 200 to
// the other refusals (limits), which are field errors to such clients.
func refusedStatus(media string, errs gqlerror.List) int {
	if _, limited := rateLimited(&graphql.Response{Errors: errs}); limited {
		return http.StatusTooManyRequests
	}
	if media == mediaGraphQLResponse {
		return http.StatusBadRequest
	}
	for _, e := range errs {
		switch apperr.Code(errorCode(e)) {
		case apperr.GraphQLParseFailed, apperr.GraphQLValidationFailed:
			return http.StatusUnprocessableEntity
		}
	}
	return http.StatusOK
}

// rateLimited reports whether resp is an operation refused whole by a
// rate limit (no data, every error RATE_LIMITED), and the longest
// retryAfter of its errors.
func rateLimited(resp *graphql.Response) (int64, bool) {
	if resp == nil || len(resp.Errors) == 0 || (len(resp.Data) > 0 && string(resp.Data) != "null") {
		return 0, false
	}
	var wait int64
	for _, e := range resp.Errors {
		if apperr.Code(errorCode(e)) != apperr.RateLimited {
			return 0, false
		}
		if s, ok := e.Extensions["retryAfter"].(int64); ok {
			wait = max(wait, s)
		}
	}
	return max(wait, 1), true
}
