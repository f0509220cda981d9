# Loghouse developer entry points. `make help` lists them.
SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
FUZZTIME ?= 15s
BENCHTIME ?= 2s
BENCHCOUNT ?= 5

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build the loghoused binary into bin/.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/loghoused ./loghoused

.PHONY: run
run: ## Run the main job: a single-node dev server (generated mTLS certificates, temporary data dir).
	$(GO) run ./loghoused agent -dev

CERTS_DIR ?= certs
CERT_SERVERS ?= node1 node2 node3

.PHONY: gencert
gencert: build ## Make a CA, server certificates for CERT_SERVERS and "root" and "nobody" client certificates in CERTS_DIR.
	@mkdir -p $(CERTS_DIR)
	$(BIN)/loghoused tls ca create -dir $(CERTS_DIR)
	@cd $(CERTS_DIR) && for s in $(CERT_SERVERS); do $(BIN)/loghoused tls cert create -server -name $$s; done
	@cd $(CERTS_DIR) && for c in root nobody; do $(BIN)/loghoused tls cert create -client -name $$c; done

.PHONY: test
test: ## Run every test with the race detector (the product's module, then bench/'s).
	$(GO) test -race -count=1 -timeout 20m ./...
	cd bench && $(GO) test -race -count=1 -timeout 5m ./...

PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
PROTOC_GEN_GO := $(BIN)/protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
PROTOC_GEN_GO_GRPC := $(BIN)/protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)

$(PROTOC_GEN_GO):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	mv $(BIN)/protoc-gen-go $@

$(PROTOC_GEN_GO_GRPC):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	mv $(BIN)/protoc-gen-go-grpc $@

PROTOC_FLAGS = --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) -I pkg/api/v1

.PHONY: proto
proto: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Regenerate pkg/api/v1 from log.proto (needs protoc: apt-get install protobuf-compiler).
	protoc $(PROTOC_FLAGS) --go_out=paths=source_relative:pkg/api/v1 --go-grpc_out=paths=source_relative:pkg/api/v1 pkg/api/v1/log.proto

.PHONY: proto-check
proto-check: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Fail if the checked-in generated code differs from what log.proto generates.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	protoc $(PROTOC_FLAGS) --go_out=paths=source_relative:$$tmp --go-grpc_out=paths=source_relative:$$tmp pkg/api/v1/log.proto && \
	for f in log.pb.go log_grpc.pb.go; do \
	  diff -u pkg/api/v1/$$f $$tmp/$$f || { echo "pkg/api/v1/$$f is stale: run make proto"; exit 1; }; \
	done

.PHONY: check
check: fmt vet lint tidy proto-check ## gofmt, go vet, golangci-lint, the go mod tidy diff and the generated-code diff.

.PHONY: fmt
fmt: ## Fail if any Go file is not gofmt'ed.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet (both modules).
	$(GO) vet ./...
	cd bench && $(GO) vet ./...

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint with the linters listed in .golangci.yml.
	$(GOLANGCI_LINT) run ./...
	cd bench && $(GOLANGCI_LINT) run ./...

.PHONY: tidy
tidy: ## Fail if go mod tidy would change go.mod or go.sum (of either module).
	$(GO) mod tidy -diff
	cd bench && $(GO) mod tidy -diff

.PHONY: bench
bench: ## Storage engine benchmarks (records/s, MB/s, p50/p99, allocs) with raw baselines; BENCHCOUNT rounds, compare with benchstat.
	@# Separate processes per round, so each baseline and its Loghouse
	@# counterpart run side by side (-count would run each one 5 times in a row).
	@for i in $$(seq $(BENCHCOUNT)); do $(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -count=1 ./pkg/commitlog; done

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME.
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf $(BIN) dist

NFPM_VERSION := v2.45.2
NFPM := $(BIN)/nfpm-$(NFPM_VERSION)
DIST ?= $(CURDIR)/dist
VERSION ?= 0.1.0
PKG_ARCH ?= amd64

$(NFPM):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	mv $(BIN)/nfpm $@

.PHONY: package
package: $(NFPM) ## Build dist/loghoused_VERSION_amd64.deb and dist/loghoused-VERSION-1.x86_64.rpm (static binary; VERSION=0.1.0).
	@mkdir -p $(DIST)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(PKG_ARCH) $(GO) build -trimpath -o $(DIST)/loghoused-linux-$(PKG_ARCH) ./loghoused
	@for p in deb rpm; do \
	  echo "nfpm package -p $$p"; \
	  VERSION=$(VERSION) GOARCH=$(PKG_ARCH) LOGHOUSED_BINARY=$(DIST)/loghoused-linux-$(PKG_ARCH) \
	    $(NFPM) package -f packaging/nfpm.yaml -p $$p -t $(DIST)/ || exit 1; \
	done

.PHONY: package-test
package-test: package ## Check the packages, then install the .deb in a Debian container running systemd (Docker; root and debootstrap on first run).
	$(GO) test -count=1 -timeout 30m -v ./packaging -args -dist=$(DIST)

E2E_SOAK ?= 10m

.PHONY: e2e
e2e: ## System tests: loghoused on 3 and 5 Docker containers under kill -9, pause, partitions, restarts, wipes; checked incl. linearizability.
	$(GO) test -race -count=1 -timeout 15m -v ./e2e

.PHONY: soak
soak: ## The e2e random fault schedules for E2E_SOAK each (LOGHOUSE_E2E_SEED replays a seed).
	LOGHOUSE_E2E_LONG=$(E2E_SOAK) $(GO) test -count=1 -timeout 0 -v -run TestRandomFaults ./e2e

COMPARE_FLAGS ?=

.PHONY: compare
compare: ## Loghouse beside raw baselines and NATS JetStream on this machine (bench/; short mode, about 12 minutes on the 2-core VM, the page cache fill included, writes bench/REPORT.md; COMPARE_FLAGS=-mode full for the long run).
	cd bench && $(GO) run ./cmd/compare $(COMPARE_FLAGS)
