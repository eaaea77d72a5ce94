# The one test command (README and .ci/run use exactly this).
.PHONY: test build vet fuzz
test:
	go test -race -count=1 ./...

build:
	go build -o bin/herald ./cmd/herald

vet:
	go vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

# Short fuzzing runs of every fuzz target (CI runs these briefly).
fuzz:
	go test -run '^$$' -fuzz FuzzVerify -fuzztime 10s ./internal/auth/
	go test -run '^$$' -fuzz FuzzDecodeMessage -fuzztime 10s ./internal/ws/
	go test -run '^$$' -fuzz FuzzParsePosition -fuzztime 10s ./internal/notification/
	go test -run '^$$' -fuzz FuzzDecodePacket -fuzztime 10s ./internal/socketio/
	go test -run '^$$' -fuzz FuzzNotificationEvent -fuzztime 10s ./internal/sse/
