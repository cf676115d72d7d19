package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/config"
	"github.com/parleychat/parley/db"
	"github.com/parleychat/parley/delivery"
	"github.com/parleychat/parley/delivery/push/fcm"
	"github.com/parleychat/parley/delivery/queue"
	"github.com/parleychat/parley/delivery/setup"
	"github.com/parleychat/parley/delivery/webhook"
	"github.com/parleychat/parley/logging"
	"github.com/parleychat/parley/media"
	"github.com/parleychat/parley/pubsub/redis"
	"github.com/parleychat/parley/ratelimit"
	"github.com/parleychat/parley/server"
)

// settingsConfig is every value that Parley's settings configure, filled
// by config.Load from the table settings returns.
type settingsConfig struct {
	addr           string
	databaseURL    string
	jwtSecret      string
	autoMigrate    bool
	redisURL       string
	allowedOrigins []string
	corsHeaders    []string
	typingTimeout  time.Duration
	// expiryWarning is how long before a token expires sessionEvents
	// says EXPIRING.
	expiryWarning time.Duration
	// writeTimeout, initTimeout and shutdownTimeout tune the realtime
	// transports and shutdown.
	writeTimeout    time.Duration
	initTimeout     time.Duration
	shutdownTimeout time.Duration
	requestTimeout  time.Duration
	pprofAddr       string
	metricsAddr     string
	logLevel        slog.Level
	logFormat       logging.Format
	introspection   bool
	chatLimits      chat.Limits
	serverLimits    server.Limits
	// delivery configures push, webhooks and the pre-send hook;
	// pushAlways is PARLEY_PUSH_WHEN=always.
	delivery   setup.Config
	pushAlways bool
	// admin honours the admin claim of tokens.
	admin bool
	// systemMessages writes system messages into channels' histories.
	systemMessages bool
	// rateLimitsOn is PARLEY_RATE_LIMITS; rateLimits the limits it turns
	// on.
	rateLimitsOn bool
	rateLimits   ratelimit.Config
	// mediaDir is PARLEY_MEDIA_DIR; media the rest of the media settings
	// (its Storage and Signer are set at start).
	mediaDir string
	media    chat.MediaOptions
}

// rates returns the per-user limits c configures, nil when
// PARLEY_RATE_LIMITS is off.
func (c *settingsConfig) rates() *ratelimit.Limits {
	if !c.rateLimitsOn {
		return nil
	}
	return ratelimit.New(c.rateLimits)
}

// settings is THE table of Parley's settings: each is an environment
// variable, a flag of `parley serve` derived from its name, a default, a
// description (for --help and docs/configuration.md) and a parser into c.
// Adding a setting is adding one entry here (and using its field); the
// table of docs/configuration.md is generated from this one (go test
// ./cmd/parley -run TestREADMESettings -update).
func settings(c *settingsConfig) []config.Setting {
	chatDefaults, serverDefaults, rateDefaults := chat.DefaultLimits, server.DefaultLimits, ratelimit.Defaults
	return []config.Setting{
		config.String(&c.addr, "PARLEY_ADDR", ":8080",
			"Address to listen on, `host:port`. `:8080` is every interface; `127.0.0.1:8080` is this machine only.", checkAddr),
		config.String(&c.databaseURL, "DATABASE_URL", "",
			"The database; see [Storage and migrations](storage.md) for the accepted forms.", db.CheckURL).
			WithUnset("SQLite file `parley.db` in the working directory").Redacted(),
		config.String(&c.jwtSecret, "PARLEY_JWT_SECRET", "",
			"The HS256 secret that access tokens are signed with, at least 32 bytes. See [Tokens](tokens.md).", checkSecret).
			WithUnset("a development secret kept in the database").Redacted(),
		config.Bool(&c.autoMigrate, "PARLEY_AUTO_MIGRATE", true,
			"`false` stops `parley serve` and `parley token` from applying pending schema migrations at start; run `parley migrate up` instead. See [Storage and migrations](storage.md)."),
		config.String(&c.redisURL, "REDIS_URL", "",
			"The Redis server that nodes share for events and presence, e.g. `redis://127.0.0.1:6379/0` (`rediss://` for TLS; a password goes in the URL). Checked at start: an unreachable server stops it. See [Running several nodes](deployment.md#running-several-nodes).", redis.CheckURL).
			WithUnset("events and presence stay inside this process").Redacted(),
		config.List(&c.allowedOrigins, "PARLEY_ALLOWED_ORIGINS",
			"Comma-separated host patterns whose web pages may open a WebSocket, such as `app.example.com`, `*.example.com`, `app.example.com:8443` or, to match the scheme too, `https://app.example.com`. Setting it replaces the default. The server's own host, and clients that send no `Origin` header (non-browser clients), are always allowed; other origins get HTTP 403. The same origins may call `/graphql` over HTTP from the browser (CORS: preflight answered, `Access-Control-Allow-Origin` echoed; no cookies are used, so no credentials mode).", checkOrigin).
			WithUnset("`localhost`, `127.0.0.1` and `[::1]`, any port"),
		config.List(&c.corsHeaders, "PARLEY_CORS_HEADERS",
			"Comma-separated request headers that pages from `PARLEY_ALLOWED_ORIGINS` may send to `/graphql`, besides those always allowed: `Authorization`, `Content-Type`, `Accept`, `X-Request-Id` and Apollo Client's `apollographql-client-name`, `apollographql-client-version` and `x-apollo-operation-name`.", checkHeaderName),
		config.Duration(&c.typingTimeout, "PARLEY_TYPING_TIMEOUT", chat.DefaultTypingTimeout,
			"How long after a user's last `startTyping` `typingEnded` follows. A Go duration such as `3s`."),
		config.Duration(&c.expiryWarning, "PARLEY_TOKEN_EXPIRY_WARNING", chat.DefaultExpiryWarning,
			"How long before an access token expires the `sessionEvents` subscription sends `EXPIRING`, so that the client can `refreshSession` in time."),
		config.Duration(&c.writeTimeout, "PARLEY_WRITE_TIMEOUT", server.DefaultWebSocketOptions.WriteTimeout,
			"How long one write to a realtime client may stall before its WebSocket is closed (1013, try again later) or its event stream ended."),
		config.Duration(&c.initTimeout, "PARLEY_INIT_TIMEOUT", server.DefaultWebSocketOptions.InitTimeout,
			"How long a WebSocket client has to send `connection_init`; then the socket is closed with 4408 (1002 on the legacy `graphql-ws`)."),
		config.Duration(&c.shutdownTimeout, "PARLEY_SHUTDOWN_TIMEOUT", defaultShutdownTimeout,
			"On SIGINT or SIGTERM, how long running requests get to finish; WebSockets are closed (1012) and event streams ended at once."),
		config.Duration(&c.requestTimeout, "PARLEY_REQUEST_TIMEOUT", server.DefaultRequestTimeout,
			"How long one HTTP request (`POST` or `GET` `/graphql`) may run: parsing, validation and execution stop at this point, or as soon as the client goes away, and the answer is `TIMEOUT`. WebSocket and server-sent-event streams are not bounded by it."),
		config.String(&c.pprofAddr, "PARLEY_PPROF_ADDR", "",
			"When set, Go's profiling endpoints (`/debug/pprof/`) on this address, a listener of their own; bind it to loopback, e.g. `127.0.0.1:6060`.", checkAddr).
			WithUnset("off"),
		config.String(&c.metricsAddr, "PARLEY_METRICS_ADDR", "",
			"When set, the Prometheus metrics (`/metrics`) on this address, a listener of their own, instead of on `PARLEY_ADDR`; e.g. `127.0.0.1:9090`. See [Metrics](observability.md#metrics).", checkAddr).
			WithUnset("`/metrics` on `PARLEY_ADDR`"),
		config.Func("PARLEY_LOG_LEVEL", "info",
			"`debug`, `info`, `warn` or `error` (any case). `debug` adds one line per HTTP request.",
			func(v string) error {
				if err := c.logLevel.UnmarshalText([]byte(strings.ToUpper(v))); err != nil {
					return errors.New("want debug, info, warn or error")
				}
				return nil
			}),
		config.Func("PARLEY_LOG_FORMAT", string(logging.Text),
			"`text` (`key=value` lines) or `json` (one object per line), on stderr. The lines of a request carry its `request_id`: the request's own `X-Request-Id` header when it is 1 to 128 letters, digits or `-_.:/+=@`, else a new UUID; the response's `X-Request-Id` echoes it.",
			func(v string) (err error) {
				c.logFormat, err = logging.ParseFormat(v)
				return err
			}),
		config.Bool(&c.introspection, "PARLEY_INTROSPECTION", true,
			"`false` turns off GraphQL schema introspection (the playground then has no documentation or autocompletion). Accepts `true`/`false`, `1`/`0`, `t`/`f`."),
		config.Int(&c.chatLimits.MaxBodyBytes, "PARLEY_MAX_MESSAGE_BYTES", chatDefaults.MaxBodyBytes,
			"Largest message body, in bytes."),
		config.Int(&c.chatLimits.MaxAttributesBytes, "PARLEY_MAX_ATTRIBUTES_BYTES", chatDefaults.MaxAttributesBytes,
			"Largest `attributes` JSON value of a user, channel or message, encoded, in bytes."),
		config.Int(&c.chatLimits.MaxPageSize, "PARLEY_MAX_PAGE_SIZE", chatDefaults.MaxPageSize,
			fmt.Sprintf("Largest `first`/`last` of a list. The default page size is %d (or this value, if smaller).", chatDefaults.DefaultPageSize)),
		config.Int(&c.serverLimits.MaxBodyBytes, "PARLEY_MAX_REQUEST_BYTES", serverDefaults.MaxBodyBytes,
			"Largest HTTP request body."),
		config.Int(&c.serverLimits.MaxTokens, "PARLEY_MAX_QUERY_TOKENS", serverDefaults.MaxTokens,
			"Largest GraphQL document, in lexical tokens."),
		config.Int(&c.serverLimits.MaxDepth, "PARLEY_MAX_QUERY_DEPTH", serverDefaults.MaxDepth,
			"Deepest nesting of selection sets (introspection fields excluded)."),
		config.Int(&c.serverLimits.MaxAliases, "PARLEY_MAX_QUERY_ALIASES", serverDefaults.MaxAliases,
			"Most aliased fields in one document."),
		config.Int(&c.serverLimits.MaxFields, "PARLEY_MAX_QUERY_FIELDS", serverDefaults.MaxFields,
			"Most field selections (fragment spreads included) written in one document."),
		config.Int(&c.serverLimits.MaxFragments, "PARLEY_MAX_QUERY_FRAGMENTS", serverDefaults.MaxFragments,
			"Most fragment definitions in one document."),
		config.Int(&c.serverLimits.MaxComplexity, "PARLEY_MAX_QUERY_COMPLEXITY", serverDefaults.MaxComplexity,
			"Highest cost of one operation; see [Limits](limits.md)."),
		config.Func("PARLEY_RATE_LIMITS", "on",
			"`off` turns every per-user rate limit below off (load tests, trusted backends); see [Rate limits](limits.md#rate-limits).",
			func(v string) error {
				switch strings.ToLower(v) {
				case "on", "true":
					c.rateLimitsOn = true
				case "off", "false":
					c.rateLimitsOn = false
				default:
					return errors.New("want on or off")
				}
				return nil
			}),
		rateSetting(&c.rateLimits.Mutations, "PARLEY_RATE_MUTATIONS", rateDefaults.Mutations,
			"Mutations per user, counting each root field: `events/period` such as `20/s` or `600/m`, or `off`. Over it, an operation is refused whole with `RATE_LIMITED` (HTTP 429)."),
		config.Int(&c.rateLimits.Mutations.Burst, "PARLEY_RATE_MUTATIONS_BURST", rateDefaults.Mutations.Burst,
			"Mutations a user may send at once before `PARLEY_RATE_MUTATIONS` applies."),
		rateSetting(&c.rateLimits.Typing, "PARLEY_RATE_TYPING", rateDefaults.Typing,
			"`startTyping` calls per user and channel that publish, such as `1/2s`, or `off`; the others answer `true` and do nothing."),
		rateSetting(&c.rateLimits.Connections, "PARLEY_RATE_CONNECTIONS", rateDefaults.Connections,
			"New WebSocket and SSE connections per user, such as `10/s`, or `off`. Over it, a WebSocket is closed with 4429 and an event stream refused with HTTP 429, `RATE_LIMITED`."),
		config.Int(&c.rateLimits.Connections.Burst, "PARLEY_RATE_CONNECTIONS_BURST", rateDefaults.Connections.Burst,
			"New connections a user may open at once before `PARLEY_RATE_CONNECTIONS` applies."),
		config.Int(&c.rateLimits.OpenConnections, "PARLEY_RATE_OPEN_CONNECTIONS", rateDefaults.OpenConnections,
			"WebSocket and SSE connections one user may hold open at once on a node; one more is refused as above."),
		config.String(&c.delivery.FCM.CredentialsFile, "PARLEY_FCM_CREDENTIALS", "",
			"Path of the Firebase service account's JSON key: turns FCM push on. Its `token_uri` is where access tokens come from. See [Push notifications](delivery.md#push-notifications).", nil).
			WithUnset("FCM push off"),
		config.String(&c.delivery.FCM.Endpoint, "PARLEY_FCM_ENDPOINT", fcm.DefaultEndpoint,
			"FCM's base URL (the HTTP v1 API).", checkURL),
		config.String(&c.delivery.APNs.KeyFile, "PARLEY_APNS_KEY", "",
			"Path of the APNs auth key (`.p8`): turns APNs push on, with token authentication (ES256). Needs `PARLEY_APNS_KEY_ID`, `PARLEY_APNS_TEAM_ID` and `PARLEY_APNS_TOPIC`.", nil).
			WithUnset("APNs push off"),
		config.String(&c.delivery.APNs.KeyID, "PARLEY_APNS_KEY_ID", "",
			"The key ID of `PARLEY_APNS_KEY`.", nil),
		config.String(&c.delivery.APNs.TeamID, "PARLEY_APNS_TEAM_ID", "",
			"The Apple developer team ID the key belongs to.", nil),
		config.String(&c.delivery.APNs.Topic, "PARLEY_APNS_TOPIC", "",
			"The app's bundle ID (`apns-topic`).", nil),
		config.Bool(&c.delivery.APNs.Sandbox, "PARLEY_APNS_SANDBOX", false,
			"`true` sends to Apple's development endpoint (`api.sandbox.push.apple.com`), for development builds of the app."),
		config.String(&c.delivery.APNs.Endpoint, "PARLEY_APNS_ENDPOINT", "",
			"APNs' base URL, replacing Apple's.", checkURL).
			WithUnset("`https://api.push.apple.com`, or the sandbox with `PARLEY_APNS_SANDBOX`"),
		config.Func("PARLEY_PUSH_WHEN", "offline",
			"Which recipients of a message get a push: `offline`, those with no live WebSocket on any node; `always`, all of them.",
			func(v string) error {
				switch v {
				case "offline", "always":
					c.pushAlways = v == "always"
					return nil
				}
				return errors.New("want offline or always")
			}),
		config.Int(&c.delivery.MaxAttempts, "PARLEY_DELIVERY_MAX_ATTEMPTS", queue.DefaultMaxAttempts,
			"Attempts of one push or webhook delivery before it is given up (and logged); retries back off exponentially with jitter, honouring `Retry-After`."),
		config.Func("PARLEY_DELIVERY_WORKERS", strconv.Itoa(queue.DefaultWorkers),
			"How many delivery jobs this node works at once. `0` makes a node that only queues jobs, for nodes that should spend no CPU on delivery while others deliver.",
			func(v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return errors.New("want 0 or a positive number")
				}
				c.delivery.Workers, c.delivery.InsertOnly = n, n == 0
				return nil
			}),
		config.Duration(&c.delivery.JobTimeout, "PARLEY_DELIVERY_TIMEOUT", queue.DefaultJobTimeout,
			"How long one delivery job may run. A job left running by a node that died is taken over by another node twice this long after it started."),
		config.String(&c.delivery.WebhookURL, "PARLEY_WEBHOOK_URL", "",
			"Where webhooks are posted: turns them on. See [Webhooks](delivery.md#webhooks).", checkURL).
			WithUnset("webhooks off"),
		config.String(&c.delivery.WebhookSecret, "PARLEY_WEBHOOK_SECRET", "",
			"The Standard Webhooks secret, `whsec_<base64>`, that signs webhooks and pre-send calls; required with either URL.", webhook.CheckSecret).
			Redacted(),
		config.List(&c.delivery.WebhookEvents, "PARLEY_WEBHOOK_EVENTS",
			"Comma-separated webhook event types to deliver: "+eventList()+".", checkEvent).
			WithUnset("all of them"),
		config.String(&c.delivery.PreSendURL, "PARLEY_PRESEND_URL", "",
			"The pre-send hook, called before a message is written: turns it on. See [Pre-send hook](delivery.md#pre-send-hook).", checkURL).
			WithUnset("off"),
		config.Duration(&c.delivery.PreSendTimeout, "PARLEY_PRESEND_TIMEOUT", webhook.DefaultPreSendTimeout,
			"How long the pre-send hook has to answer."),
		config.Func("PARLEY_PRESEND_FAIL", "open",
			"What a pre-send hook that fails (no answer in time, not 2xx, not a verdict) means: `open` sends the message, `closed` refuses it with `REJECTED`.",
			func(v string) error {
				switch v {
				case "open", "closed":
					c.delivery.PreSendFailClosed = v == "closed"
					return nil
				}
				return errors.New("want open or closed")
			}),
		config.String(&c.mediaDir, "PARLEY_MEDIA_DIR", "parley-media",
			"Directory where uploaded media are kept, created by the first upload; relative to the working directory. Several nodes need one shared directory. See [Media](media.md).", nil),
		config.Int(&c.media.MaxUploadBytes, "PARLEY_MAX_UPLOAD_BYTES", chat.DefaultMaxUploadBytes,
			"Largest upload (`createUpload`'s `size`), in bytes."),
		config.List(&c.media.Types, "PARLEY_MEDIA_TYPES",
			"Comma-separated content types that may be uploaded: types such as `application/pdf` and patterns such as `image/*`. Setting it replaces the default.", media.CheckPattern).
			WithUnset("`" + strings.Join(media.DefaultTypes, ",") + "`: images, audio, video, PDF and plain text"),
		config.Duration(&c.media.URLTTL, "PARLEY_MEDIA_URL_TTL", chat.DefaultMediaURLTTL,
			"How long a signed media URL works: an upload's `uploadUrl` and a `Media.url`."),
		config.String(&c.media.BaseURL, "PARLEY_PUBLIC_URL", "",
			"The server's public base URL as clients reach it, such as `https://chat.example.com`: media URLs are absolute on it.", checkURL).
			WithUnset("media URLs are relative to the server (`/media/…`)"),
		config.Bool(&c.admin, "PARLEY_ADMIN", true,
			"`false` ignores the `admin` claim of tokens, turning the admin API and admins' OWNER rights off. See [Admin API](admin-api.md)."),
		config.Bool(&c.systemMessages, "PARLEY_SYSTEM_MESSAGES", true,
			"`false` stops the server from writing system messages (`type: SYSTEM`) into a channel's history when its friendlyName, state or photo changes and when members join, leave, are added, invited or removed."),
	}
}

// rateSetting is a Setting of a rate, such as 20/s, or off. Its burst is
// its number of events, unless a burst setting later in the table sets it.
func rateSetting(dst *ratelimit.Rate, env string, def ratelimit.Rate, description string) config.Setting {
	return config.Func(env, def.String(), description, func(v string) error {
		r, err := ratelimit.ParseRate(v)
		if err != nil {
			return err
		}
		*dst = r
		return nil
	})
}

// checkURL accepts an absolute http or https URL.
func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an absolute http or https URL")
	}
	return nil
}

// checkEvent accepts a webhook event type.
func checkEvent(v string) error {
	if slices.Contains(delivery.WebhookEvents, v) {
		return nil
	}
	return fmt.Errorf("want one of %s", strings.Join(delivery.WebhookEvents, ", "))
}

// eventList is the webhook event types, quoted for the README.
func eventList() string {
	quoted := make([]string, len(delivery.WebhookEvents))
	for i, e := range delivery.WebhookEvents {
		quoted[i] = "`" + e + "`"
	}
	return strings.Join(quoted, ", ")
}

// pick returns the settings of the given variables, in table order.
func pick(all []config.Setting, envs ...string) []config.Setting {
	var out []config.Setting
	for _, s := range all {
		if slices.Contains(envs, s.Env) {
			out = append(out, s)
		}
	}
	return out
}

// checkAddr accepts host:port with a port number or service name; an empty
// host is every interface and port 0 any free port.
func checkAddr(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("want host:port, such as :8080 or 127.0.0.1:8080")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("unknown port %q", port)
	}
	return nil
}

// checkSecret accepts a JWT secret of at least minSecretBytes bytes.
func checkSecret(v string) error {
	if len(v) < minSecretBytes {
		return fmt.Errorf("it is %d bytes; use at least %d random bytes", len(v), minSecretBytes)
	}
	return nil
}

// checkHeaderName accepts an HTTP header name (RFC 9110 token).
func checkHeaderName(v string) error {
	for _, c := range v {
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", c) && !('0' <= c && c <= '9') && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') {
			return errors.New("want a header name such as X-Client-Version")
		}
	}
	return nil
}

// checkOrigin accepts a host pattern of PARLEY_ALLOWED_ORIGINS, optionally
// with a scheme.
func checkOrigin(v string) error {
	_, host, found := strings.Cut(v, "://")
	if !found {
		host = v
	}
	if _, err := path.Match(host, ""); err != nil || host == "" {
		return errors.New("want a host pattern such as app.example.com or *.example.com")
	}
	return nil
}
