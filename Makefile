# bulwark — `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      ?= bin
PKGS     := ./...
# Where hack/build-controlplane.sh caches etcd, kube-apiserver, kube-controller-manager
# and kubectl (outside the repository, keyed by version).
export BULWARK_CACHE ?= $(HOME)/.cache/bulwark

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the webhook and tools into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

# Release binaries and the image use a Go without known standard-library
# vulnerabilities (the go command fetches it from the module proxy once).
RELEASE_GO ?= go1.27.3

# The released webhook leaves the embedded scanner out (-tags noscanner): grype and
# syft would triple its memory (docs/benchmarks.md); the scanner runs as its own
# Deployment. `make build` keeps the embedded mode for small clusters and the demo.
RELEASE_TAGS ?= noscanner

.PHONY: release
release: ## Build static release binaries into bin/release/ with $(RELEASE_GO).
	GOTOOLCHAIN=$(RELEASE_GO) CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -tags "$(RELEASE_TAGS)" -trimpath -ldflags="-s -w" -o $(BIN)/release/ ./cmd/webhook ./cmd/scanner ./cmd/bulwark

.PHONY: image
image: release ## Build the webhook and scanner images without Docker into the OCI layout bin/image (PUSH=prefix also pushes them).
	$(GO) run ./hack/image --webhook $(BIN)/release/webhook --scanner $(BIN)/release/scanner --out $(BIN)/image $(if $(PUSH),--push $(PUSH))

.PHONY: certs
certs: ## Write a development CA and serving certificate for the webhook Service to certs/dev/.
	$(GO) run ./certs/gen --dir certs/dev

.PHONY: controlplane
controlplane: ## Build (once) and cache the local control plane binaries.
	@bash hack/build-controlplane.sh >/dev/null

.PHONY: tools
tools: ## Build (once) and cache helm and kustomize for the chart tests.
	@bash hack/build-tools.sh >/dev/null

.PHONY: generate
generate: ## Regenerate the deepcopy code and CRDs from api/ (builds controller-gen once).
	bash hack/gen-crds.sh

.PHONY: test
test: controlplane tools ## Run every test: unit, golden, fuzz seeds, and e2e against the real kube-apiserver.
	BULWARK_ASSETS=$$(bash hack/build-controlplane.sh) $(GO) test -race -count=1 -timeout 20m $(PKGS)

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane.
	$(GO) test -race -short -count=1 $(PKGS)

.PHONY: lint
lint: ## gofmt, go vet and go mod tidy checks.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags "$(RELEASE_TAGS)" ./cmd/webhook/...
	$(GO) mod tidy -diff

.PHONY: demo
demo: ## Bring the gate up on a local control plane and show it admitting, mutating and denying.
	bash hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop everything `make demo` started.
	bash hack/demo.sh down

.PHONY: bench
bench: controlplane ## Go benchmarks and the load tool (writes .bench/; see docs/benchmarks.md).
	bash hack/bench.sh
