// urql for Parley: queries and mutations over HTTP (fetchExchange), with
// the token in each request's Authorization header, and subscriptions over
// a WebSocket (subscriptionExchange with graphql-ws).
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "@urql/core";
import type { Client as WsClient } from "graphql-ws";

import { createWsClient, type ParleyOptions } from "./connection.js";

/** A urql client on Parley, and the graphql-ws client under it. */
export function createUrqlClient(opts: ParleyOptions): { client: Client; ws: WsClient } {
  const ws = createWsClient(opts);
  const client = new Client({
    url: opts.httpUrl,
    // Parley's answers are fresh: no document cache.
    requestPolicy: "network-only",
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
    // Each request asks for a current token.
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      headers.set("authorization", `Bearer ${await opts.getToken()}`);
      return fetch(input, { ...init, headers });
    },
  });
  return { client, ws };
}
