// Package demo is the demo inbox that Herald serves in development mode
// (--dev): a static page at / and two dev-only endpoints it uses.
//
//   - GET / serves index.html; GET /demo/app.js and /demo/style.css its
//     script and styles. The files are embedded (static/) and committed as
//     written: plain HTML, CSS and modern JavaScript (ES modules), no build
//     step. app.js speaks the WebSocket protocol directly with a small
//     inline client (first-frame auth, resume with the last position,
//     backoff with full jitter): the TypeScript SDK in clients/js is not
//     embedded, because its compiled output is not committed.
//   - GET /v1/dev/token?user=alice returns a signed HS256 token for that
//     user in the default tenant ("demo"), valid for an hour. Only for
//     requests from a loopback address with a loopback Host (so a page
//     on another site cannot fetch one through DNS rebinding), and only
//     when Herald verifies tokens with an HS256 secret.
//   - POST /v1/dev/publish, authenticated with the user's JWT, publishes a
//     test notification to that same user: {"title":…,"body":…,"type":…}
//     (type defaults to "demo.test").
//
// None of this exists unless node.Config.Demo is set, which only --dev does.
// Never enable it in production: the token endpoint issues a token for any
// user to anyone on the machine.
package demo
