# Herald container image: one static binary (CGO_ENABLED=0; SQLite is pure
# Go) on an empty base, running as a non-root user.
#
#   docker build -t herald .                       # builds the binary in golang:1.26
#   docker build --target prebuilt -t herald .     # copies a binary built outside
#
# The default target compiles in the Go toolchain image and takes the CA
# certificates from it. The "prebuilt" target pulls no image at all: it
# copies dist/image/ from the build context, which scripts/image-rootfs.sh
# fills with a static binary and the host's CA bundle. Both end in the same
# layout:
#
#   /herald                                 the binary (ENTRYPOINT)
#   /etc/ssl/certs/ca-certificates.crt      CA bundle (JWKS over HTTPS, rediss://, PostgreSQL TLS)
#   /data                                   VOLUME: the SQLite database (HERALD_DATABASE)
#   /tmp                                    scratch space (SQLite temp files)
#
# It listens on :8080, runs as UID/GID 65532 and needs no shell, so the
# root filesystem can be read-only (the Kubernetes manifests and the Helm
# chart mount /data and /tmp).

ARG GO_VERSION=1.26.8

# ---- build: the Go toolchain image compiles the binary ----------------------
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
      -o /rootfs/herald ./cmd/herald \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /data \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && chmod 1777 /rootfs/tmp && chmod 0750 /data

# ---- base: what every variant shares -----------------------------------------
FROM scratch AS base
ENV HERALD_ADDR=:8080 \
    HERALD_DATABASE=/data/herald.db \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/herald"]
LABEL org.opencontainers.image.title="Herald" \
      org.opencontainers.image.description="Multi-tenant real-time notification gateway" \
      org.opencontainers.image.source="https://github.com/heraldhq/herald" \
      org.opencontainers.image.licenses="Apache-2.0"

# ---- prebuilt: a binary built outside (scripts/image-rootfs.sh), no image pulled
# Files belong to root; only /data belongs to the user Herald runs as.
FROM base AS prebuilt
COPY dist/image/root/ /
COPY --chown=65532:65532 dist/image/data/ /data/
VOLUME ["/data"]

# ---- default: built in the toolchain image ------------------------------------
FROM base AS release
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /data/ /data/
VOLUME ["/data"]
