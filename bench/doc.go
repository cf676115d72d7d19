// Package bench is the home of parley-bench's building blocks; it holds no
// code of its own. Its subpackages are:
//
//   - clock: a monotonic Unix-nanosecond clock and a fake clock for tests;
//   - stats: latency recorders with exact percentiles;
//   - accounting: expected versus delivered messages per receiver, with
//     losses and duplicates counted by message id;
//   - pacer: an evenly spaced rate pacer with a bounded catch-up;
//   - client: GraphQL over HTTP and a lean graphql-transport-ws client;
//   - rawserver: a minimal WebSocket fan-out server, the baseline that
//     GraphQL delivery is compared with;
//   - hostile: the documents of a denial-of-service probe, for the
//     hostile scenario and the server's tests;
//   - report: tables, JSON, SVG and PNG plots and progress lines;
//   - scenario: the load scenarios (fanout, rawfanout, idle, write,
//     history) as functions from a Config to a Result.
//
// The command that drives them is cmd/parley-bench.
package bench
