// Parley over server-sent events with graphql-sse's client, in single
// connection mode: one event stream carries every operation, which a
// browser on HTTP/1 (six connections per host) needs.
import { createClient, type Client } from "graphql-sse";
import { print } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";

/** Where Parley is and how to authenticate to it. */
export interface SseOptions {
  /** The HTTP endpoint, such as http://localhost:8080/graphql. */
  httpUrl: string;
  /**
   * Returns a current access token. It is called at every reservation of
   * a stream, so that a stream ended when its token expired comes back
   * with a fresh one.
   */
  getToken: () => string | Promise<string>;
}

/** A graphql-sse client that runs every operation on one event stream. */
export function createSseClient(opts: SseOptions): Client<true> {
  return createClient({
    url: opts.httpUrl,
    singleConnection: true,
    headers: async () => ({ Authorization: `Bearer ${await opts.getToken()}` }),
  });
}

/** Runs a query or mutation over the stream and resolves with its data. */
export function execute<T, V extends Record<string, unknown>>(client: Client<true>, doc: TypedDocumentNode<T, V>, variables: V): Promise<T> {
  return new Promise((resolve, reject) => {
    let data: T | undefined;
    client.subscribe<T>(
      { query: print(doc), variables },
      {
        next: (r) => {
          if (r.errors?.length) reject(new Error(r.errors.map((e) => e.message).join("; ")));
          else data = r.data as T;
        },
        error: reject,
        complete: () => (data === undefined ? reject(new Error("no result")) : resolve(data)),
      },
    );
  });
}

/** Starts a subscription over the stream; returns its stop function. */
export function subscribe<T, V extends Record<string, unknown>>(
  client: Client<true>,
  doc: TypedDocumentNode<T, V>,
  variables: V,
  next: (data: T) => void,
): () => void {
  return client.subscribe<T>(
    { query: print(doc), variables },
    {
      next: (r) => r.data && next(r.data as T),
      error: (e) => console.error("graphql-sse subscription:", e),
      complete: () => {},
    },
  );
}
