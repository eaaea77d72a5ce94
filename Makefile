# The one test command (README and .ci/run use exactly this).
.PHONY: test build vet fuzz bench release image-smoke helm-check test-nopoller
test:
	go test -race -count=1 ./...

build:
	go build -o bin/herald ./cmd/herald

vet:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

# Fuzzing runs of every fuzz target (CI runs shorter ones). Counts, not
# durations: see the note in .ci/run (golang/go#75804).
fuzz:
	go test -run '^$$' -fuzz FuzzVerify -fuzztime 50000x ./internal/auth/
	go test -run '^$$' -fuzz FuzzDecodeMessage -fuzztime 30000x ./internal/ws/
	go test -run '^$$' -fuzz FuzzParsePosition -fuzztime 500000x ./internal/notification/
	go test -run '^$$' -fuzz FuzzDuplicateKey -fuzztime 300000x ./internal/notification/
	go test -run '^$$' -fuzz FuzzDecodePacket -fuzztime 50000x ./internal/socketio/
	go test -run '^$$' -fuzz FuzzNotificationEvent -fuzztime 20000x ./internal/sse/
	go test -run '^$$' -fuzz FuzzPublishDecode -fuzztime 300000x ./internal/api/
	go test -run '^$$' -fuzz FuzzEncodeItem -fuzztime 300000x ./internal/hub/

# The standard herald-bench scenarios, each against a fresh node, as one
# Markdown table (docs/benchmarks.md). BENCH_SHORT=1 for a quick check;
# BENCH_SCENARIOS, BENCH_OUT, HERALD_DATABASE_URL, HERALD_REDIS_URL, GOGC.
bench:
	bash scripts/bench.sh

# Release archives for linux/amd64, linux/arm64, darwin/arm64 and
# windows/amd64 (static binaries), SHA256SUMS and CycloneDX SBOMs in
# dist/release/. VERSION=v1.2.3 for a tagged release (default: git describe).
release:
	bash scripts/release.sh

# Build the container image with podman and run its binary from the
# exported filesystem against a smoke test (root, podman).
image-smoke:
	bash scripts/image-smoke.sh

# helm lint/template of the chart in both modes, kubeconform of the output.
helm-check:
	bash scripts/helm-check.sh

# The WebSocket transports and the end-to-end protocol tests on the
# goroutine-per-connection fallback that Windows uses, built on this OS.
test-nopoller:
	go test -race -count=1 -tags herald_nopoller ./internal/wspoll/ ./internal/ws/ ./internal/socketio/
	go test -race -count=1 -tags herald_nopoller \
	  -run 'TestProtocol|TestTabsStayInSyncAndWSOperations|TestSlowConsumerIsClosedWithoutSlowingOthers|TestWebSocketBadInput|TestSocketIO' \
	  ./internal/node/
