// Apollo Client for Parley: queries and mutations over HTTP, with the
// token in the Authorization header of each request, and subscriptions
// over a WebSocket (graphql-ws), split by operation type.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import type { Client } from "graphql-ws";

import { createWsClient, type ParleyOptions } from "./connection.js";

/** An Apollo Client on Parley, and the graphql-ws client under it. */
export function createApolloClient(opts: ParleyOptions): { client: ApolloClient; ws: Client } {
  const ws = createWsClient(opts);
  const auth = new SetContextLink(async (prev) => ({
    headers: { ...prev.headers, authorization: `Bearer ${await opts.getToken()}` },
  }));
  const http = auth.concat(new HttpLink({ uri: opts.httpUrl }));
  const link = ApolloLink.split(
    ({ query }) => {
      const def = getMainDefinition(query);
      return def.kind === "OperationDefinition" && def.operation === "subscription";
    },
    new GraphQLWsLink(ws),
    http,
  );
  return { client: new ApolloClient({ link, cache: new InMemoryCache() }), ws };
}
