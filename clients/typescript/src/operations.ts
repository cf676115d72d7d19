// The operations of the README's tour, typed by graphql-codegen: each
// graphql(`…`) call returns a TypedDocumentNode whose result and variables
// types come from schema.graphql. Run `npm run codegen` after changing one.
import { graphql } from "./gql/index.js";

/** The caller's own user. */
export const Me = graphql(`
  query Me {
    me {
      identity
      friendlyName
    }
  }
`);

/** Creates a channel; the caller becomes its OWNER. */
export const CreateChannel = graphql(`
  mutation CreateChannel($input: CreateChannelInput!) {
    createChannel(input: $input) {
      id
      friendlyName
      type
    }
  }
`);

/** Sends a message; its index is its place in the channel. */
export const SendMessage = graphql(`
  mutation SendMessage($input: SendMessageInput!) {
    sendMessage(input: $input) {
      index
      body
    }
  }
`);

/** The latest page of a channel's history, oldest first. */
export const History = graphql(`
  query History($channelId: ID!, $last: Int) {
    messages(channelId: $channelId, last: $last) {
      edges {
        node {
          index
          body
          author {
            identity
          }
        }
      }
      pageInfo {
        hasPreviousPage
        startCursor
      }
    }
  }
`);

/** Joins a public channel. */
export const JoinChannel = graphql(`
  mutation JoinChannel($channelId: ID!) {
    joinChannel(channelId: $channelId) {
      role
      channel {
        unreadCount
        lastMessageIndex
      }
    }
  }
`);

/** Moves the caller's read horizon forward. */
export const MarkRead = graphql(`
  mutation MarkRead($channelId: ID!, $index: Int!) {
    markRead(channelId: $channelId, index: $index) {
      lastReadIndex
      channel {
        unreadCount
      }
    }
  }
`);

/**
 * New messages of a channel: with afterIndex, the stored messages after
 * that index first, then live ones, with no gap and no duplicate.
 */
export const MessageAdded = graphql(`
  subscription MessageAdded($channelId: ID!, $afterIndex: Int) {
    messageAdded(channelId: $channelId, afterIndex: $afterIndex) {
      index
      body
      author {
        identity
      }
    }
  }
`);
