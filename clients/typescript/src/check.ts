// Runs both examples against a real Parley, which it starts (and
// restarts) itself: the binary is PARLEY_BIN. For Apollo Client and for
// urql: a query, mutations, a subscription, and a subscription that
// survives a server restart and resumes with afterIndex without a gap.
// Then graphql-sse's client in single connection mode: a query, a
// mutation and a subscription on one event stream, and the subscription
// stopped. Exits non-zero on the first failure.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import type { ApolloClient } from "@apollo/client";
import WebSocket from "ws";

import { createApolloClient } from "./apollo.js";
import { followMessages, type ParleyOptions } from "./connection.js";
import { CreateChannel, History, JoinChannel, MarkRead, Me, MessageAdded, SendMessage } from "./operations.js";
import { createUrqlClient } from "./urql.js";
import { createSseClient, execute, subscribe } from "./sse.js";

// Node.js before 22 has no global WebSocket, which Apollo's GraphQLWsLink
// reads when a connection fails: lend it ws's. Browsers need nothing.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

const bin = process.env.PARLEY_BIN;
if (!bin) throw new Error("set PARLEY_BIN to a parley binary");
const dir = mkdtempSync(join(tmpdir(), "parley-ts-"));
const env = {
  ...process.env,
  DATABASE_URL: `sqlite://${join(dir, "parley.db")}`,
  PARLEY_JWT_SECRET: "typescript-kit-check-secret-0123456789",
  PARLEY_LOG_LEVEL: "warn",
};

/** Mints a fresh token for identity, as a backend would. */
function token(identity: string): string {
  return execFileSync(bin!, ["token", "--identity", identity, "--ttl", "10m"], { env }).toString().trim();
}

let server: ChildProcess | undefined;

/** Starts Parley on addr (port 0: any) and resolves with its address once it serves. */
function start(addr: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin!, ["serve"], { env: { ...env, PARLEY_ADDR: addr, PARLEY_LOG_LEVEL: "info" }, stdio: ["ignore", "ignore", "pipe"] });
    server = p;
    let logs = "";
    p.stderr!.on("data", (chunk: Buffer) => {
      logs += chunk.toString();
      const m = /msg="parley serving" addr=(\S+)/.exec(logs);
      if (m?.[1]) resolve(m[1]);
    });
    p.on("exit", (code) => reject(new Error(`parley exited with ${code}:\n${logs}`)));
  });
}

/** Stops Parley gracefully (SIGTERM: WebSockets close with 1012). */
function stop(): Promise<void> {
  return new Promise((resolve) => {
    if (!server || server.exitCode !== null) return resolve();
    server.once("exit", () => resolve());
    server.kill("SIGTERM");
  });
}

function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`check failed: ${what}`);
}

/** Resolves when until() holds, polling; fails after ms. */
async function waitFor(what: string, until: () => boolean, ms = 20000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!until()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type Variables = Record<string, unknown>;

/** What each example must do, behind the same calls, typed by codegen. */
interface Kit {
  query<T, V extends Variables>(doc: TypedDocumentNode<T, V>, vars: V): Promise<T>;
  mutate<T, V extends Variables>(doc: TypedDocumentNode<T, V>, vars: V): Promise<T>;
  /** Starts MessageAdded after afterIndex; returns its stop function. */
  subscribe(afterIndex: number, channelId: string, next: (m: { index: number; body: string }) => void): () => void;
  ws: ReturnType<typeof createApolloClient>["ws"];
  close(): void;
}

function apolloKit(opts: ParleyOptions): Kit {
  const { client, ws } = createApolloClient(opts);
  return {
    ws,
    async query(query, variables) {
      const r = await client.query({ query, variables, fetchPolicy: "network-only" } as ApolloClient.QueryOptions<never, Variables>);
      if (r.error) throw r.error;
      return r.data as never;
    },
    async mutate(mutation, variables) {
      const r = await client.mutate({ mutation, variables } as ApolloClient.MutateOptions<never, Variables>);
      if (r.error) throw r.error;
      return r.data as never;
    },
    subscribe(afterIndex, channelId, next) {
      const sub = client.subscribe({ query: MessageAdded, variables: { channelId, afterIndex } }).subscribe({
        next: (r) => r.data && next(r.data.messageAdded),
        error: (e) => console.error("apollo subscription:", e),
      });
      return () => sub.unsubscribe();
    },
    close() {
      client.stop();
      void ws.dispose();
    },
  };
}

function urqlKit(opts: ParleyOptions): Kit {
  const { client, ws } = createUrqlClient(opts);
  return {
    ws,
    async query(doc, variables) {
      const r = await client.query(doc, variables).toPromise();
      if (r.error) throw r.error;
      return r.data!;
    },
    async mutate(doc, variables) {
      const r = await client.mutation(doc, variables).toPromise();
      if (r.error) throw r.error;
      return r.data!;
    },
    subscribe(afterIndex, channelId, next) {
      const sub = client.subscription(MessageAdded, { channelId, afterIndex }).subscribe((r) => {
        if (r.error) console.error("urql subscription:", r.error);
        if (r.data) next(r.data.messageAdded);
      });
      return () => sub.unsubscribe();
    },
    close() {
      void ws.dispose();
    },
  };
}

/** The tour, then a subscription across a restart, with one client kit. */
async function tour(name: string, make: (opts: ParleyOptions) => Kit, addr: string): Promise<void> {
  const base = { httpUrl: `http://${addr}/graphql`, wsUrl: `ws://${addr}/graphql`, webSocketImpl: WebSocket };
  const alice = make({ ...base, getToken: () => token("alice") });
  const bob = make({ ...base, getToken: () => token("bob") });
  try {
    const me = await alice.query(Me, {});
    assert(me.me.identity === "alice", `${name}: Me`);
    const created = await alice.mutate(CreateChannel, {
      input: { friendlyName: `General (${name})`, type: "PUBLIC" },
    });
    const channelId = created.createChannel.id;

    const got: number[] = [];
    const stopFollowing = followMessages(alice.ws, (after, next) => alice.subscribe(after, channelId, next), (m) => got.push(m.index));
    const sent = await alice.mutate(SendMessage, { input: { channelId, body: "Hello, world" } });
    assert(sent.sendMessage.index === 0, `${name}: first message has index 0`);
    await waitFor(`${name}: message 0 on the subscription`, () => got.length === 1);

    const history = await alice.query(History, { channelId, last: 50 });
    assert(history.messages.edges[0]?.node.body === "Hello, world", `${name}: History`);
    const joined = await bob.mutate(JoinChannel, { channelId });
    assert(joined.joinChannel.channel.unreadCount === 1, `${name}: bob has 1 unread`);
    // Bob's joining wrote a system message, index 1, which never counts as unread.
    await waitFor(`${name}: the system message of bob's join on the subscription`, () => got.length === 2);
    const read = await bob.mutate(MarkRead, { channelId, index: 0 });
    assert(read.markRead.channel.unreadCount === 0, `${name}: MarkRead`);

    // A restart: the WebSocket closes with 1012, the client reconnects
    // and the subscription resumes after index 1. Messages sent before it
    // is back come from the replay, later ones live.
    await stop();
    await start(addr);
    for (const body of ["while away 1", "while away 2"]) {
      await bob.mutate(SendMessage, { input: { channelId, body } });
    }
    await waitFor(`${name}: messages 2 and 3 after the restart`, () => got.length >= 4);
    await bob.mutate(SendMessage, { input: { channelId, body: "live again" } });
    await waitFor(`${name}: message 4 live`, () => got.length >= 5);
    assert(JSON.stringify(got) === "[0,1,2,3,4]", `${name}: indexes ${JSON.stringify(got)}, want [0,1,2,3,4]`);
    stopFollowing();
    console.log(`ok ${name}: query, mutations, subscription, resumed across a restart without a gap`);
  } finally {
    alice.close();
    bob.close();
  }
}

/** graphql-sse in single connection mode: every operation on one stream. */
async function sseTour(addr: string): Promise<void> {
  const client = createSseClient({ httpUrl: `http://${addr}/graphql`, getToken: () => token("alice") });
  try {
    const me = await execute(client, Me, {});
    assert(me.me.identity === "alice", "graphql-sse: Me");
    const created = await execute(client, CreateChannel, { input: { friendlyName: "General (graphql-sse)", type: "PUBLIC" } });
    const channelId = created.createChannel.id;
    const got: string[] = [];
    const stopSub = subscribe(client, MessageAdded, { channelId, afterIndex: -1 }, (d) => got.push(d.messageAdded.body));
    // afterIndex replays from the start, so the message arrives whether
    // it is sent before or after the subscription is live.
    await execute(client, SendMessage, { input: { channelId, body: "over one stream" } });
    await waitFor("graphql-sse: the message on the subscription", () => got.length === 1);
    assert(got[0] === "over one stream", `graphql-sse: got ${JSON.stringify(got)}`);
    stopSub();
    const again = await execute(client, Me, {});
    assert(again.me.identity === "alice", "graphql-sse: Me after stopping the subscription");
    console.log("ok graphql-sse (single connection): query, mutations, subscription and its stop on one event stream");
  } finally {
    client.dispose();
  }
}

const timer = setTimeout(() => {
  console.error("check timed out");
  process.exit(1);
}, 90_000);
try {
  const addr = await start("127.0.0.1:0");
  await tour("apollo", apolloKit, addr);
  await tour("urql", urqlKit, addr);
  await sseTour(addr);
  console.log("3 passed, 0 failed");
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  clearTimeout(timer);
  await stop();
  rmSync(dir, { recursive: true, force: true });
}
