#!/usr/bin/env bash
# Remakes the legacy fixtures of db's migration tests: a SQLite file and a
# PostgreSQL dump of databases created by a Parley that still migrated with
# GORM's AutoMigrate, with rows written through its GraphQL API.
#
#   git worktree add /tmp/parley-old 2d38ddd && (cd /tmp/parley-old && go build -o /tmp/parley-2d38ddd ./cmd/parley)
#   db/testdata/legacy/make.sh /tmp/parley-2d38ddd
#
# It needs PostgreSQL on 127.0.0.1:5432 (user postgres, database test, trust
# auth), pg_dump and curl. The fixtures are kept, not remade: they stand for
# the databases that existing installations have.
set -euo pipefail

bin=${1:?usage: make.sh PATH-TO-OLD-PARLEY-BINARY}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

unset PARLEY_JWT_SECRET # the development secret is stored: parley_secrets gets a row
schema=parley_legacy
pg="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

gql() { # gql TOKEN QUERY VARIABLES-JSON
	curl -sf "http://127.0.0.1:18765/graphql" -H 'Content-Type: application/json' -H "Authorization: Bearer $1" \
		-d "{\"query\":$(printf '%s' "$2" | jq -Rs .),\"variables\":$3}"
}

fill() { # fill DATABASE_URL
	DATABASE_URL=$1 PARLEY_ADDR=127.0.0.1:18765 "$bin" serve 2>"$work/serve.log" &
	pid=$!
	for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18765/readyz >/dev/null && break; sleep 0.1; done
	local alice bob carol general secret m0 m1
	alice=$(DATABASE_URL=$1 "$bin" token --identity alice --name Alice)
	bob=$(DATABASE_URL=$1 "$bin" token --identity bob)
	carol=$(DATABASE_URL=$1 "$bin" token --identity carol --name 'Carol "C" Ünicode')
	gql "$alice" 'mutation($in: UpdateMeInput!) { updateMe(input: $in) { id } }' '{"in":{"attributes":{"theme":"dark","n":1}}}' >/dev/null
	general=$(gql "$alice" 'mutation($in: CreateChannelInput!) { createChannel(input: $in) { id } }' \
		'{"in":{"uniqueName":"general","friendlyName":"General","type":"PUBLIC","attributes":{"topic":"all"},"members":["bob"]}}' | jq -r .data.createChannel.id)
	secret=$(gql "$bob" 'mutation($in: CreateChannelInput!) { createChannel(input: $in) { id } }' \
		'{"in":{"friendlyName":"Secret","type":"PRIVATE"}}' | jq -r .data.createChannel.id)
	gql "$carol" 'mutation($c: ID!) { joinChannel(channelId: $c) { id } }' "{\"c\":\"$general\"}" >/dev/null
	gql "$bob" 'mutation($c: ID!) { addMember(channelId: $c, identity: "alice", role: ADMIN) { id } }' "{\"c\":\"$secret\"}" >/dev/null
	m0=$(gql "$alice" 'mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }' \
		"{\"in\":{\"channelId\":\"$general\",\"body\":\"Hello, world\",\"attributes\":{\"pinned\":true}}}" | jq -r .data.sendMessage.id)
	m1=$(gql "$bob" 'mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }' \
		"{\"in\":{\"channelId\":\"$general\",\"body\":\"typo\"}}" | jq -r .data.sendMessage.id)
	gql "$bob" 'mutation($id: ID!) { editMessage(id: $id, body: "fixed") { id } }' "{\"id\":\"$m1\"}" >/dev/null
	gql "$carol" 'mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }' \
		"{\"in\":{\"channelId\":\"$general\",\"body\":\"gone soon\"}}" | jq -r .data.sendMessage.id >"$work/m2"
	gql "$alice" 'mutation($id: ID!) { deleteMessage(id: $id) { id } }' "{\"id\":\"$(cat "$work/m2")\"}" >/dev/null
	gql "$bob" 'mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }' \
		"{\"in\":{\"channelId\":\"$secret\",\"body\":\"just us\"}}" >/dev/null
	gql "$carol" 'mutation($c: ID!) { markRead(channelId: $c, index: 1) { id } }' "{\"c\":\"$general\"}" >/dev/null
	gql "$alice" 'mutation { registerPush(provider: FCM, token: "fcm-token-1") { id } }' '{}' >/dev/null
	gql "$bob" 'mutation { registerPush(provider: APNS, token: "apns-token-1") { id } }' '{}' >/dev/null
	: "$m0"
	kill "$pid"
	wait "$pid" || true
	pid=
}

# SQLite: the file, written back to a single file (no -wal) by the clean stop.
rm -f "$work"/parley.db*
fill "sqlite://$work/parley.db"
test ! -e "$work/parley.db-wal"
cp "$work/parley.db" "$here/automigrate.sqlite"

# PostgreSQL: a schema of its own, dumped as plain SQL with INSERTs.
psql "$pg" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" -c "CREATE SCHEMA $schema"
fill "$pg&search_path=$schema"
# \restrict lines are psql meta-commands and CREATE SCHEMA is left to the
# test, which loads the dump into a schema of its own.
pg_dump "$pg" --schema="$schema" --inserts --no-owner --no-privileges \
	| grep -v -e '^\\restrict' -e '^\\unrestrict' -e "^CREATE SCHEMA $schema;" >"$here/automigrate.postgres.sql"
psql "$pg" -qc "DROP SCHEMA $schema CASCADE"
echo "fixtures written to $here"
