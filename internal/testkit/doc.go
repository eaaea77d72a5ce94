// Package testkit holds the helpers Herald's tests share: one polling
// helper ([Eventually]), one goroutine-leak-checking TestMain ([LeakMain]),
// the real services integration tests run against ([RedisURL], [Redis],
// [StartRedisServer], [PostgresURL], [PostgresSchema]), test JWTs
// ([Token], [UserToken]) and small plumbing ([Serve], [FreePort],
// [UniqueName], [SyncBuffer]).
//
// It is for tests only: import it from _test.go files, never from
// production code (TestOnlyTestsImportTestkit enforces this). It imports
// no Herald package, so that every package's own tests can use it.
//
// Integration tests never silently pass without their service: a missing
// service (or tool) skips the test loudly, on stderr as well as in the test
// log, and fails it instead when the environment variable CI is "true"
// ([Unavailable]).
//
// Concurrency: every helper that takes a testing.TB may call t.Fatal, so it
// must run on the test's own goroutine; [SyncBuffer] is safe for concurrent
// use.
package testkit
