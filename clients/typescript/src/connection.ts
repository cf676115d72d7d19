// What both examples need to reach Parley: its URLs and a way to get a
// current access token.
import { createClient, type Client } from "graphql-ws";

/** Where Parley is and how to authenticate to it. */
export interface ParleyOptions {
  /** The HTTP endpoint, such as http://localhost:8080/graphql. */
  httpUrl: string;
  /** The WebSocket endpoint, such as ws://localhost:8080/graphql. */
  wsUrl: string;
  /**
   * Returns a current access token. It is called for every HTTP request
   * and at every WebSocket (re)connection, so that a connection closed
   * with 4403 when its token expired comes back with a fresh one.
   */
  getToken: () => string | Promise<string>;
  /** A WebSocket implementation: the ws package on Node.js, nothing in a browser. */
  webSocketImpl?: unknown;
}

/**
 * A graphql-ws client for Parley's graphql-transport-ws endpoint, which
 * Apollo's GraphQLWsLink and urql's subscriptionExchange both use.
 * connectionParams is a function, called at every connection.
 */
export function createWsClient(opts: ParleyOptions): Client {
  return createClient({
    url: opts.wsUrl,
    webSocketImpl: opts.webSocketImpl,
    connectionParams: async () => ({ authorization: `Bearer ${await opts.getToken()}` }),
    // Keep trying while a node restarts (1012) or the network is away.
    retryAttempts: 20,
    retryWait: async (retries) => {
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** retries, 5000)));
    },
  });
}

/** One message as the MessageAdded subscription returns it. */
export interface Indexed {
  index: number;
}

/**
 * Follows a channel's messages across reconnections without a gap or a
 * duplicate. subscribe starts the MessageAdded subscription with the given
 * afterIndex and returns its stop function; whenever the WebSocket closes
 * (a node restarting, a network outage), followMessages stops it and
 * subscribes again after the last index seen, so that Parley replays what
 * was sent meanwhile. Returns a function that stops following.
 */
export function followMessages<M extends Indexed>(
  ws: Client,
  subscribe: (afterIndex: number, next: (m: M) => void) => () => void,
  onMessage: (m: M) => void,
  afterIndex = -1,
): () => void {
  let last = afterIndex;
  const next = (m: M) => {
    if (m.index <= last) return; // already seen
    last = m.index;
    onMessage(m);
  };
  let stop = subscribe(last, next);
  const off = ws.on("closed", () => {
    stop();
    stop = subscribe(last, next);
  });
  return () => {
    off();
    stop();
  };
}
