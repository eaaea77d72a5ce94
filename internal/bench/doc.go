// Package bench is Herald's load generator: it opens many authenticated
// client connections, publishes notifications through the HTTP API and checks
// every delivery (latency, loss, duplicates, gaps) while it samples the
// server's memory and CPU from /proc.
//
// # Processes
//
// A run has one coordinator (Run) and one or more workers. The coordinator
// publishes over HTTP and decides the phases; each worker owns a contiguous
// range of simulated users, one connection per user, and reports progress and
// its final counters. Coordinator and worker speak JSON lines (see
// protocol.go) over a pair of streams: a worker is either a goroutine joined
// by pipes (Config.Spawn nil) or a child process that runs ServeWorker on its
// stdin and stdout (cmd/herald-bench re-executes itself with --worker),
// because one process may hold only 20,000 file descriptors here.
//
// # Concurrency
//
// A worker runs one goroutine per user: it dials, then blocks in the
// session's Read until the session ends, and dials the next one (a user has
// at most one session at a time). With the epoll client (the default on
// Linux, ws_epoll_linux.go) Read only waits: a few poll loops per worker,
// one epoll instance each, read every socket, answer pings and call the
// user's Sink. With the goroutine client, Read itself reads frames with a
// 4 KiB bufio.Reader. Either way a session's Sink calls come from one
// goroutine at a time. Counters are atomics written by that goroutine and
// summed by the progress ticker; latencies go to a sharded set of HDR
// histograms.
//
// # Checks
//
// Every notification carries {"t":<publish unix ns>,"s":<seq>} in its data,
// plus "u":<user index> for unicast or "b":1 for broadcasts. Per user, each
// frame must advance exactly one component of the position "<user>.<tenant>"
// by exactly one: less is a duplicate, more is a gap. A unicast frame whose
// "u" is not the receiving user is misrouted. Expected deliveries are the
// items the server answered 201 for (times the connected users for
// broadcasts).
//
// With Config.Topic (--topic) the broadcasts are live events to a topic
// every connection subscribed to: they carry the same data object but no
// position, so they are counted and timed, not checked for order; a live
// event is answered 202 and expected once per connection.
package bench
