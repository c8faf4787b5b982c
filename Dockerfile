# bulwark's webhook and scanner images for users with Docker (the webhook is the
# default target; `--target scanner` builds the scanner). bulwark's base-image check
# reads the base from the manifest's annotations, so build with buildx and set them:
#
#   docker buildx build [--target scanner] -t REPO:TAG --push \
#     --annotation "manifest:org.opencontainers.image.base.name=gcr.io/distroless/static:nonroot" \
#     --annotation "manifest:org.opencontainers.image.base.digest=sha256:e2e927ec666bae08560abb3c55d0659eceabb657f56b6782ab500a9fc7f555e3" .
#
# `make image` builds the same layout without a Docker daemon (hack/image), with
# those annotations.
#
# Release builds use a Go toolchain without known standard-library
# vulnerabilities: 1.26.8 carries GO-2026-6599 … GO-2026-6612.
ARG GO_IMAGE=golang:1.27.3
FROM ${GO_IMAGE} AS build
ENV GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0 GOOS=linux GOARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The webhook leaves the embedded scanner out (-tags noscanner, as `make release`).
RUN go build -tags noscanner -trimpath -ldflags="-s -w" -o /out/ ./cmd/webhook ./cmd/scanner

# distroless static, nonroot: no shell, no package manager; pinned by digest
# (bump it with the digest of the release you have verified). Both images share it.
FROM gcr.io/distroless/static:nonroot@sha256:e2e927ec666bae08560abb3c55d0659eceabb657f56b6782ab500a9fc7f555e3 AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.source="https://github.com/bulwark-dev/bulwark" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static:nonroot" \
      org.opencontainers.image.base.digest="sha256:e2e927ec666bae08560abb3c55d0659eceabb657f56b6782ab500a9fc7f555e3"
USER 65532:65532

FROM runtime AS scanner
LABEL org.opencontainers.image.title="bulwark scanner"
COPY --from=build --chown=0:0 --chmod=0555 /out/scanner /usr/local/bin/scanner
ENTRYPOINT ["/usr/local/bin/scanner"]

# The webhook: the last stage, so the default target.
FROM runtime AS webhook
LABEL org.opencontainers.image.title="bulwark webhook"
COPY --from=build --chown=0:0 --chmod=0555 /out/webhook /usr/local/bin/webhook
ENTRYPOINT ["/usr/local/bin/webhook"]
